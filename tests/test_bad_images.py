"""A bad image file in each tool: one line naming it, no traceback, nothing half-written, inputs untouched.

``tools/inference.py`` reports the file, skips it and upscales the others (exit 1); ``tools/prepare_data.py`` checks
every input before writing and stops naming the file (exit 1); ``tools/benchmark.py quality`` stops naming it (exit
1). The tools' ``main`` runs in this process; one subprocess runs inference on a file name that is not UTF-8, which
used to crash the interpreter with a segmentation fault.
"""

import errno
import os
import pathlib
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from basicsr.archs import build_network
from conftest import REPO_ROOT, load_tool
from helpers.bad_images import corrupt_png, huge_header_png, png_bytes

import san_plugin  # noqa: F401  (registers the archs)
from san_plugin.convert.checkpoint_io import save_weights_file
from san_plugin.convert.network_config import network_record
from san_plugin.data.images import display_path

GOOD_NAMES = ('a.png', 'z.png')  # sorted around every bad name: one before it, one after it
NOT_UTF8_NAME = os.fsdecode(b'caf\xe9.png')  # 'café.png' with its name in latin-1 bytes
PROGRESS_BAR = re.compile(r'^(Upscaling|Check HR images): +\d+%\|')


def write_unreadable(path, monkeypatch):
    path.write_bytes(png_bytes())
    path.chmod(0)
    if os.access(path, os.R_OK):  # root reads files whatever their permissions: refuse it as the system would
        read_bytes = pathlib.Path.read_bytes

        def refused(self):
            if self.absolute() == path.absolute():
                raise PermissionError(errno.EACCES, 'Permission denied', str(self))
            return read_bytes(self)

        monkeypatch.setattr(pathlib.Path, 'read_bytes', refused)


# case -> (file name, how to make it (given the path and the test's monkeypatch), the message's words: the same in each
# tool, or by tool for the tools it is in)
BAD_FILES = {
    'truncated': ('truncated.png', lambda p, _: p.write_bytes(png_bytes()[:-40]), 'is not a readable image'),
    'corrupt': ('corrupt.png', lambda p, _: p.write_bytes(corrupt_png()), 'is not a readable image'),
    'empty': ('empty.png', lambda p, _: p.write_bytes(b''), 'is empty (0 bytes)'),
    'not an image': ('notes.jpg', lambda p, _: p.write_text('shopping list'), 'is not a readable image'),
    'huge header': ('huge.png', lambda p, _: p.write_bytes(huge_header_png()), 'header claims more pixels than OpenCV'),
    'folder named x.png': ('folder.png', lambda p, _: p.mkdir(), 'is a folder, not an image file'),
    'dangling link': ('link.png', lambda p, _: p.symlink_to(p.parent / 'gone.png'), 'No such file or directory'),
    'unreadable': ('locked.png', write_unreadable, 'Permission denied'),
    'float32 pixels': (
        'float.tiff',
        lambda p, _: p.write_bytes(cv2.imencode('.tiff', np.full((6, 5, 3), 0.5, np.float32))[1].tobytes()),
        {
            'inference': 'float32 pixels are not supported',
            'prepare_data': 'is not a readable image',
            'quality': 'is not a readable image',
        },
    ),
    'grey and alpha': (  # .pam is no image suffix: only inference, which tries every file, reads it
        'grey_alpha.pam',
        lambda p, _: p.write_bytes(
            b'P7\nWIDTH 5\nHEIGHT 6\nDEPTH 2\nMAXVAL 255\nTUPLTYPE GRAYSCALE_ALPHA\nENDHDR\n' + bytes(60)
        ),
        {'inference': '2 channels are not supported'},
    ),
}
CASES = [
    (case, tool)
    for case, (_, _, words) in BAD_FILES.items()
    for tool in ('inference', 'prepare_data', 'quality')
    if isinstance(words, str) or tool in words
]


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('weights') / 'san_x2.safetensors'
    network_opt = {'type': 'SAN', 'num_feat': 8, 'num_group': 1, 'num_block': 1, 'squeeze_factor': 4, 'upscale': 2}
    net = build_network(dict(network_opt))
    save_weights_file(net.state_dict(), path, record=network_record(network_opt))  # no setting left to assume
    return path


def snapshot(folder):
    """Every entry of ``folder`` with its content (None for what is not a readable file)."""
    return {path.name: readable_content(path) for path in folder.iterdir()}


def readable_content(path):
    """The content of the file ``path``; None for a folder, a dangling link or a file it may not read."""
    try:
        return path.read_bytes() if path.is_file() else None
    except PermissionError:
        return None


def message_lines(err):
    """What a tool printed on stderr, less its progress bars."""
    lines = (line.strip() for line in re.split(r'[\r\n]', err))
    return [line for line in lines if line and not PROGRESS_BAR.match(line)]


def run_inference(folder, out, weights):
    return load_tool('inference').main(['-i', str(folder), '-o', str(out), '-w', str(weights)])


