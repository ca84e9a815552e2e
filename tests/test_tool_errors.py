"""A user's mistake in a tool's input ends with one line naming the file, flag or key: no traceback, no crash.

Each case runs a tool's ``main(argv)`` in this process from an empty working folder and checks the exit status (1;
2 for a malformed command line, as argparse; 2 for ``tools/compare.py``'s study-file errors, as before), that the
last line of stderr names the thing at fault, that stderr holds no traceback (and, for status 1, nothing but that
line), and that nothing was written: no output, no temporary file, no folder, the input files unchanged.
"""

import functools
import json
import os
import pickle
import struct

import pytest
import torch
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


# tool, argv ({placeholders}: the inputs, and {out} / {a_file} / {a_folder} in the case's own folder), status,
# what the last line of stderr must hold.
CASES = {
    # tools/convert_checkpoint.py: every kind of bad weight file, and outputs that cannot be written.
    'convert empty': ('convert_checkpoint', ['{empty}', '{out}.pth'], 1, ['weights file {empty} is empty']),
    'convert truncated': ('convert_checkpoint', ['{truncated}', '{out}.pth'], 1, ['{truncated} is truncated']),
    'convert random bytes': ('convert_checkpoint', ['{random}', '{out}.pth'], 1, ['{random} is truncated, corrupt']),
    'convert pickle with code': (
        'convert_checkpoint',
        ['{runs_code}', '{out}.pth'],
        1,
        ['refused to load {runs_code}'],
    ),
    'convert other arch': (
        'convert_checkpoint',
        ['{msrresnet}', '{out}.pth'],
        1,
        ['weights file {msrresnet}: the network is not recognised', 'nothing written'],
    ),
    'convert wrong shape': (
        'convert_checkpoint',
        ['{wrong_shape}', '{out}.pth'],
        1,
        [
            "weights file {wrong_shape}: its tensors are not those of one SAN: key 'body.0.conv.weight' has shape "
            '(16, 16, 1, 1), expected (16, 16, 3, 3)'
        ],
    ),  # fmt: skip
    'convert wrong upsampler': (
        'convert_checkpoint',
        ['{wrong_upsampler}', '{out}.pth'],
        1,
        ['weights file {wrong_upsampler}: ', "('upsample.0.weight' 63) match no scale"],
    ),
    'convert folder as weights': (
        'convert_checkpoint',
        ['{folder_pth}', '{out}.pth'],
        1,
        ['weights file {folder_pth} is a folder, not a file'],
    ),
    'convert missing': (
        'convert_checkpoint',
        ['{out}.pth', '{out}.safetensors'],
        1,
        ['weights file {out}.pth does not exist'],
    ),
    'convert bad JSON record': (
        'convert_checkpoint',
        ['{bad_json}', '{out}.pth'],
        1,
        ['weights file {bad_json}: network_config is not valid JSON'],
    ),
    'convert bad record key': (
        'convert_checkpoint',
        ['{bad_record}', '{out}.pth'],
        1,
        ["weights file {bad_record}: network_config.args.num_feats: SAN has no option 'num_feats'"],
    ),
    'convert huge safetensors header': (
        'convert_checkpoint',
        ['{huge_header}', '{out}.pth'],
        1,
        ['weights file {huge_header} is not a readable safetensors file'],
    ),
    'convert wrong key': (
        'convert_checkpoint',
        ['{wrong_key}', '{out}.pth'],
        1,
        ["weights file {wrong_key} is not a state dict: 'weights' holds"],
    ),
    'convert output is a folder': (
        'convert_checkpoint',
        ['{san}', '{a_folder}'],
        1,
        ['output file {a_folder}: is a folder'],
    ),
    'convert output under a file': (
        'convert_checkpoint',
        ['{san}', '{a_file}/x.pth'],
        1,
        ['output file {a_file}/x.pth: {a_file} is a file, not a folder'],
    ),
    'convert output suffix': (
        'convert_checkpoint',
        ['{san}', '{out}.ckpt'],
        1,
        ["output file {out}.ckpt: unknown suffix '.ckpt'"],
    ),
    'convert output is the input': (
        'convert_checkpoint',
        ['{san}', '{san}'],
        1,
        ['refusing to overwrite the input file'],
    ),
    'convert network-opt': (
        'convert_checkpoint',
        ['{san}', '{out}.pth', '--network-opt', 'img_range'],
        1,
        ['--network-opt'],
    ),
    # tools/export_onnx.py
    'export wrong shape': (
        'export_onnx',
        ['{wrong_shape}', '{out}.onnx'],
        1,
        ['{wrong_shape}: ', "'body.0.conv.weight'"],
    ),
    'export other arch': (
        'export_onnx',
        ['{msrresnet}', '{out}.onnx'],
        1,
        ['weights file {msrresnet}: the architecture is not recognised'],
    ),
    'export pickle with code': ('export_onnx', ['{runs_code}', '{out}.onnx'], 1, ['refused to load {runs_code}']),
    'export output is a folder': ('export_onnx', ['{san}', '{a_folder}'], 1, ['output {a_folder}: is a folder']),
    'export output is the input': (
        'export_onnx',
        ['{san}', '{san}'],
        1,
        ['output {san}: refusing to overwrite the input file'],
    ),
    'export scale': (
        'export_onnx',
        ['{san}', '{out}.onnx', '--scale', '3'],
        1,
        ['--scale is 3, but weights file {san} is a x2 SAN'],
    ),
    'export scale 0': (
        'export_onnx',
        ['{san}', '{out}.onnx', '--scale', '0'],
        2,
        ['argument --scale: 0 is not an integer >= 1'],
    ),
    'export tolerance': ('export_onnx', ['{san}', '{out}.onnx', '--tolerance', '-1'], 2, ['argument --tolerance']),
    # tools/inference.py: weights, device, tile, scale (its image handling is tested in test_inference.py)
    'inference truncated': (
        'inference',
        ['-i', '{images}', '-o', '{out}', '-w', '{truncated}'],
        1,
        ['{truncated} is truncated'],
    ),
    'inference folder as weights': (
        'inference',
        ['-i', '{images}', '-o', '{out}', '-w', '{folder_pth}'],
        1,
        ['{folder_pth} is a folder'],
    ),
    'inference scale': (
        'inference',
        ['-i', '{images}', '-o', '{out}', '-w', '{san}', '--scale', '3'],
        1,
        ['--scale is 3'],
    ),
    'inference tile 0': (
        'inference',
        ['-i', '{images}', '-o', '{out}', '-w', '{san}', '--tile', '0'],
        2,
        ['argument --tile'],
    ),
    'inference tile pad': (
        'inference',
        ['-i', '{images}', '-o', '{out}', '-w', '{san}', '--tile-pad', '-1'],
        2,
        ['argument --tile-pad'],
    ),
    # tools/benchmark.py speed
    'speed sizes': ('benchmark', ['speed', '--sizes', '0'], 2, ['argument --sizes: 0 is not an integer >= 1']),
    'speed repeats': ('benchmark', ['speed', '--repeats', '0'], 2, ['argument --repeats']),
    'speed scale': ('benchmark', ['speed', '--scale', '5'], 2, ['argument --scale']),
    'speed threads': ('benchmark', ['speed', '--threads', '0'], 2, ['argument --threads']),
    'speed json is a folder': ('benchmark', ['speed', '--json', '{a_folder}'], 1, ['--json {a_folder}: is a folder']),
    'speed json under a file': (
        'benchmark',
        ['speed', '--json', '{a_file}/speed.json'],
        1,
        ['--json {a_file}/speed.json: {a_file} is a file'],
    ),
    # tools/benchmark.py quality
    'quality out is a file': (
        'benchmark',
        ['quality', '--model', 'bicubic', '--dataset', 'set={images}', '--scale', '2', '--out', '{a_file}'],
        1,
        ['--out {a_file}: is a file, not a folder'],
    ),
    'quality -opt missing': ('benchmark', ['quality', '-opt', '{out}.yml'], 1, ['-opt {out}.yml: cannot read it']),
    'quality -opt bad YAML': (
        'benchmark',
        ['quality', '-opt', '{bad_yaml_yml}'],
        1,
        ['-opt {bad_yaml_yml}: not valid YAML: ', 'line 2'],
    ),
    'quality -opt not text': (
        'benchmark',
        ['quality', '-opt', '{binary_yml}'],
        1,
        ['-opt {binary_yml}: not a text file'],
    ),
    'quality -opt unknown key': (
        'benchmark',
        ['quality', '-opt', '{unknown_key_yml}'],
        1,
        ["-opt {unknown_key_yml}: unknown key 'scale'"],
    ),
    'quality -opt tile': (
        'benchmark',
        ['quality', '-opt', '{tile_yml}'],
        1,
        ['tile: expected an integer >= 1, got -1'],
    ),
    'quality -opt device': ('benchmark', ['quality', '-opt', '{device_yml}'], 1, ["device 'tpu': not a device name"]),
    'quality spec YAML': (
        'benchmark',
        ['quality', '--model', 'n=type:SAN,num_feat:[1,', '--scale', '2', '--out', '{out}'],
        1,
        ["--model n 'num_feat:[1,': the value is not valid YAML"],
    ),
    'quality wrong shape': (
        'benchmark',
        ['quality', '--model', 'n={wrong_shape}', '--scale', '2', '--out', '{out}'],
        1,
        ['--model n: weights file {wrong_shape}: ', "'body.0.conv.weight'"],
    ),
    'quality tile': ('benchmark', ['quality', '--tile', '0'], 2, ['argument --tile']),
    # tools/compare.py: study files (exit status 2, as before)
    'compare missing': ('compare', ['-opt', '{out}.yml'], 2, ['-opt: cannot read study file {out}.yml']),
    'compare empty': ('compare', ['-opt', '{empty_yml}'], 2, ['{empty_yml}: expected a mapping, got NoneType']),
    'compare bad YAML': (
        'compare',
        ['-opt', '{bad_yaml_yml}'],
        2,
        ['-opt: cannot read study file {bad_yaml_yml}: while parsing'],
    ),
    'compare not text': ('compare', ['-opt', '{binary_yml}'], 2, ['-opt {binary_yml}: not a UTF-8 text file']),
    'compare folder': ('compare', ['-opt', '{images}'], 2, ['-opt: cannot read study file {images}']),
    'compare list': ('compare', ['-opt', '{study_list_yml}'], 2, ['{study_list_yml}: expected a mapping, got list']),
    'compare wrong types': (
        'compare',
        ['-opt', '{study_types_yml}'],
        2,
        ['{study_types_yml}: networks: expected a mapping'],
    ),
    # tools/demo.py
    'demo out is a file': ('demo', ['--out', '{a_file}'], 1, ['--out {a_file}: is a file, not a folder']),
    'demo iters': ('demo', ['--iters', '0'], 2, ['argument --iters']),
    'demo threads': ('demo', ['--threads', '-1'], 2, ['argument --threads']),
    # tools/train.py and tools/test.py: the plugin's start-up check, before BasicSR writes anything
    'train network option': (
        'train',
        ['-opt', '{train_bad_network}'],
        1,
        ["{train_bad_network}: network_g.num_feats: SAN has no option 'num_feats'"],
    ),
    'train type not a name': (
        'train',
        ['-opt', '{train_type_not_a_name}'],
        1,
        ['network_g.type: expected an arch name, got 5'],
    ),
    'train path value': (
        'train',
        ['-opt', '{train_path_value}'],
        1,
        ['{train_path_value}: path.allow_scale_change_g: BasicSR creates a folder', 'is train.allow_scale_change_g'],
    ),
    'train missing weights': (
        'train',
        ['-opt', '{train_missing_weights}'],
        1,
        ['{train_missing_weights}: ', 'val.metrics.lpips.backbone_path: ', 'no_alexnet.pth does not exist'],
    ),
    'test network option': (
        'test',
        ['-opt', '{test_bad_network}'],
        1,
        ["{test_bad_network}: network_g.num_feats: SAN has no option 'num_feats'"],
    ),
    'test type not a name': (
        'test',
        ['-opt', '{test_type_not_a_name}'],
        1,
        ['network_g.type: expected an arch name, got 5'],
    ),
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
