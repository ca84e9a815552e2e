"""A user's mistake in a tool's input ends with one line naming the file, flag or key: no traceback, no crash.

Each case runs a tool's ``main(argv)`` in this process from an empty working folder and checks the exit status (1;
2 for a malformed command line, as argparse), that the last line of stderr names the thing at fault, that stderr
holds no traceback (and, for status 1, nothing but that line), and that nothing was written: no output, no
temporary file, no folder, the input files unchanged.
"""

import functools
import json
import os
import pickle
import struct
from pathlib import Path

import pytest
import torch
import yaml
from basicsr.archs.srresnet_arch import MSRResNet
from conftest import load_tool
from helpers.workflow import TINY_SAN, eval_options, train_options, write_options
from safetensors.torch import save_file

import san_plugin  # noqa: F401  (registers the archs)
from san_plugin.archs.san_arch import SAN
from san_plugin.convert.checkpoint_io import save_weights_file

HAS_CUDA = torch.cuda.is_available()


class RunsCode:
    """A pickle payload that creates a folder when unpickled by a plain ``pickle.load``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _safetensors(path, state, record):
    save_file(
        {key: tensor.contiguous() for key, tensor in state.items()}, str(path), metadata={'format': 'pt', **record}
    )


@pytest.fixture(scope='module')
def inputs(tmp_path_factory):
    """Every input of the cases, good and bad, in one folder (their names are the cases' ``{placeholders}``)."""
    root = tmp_path_factory.mktemp('tool_errors')
    state = SAN(num_feat=16, num_group=1, num_block=1, squeeze_factor=4, upscale=2).state_dict()
    save_weights_file(state, root / 'san.pth')
    files = {'san': root / 'san.pth', 'images': root / 'images', 'code_ran': root / 'code_ran'}
    files['images'].mkdir()
    for name, key, shape in (('wrong_shape', 'body.0.conv.weight', (16, 16, 1, 1)),
                             ('wrong_upsampler', 'upsample.0.weight', (63, 16, 3, 3))):  # fmt: skip
        files[name] = root / f'{name}.pth'
        torch.save({'params': {**state, key: torch.zeros(shape)}}, files[name])
    files['msrresnet'] = root / 'msrresnet.pth'
    torch.save({'params': MSRResNet(num_feat=8, num_block=1, upscale=2).state_dict()}, files['msrresnet'])
    files['wrong_key'] = root / 'wrong_key.pth'
    torch.save({'weights': state}, files['wrong_key'])
    good = files['san'].read_bytes()
    for name, data in (('empty', b''), ('truncated', good[: len(good) // 2]), ('random', os.urandom(4096)),
                       ('runs_code', pickle.dumps({'params': {'x': RunsCode(files['code_ran'])}}))):  # fmt: skip
        files[name] = root / f'{name}.pth'
        files[name].write_bytes(data)
    files['folder_pth'] = root / 'folder.pth'
    files['folder_pth'].mkdir()
    files['bad_json'] = root / 'bad_json.safetensors'
    _safetensors(files['bad_json'], state, {'network_config': '{not json'})
    files['bad_record'] = root / 'bad_record.safetensors'
    record = {'format_version': 1, 'type': 'SAN', 'args': {'num_feats': 3}}
    _safetensors(files['bad_record'], state, {'network_config': json.dumps(record)})
    files['huge_header'] = root / 'huge_header.safetensors'
    files['huge_header'].write_bytes(struct.pack('<Q', 10**12) + b'{}')
    texts = {
        'bad_yaml.yml': 'models: [bicubic,\n',
        'empty.yml': '',
        'unknown_key.yml': 'models: [bicubic]\nscale: [2]\n',
        'tile.yml': 'tile: -1\n',
        'device.yml': 'device: tpu\n',
        'study_types.yml': 'name: x\nnetworks: 5\ntrain: {}\ntest: {}\n',
        'study_list.yml': '- a\n- b\n',
    }
    for name, text in texts.items():
        files[name.replace('.', '_')] = root / name
        (root / name).write_text(text)
    files['binary_yml'] = root / 'binary.yml'
    files['binary_yml'].write_bytes(b'\xff\xfe name: x\n')
    for name, network in (('bad_network', {**TINY_SAN, 'num_feats': 16}), ('type_not_a_name', {'type': 5})):
        train = train_options('tiny_error', root / 'gt', root / 'lq', validate=False)
        write_options(root / f'train_{name}.yml', {**train, 'network_g': network})
        test = eval_options('tiny_error', root / 'gt', root / 'lq', root / 'san.pth')
        write_options(root / f'test_{name}.yml', {**test, 'network_g': network})
        files[f'train_{name}'], files[f'test_{name}'] = root / f'train_{name}.yml', root / f'test_{name}.yml'
    train = train_options('tiny_error', root / 'gt', root / 'lq', validate=False)
    files['train_path_value'] = write_options(
        root / 'train_path_value.yml', {**train, 'path': {**train['path'], 'allow_scale_change_g': True}}
    )
    lpips = {'type': 'calculate_lpips', 'crop_border': 2, 'backbone_path': str(root / 'no_alexnet.pth')}
    files['train_missing_weights'] = write_options(
        root / 'train_missing_weights.yml', {**train, 'val': {'val_freq': 2, 'metrics': {'lpips': lpips}}}
    )
    return files


# The cases (tool, argv, exit status, what the last line of stderr holds) are data: tests/data/tool_errors.yml.
CASES = {
    name: (case['tool'], case['argv'], case['status'], case['expect'])
    for name, case in yaml.safe_load((Path(__file__).parent / 'data' / 'tool_errors.yml').read_text()).items()
}

# --device of every tool that has it: what this machine cannot run (cuda and mps only where they are missing).
DEVICE_TOOLS = {
    'inference': ['-i', '{images}', '-o', '{out}', '-w', '{san}'],
    'benchmark speed': ['speed', '--models', 'san'],
    'benchmark quality': [
        'quality',
        '--model',
        'bicubic',
        '--dataset',
        'set={images}',
        '--scale',
        '2',
        '--out',
        '{out}',
    ],
}
DEVICES = {
    'cuda': (not HAS_CUDA, '--device cuda: PyTorch finds no CUDA GPU on this machine'),
    'cuda:99': (True, '--device cuda:99: '),
    'mps': (not torch.backends.mps.is_available(), '--device mps: PyTorch finds no Apple MPS device'),
    'tpu': (True, "--device 'tpu': not a device name; expected cpu, cuda, cuda:N or mps"),
    'garbage': (True, "--device 'garbage': not a device name"),
}
for tool, argv in DEVICE_TOOLS.items():
    for device, (missing, message) in DEVICES.items():
        if missing:
            CASES[f'{tool} --device {device}'] = (tool.split()[0], [*argv, '--device', device], 1, [message])


@functools.cache
def tool_module(name):
    return load_tool(name)


def files_under(folder):
    return {path: path.read_bytes() if path.is_file() else None for path in sorted(folder.rglob('*'))}


@pytest.mark.filterwarnings('ignore::san_plugin.convert.network_config.AssumedSettingWarning')
@pytest.mark.parametrize('case', CASES)
def test_a_mistake_ends_with_one_line_naming_it(case, inputs, tmp_path, monkeypatch, capsys):
    tool, argv, status, expected = CASES[case]
    work = tmp_path / 'work'  # the working folder: outputs, and what BasicSR or the demo would write
    (work / 'a_folder').mkdir(parents=True)
    (work / 'a_file').write_text('a file, not a folder')
    monkeypatch.chdir(work)
    paths = {**inputs, **{name: work / name for name in ('out', 'a_file', 'a_folder')}}
    fill = functools.partial(str.format, **{name: str(path) for name, path in paths.items()})
    before = files_under(work), files_under(inputs['san'].parent)
    try:
        code = tool_module(tool).main([fill(arg) for arg in argv])
    except SystemExit as exit_:  # argparse's usage errors
        code = exit_.code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == status, err
    assert 'Traceback' not in err
    assert lines and 'error: ' in lines[-1] and all(fill(part) in lines[-1] for part in expected), err
    if status == 1:
        assert len(lines) == 1, err
    assert (files_under(work), files_under(inputs['san'].parent)) == before
    assert not inputs['code_ran'].exists()