def run_prepare_data(folder, out, weights):
    args = ['benchmark', '--input', str(folder), '--name', 'Bad', '--output-root', str(out), '--scales', '2']
    with pytest.raises(SystemExit) as exit_info:
        load_tool('prepare_data').main([*args, '--workers', '1'])
    return exit_info.value.code


def run_quality(folder, out, weights):
    args = ['quality', '--no-progress', '--model', 'bicubic', '--dataset', f'bad={folder}', '--scale', '2']
    return load_tool('benchmark').main([*args, '--out', str(out)])


TOOLS = {'inference': (run_inference, 1), 'prepare_data': (run_prepare_data, 1), 'quality': (run_quality, 1)}


@pytest.mark.parametrize(('case', 'tool'), CASES)
def test_a_bad_image_is_one_line_naming_it(tmp_path, capfd, monkeypatch, weights, case, tool):
    name, make, words = BAD_FILES[case]
    expected = words if isinstance(words, str) else words[tool]
    folder = tmp_path / 'in'
    folder.mkdir()
    for index, good in enumerate(GOOD_NAMES):
        (folder / good).write_bytes(png_bytes(seed=index))
    bad = folder / name
    make(bad, monkeypatch)
    before = snapshot(folder)
    run, status = TOOLS[tool]
    out = tmp_path / 'out'

    assert run(folder, out, weights) == status
    lines = message_lines(capfd.readouterr().err)
    assert len(lines) == 1 and display_path(bad) in lines[0] and expected in lines[0], lines
    assert snapshot(folder) == before
    if tool == 'inference':  # the others still upscaled, complete
        assert sorted(path.name for path in out.iterdir()) == ['a_x2.png', 'z_x2.png']
        for good in GOOD_NAMES:
            assert cv2.imdecode(np.fromfile(out / good.replace('.png', '_x2.png'), np.uint8), -1).shape == (24, 20, 3)
    else:  # every input is checked before anything is written
        assert not out.exists()


@pytest.mark.slow  # one interpreter that imports torch and BasicSR (seconds)
def test_inference_on_a_name_that_is_not_utf8_in_a_process_of_its_own(tmp_path, weights):
    folder = tmp_path / 'in'
    folder.mkdir()
    (folder / 'a.png').write_bytes(png_bytes(seed=0))
    (folder / NOT_UTF8_NAME).write_bytes(png_bytes(seed=1))
    (folder / 'huge.png').write_bytes(huge_header_png())
    out = tmp_path / 'out'
    command = [sys.executable, str(REPO_ROOT / 'tools' / 'inference.py'), '-i', str(folder), '-o', str(out)]
    env = {**os.environ, 'LC_ALL': 'C.UTF-8'}  # stdout refuses what is not UTF-8, as in most terminals
    result = subprocess.run([*command, '-w', str(weights)], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 1, result.stderr
    assert message_lines(result.stderr) == [
        f'skipped: {folder}/huge.png: its header claims more pixels than OpenCV decodes (2**30 unless the environment '
        'variable OPENCV_IO_MAX_IMAGE_PIXELS says otherwise); a corrupt header or too large an image'
    ]
    assert result.stdout.strip().splitlines()[-1] == f'2 written to {out}, 1 failed'
    assert sorted(os.fsencode(path.name) for path in out.iterdir()) == [b'a_x2.png', b'caf\xe9_x2.png']
    upscaled = np.fromfile(out / os.fsdecode(b'caf\xe9_x2.png'), np.uint8)
    assert cv2.imdecode(upscaled, cv2.IMREAD_UNCHANGED).shape == (24, 20, 3)


def test_names_that_are_not_utf8_in_prepare_data_and_quality(tmp_path, capsys):
    folder = tmp_path / 'in'
    folder.mkdir()
    (folder / NOT_UTF8_NAME).write_bytes(png_bytes(shape=(48, 48, 3)))
    prepare_data = load_tool('prepare_data')
    args = ['--input', str(folder), '--output-root', str(tmp_path / 'out'), '--scales', '2', '--workers', '1']
    assert prepare_data.main(['benchmark', '--name', 'Set', *args]) is None
    for kind in ('HR', 'LR_bicubic'):
        assert [path.name for path in (tmp_path / 'out' / 'Set' / kind / 'x2').iterdir()] == [NOT_UTF8_NAME]
    bench = ['quality', '--no-progress', '--model', 'bicubic', '--dataset', f'set={folder}', '--scale', '2']
    assert load_tool('benchmark').main([*bench, '--out', str(tmp_path / 'bench')]) == 0
    assert (tmp_path / 'bench' / 'results.json').is_file()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        prepare_data.main(['train', '--crop-size', '48', *args])
    assert exit_info.value.code == 1
    (line,) = message_lines(capsys.readouterr().err)
    assert line.endswith(
        f' train: error: {folder}/caf\\xe9.png: LMDB keys are the file names without extension and must be ASCII '
        'with no dots or spaces; rename the file'
    )
