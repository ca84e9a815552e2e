"""ONNX export: onnxruntime reproduces SAN, DRLN and RCAN at several sizes (odd ones included), and the tool's errors.

Skipped only when the optional ``onnx`` extra is absent, never under ``CI=true`` (``make test`` installs it).
"""

import os
import subprocess
import sys

import pytest
import torch
from basicsr.archs.rcan_arch import RCAN
from conftest import REPO_ROOT, load_tool
from helpers.fixture_weights import fixture_and_weights

import san_plugin
from san_plugin import onnx_export
from san_plugin.archs.san_arch import SAN
from san_plugin.convert.checkpoint_io import save_weights_file
from san_plugin.onnx_export import export_onnx


def require_onnx_extra():
    try:
        onnx_export.optional_onnx_modules()
    except ImportError as error:
        if os.environ.get('CI', '').lower() == 'true':
            pytest.fail(f'CI=true and {error}')
        pytest.skip(str(error))


@pytest.fixture(autouse=True)
def _onnx_extra():
    require_onnx_extra()


def onnxruntime_output(path, lq):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    return torch.from_numpy(session.run(['sr'], {'lq': lq.numpy()})[0])


def tiny_san(**kwargs):
    net = SAN(**{'num_feat': 16, 'num_group': 2, 'num_block': 1, 'squeeze_factor': 4, 'upscale': 2, **kwargs})
    for param in net.parameters():
        torch.nn.init.normal_(param, std=0.05)  # non-zero non-local projection and gamma, unlike the initialisation
    return net.eval()


@pytest.mark.slow
@pytest.mark.parametrize(
    'name',
    ['san_x4_g2b2.pt', 'san_x3_g2b2.pt', 'drln_x4_full.pt', pytest.param('san_x4_full.pt', marks=pytest.mark.slow)],
)
def test_fixture_networks_match_authors_outputs_and_pytorch_at_odd_sizes(name, tmp_path):
    fixture, weights = fixture_and_weights(name)
    net = san_plugin.from_original(weights)
    path = tmp_path / 'net.onnx'
    differences = export_onnx(net, path, check_sizes=[(13, 9), (21, 16)])
    assert set(differences) == {(13, 9), (21, 16)}
    assert max(differences.values()) < 1e-4
    # The fixtures' own inputs (a batch of 2 at 17x23 among them) against the authors' outputs.
    for lq, expected in zip(fixture['inputs'], fixture['outputs']):
        output = onnxruntime_output(path, lq)
        assert output.shape == expected.shape
        assert (output - expected).abs().max().item() < 1e-4


@pytest.mark.slow
def test_san_graph_follows_the_input_size_in_every_size_dependent_step(tmp_path):
    """Unequal regions (odd sides) and the SOCA statistics crop (sides over 12 here) at sizes other than the traced;
    one group holds every size-dependent step (and exports in half the time of two)."""
    net = tiny_san(num_group=1, soca_crop=12)
    differences = export_onnx(net, tmp_path / 'san.onnx', sample_size=(16, 16), check_sizes=[(4, 4), (13, 17), (30, 7)])
    assert max(differences.values()) < 1e-4


@pytest.mark.slow
def test_rcan(tmp_path):
    net = RCAN(3, 3, num_feat=16, num_group=2, num_block=1, squeeze_factor=4, upscale=3).eval()
    differences = export_onnx(net, tmp_path / 'rcan.onnx', check_sizes=[(16, 16), (11, 7)])
    assert max(differences.values()) < 1e-4


@pytest.mark.slow
def test_failed_check_leaves_no_file(tmp_path, monkeypatch):
    """Whatever the network (the smallest RCAN exports fastest): a failed check removes the file it had written."""
    monkeypatch.setattr(onnx_export, 'compare_with_onnxruntime', lambda path, net, sizes: {(8, 8): 0.5})
    out = tmp_path / 'rcan.onnx'
    net = RCAN(3, 3, num_feat=4, num_group=1, num_block=1, squeeze_factor=4, upscale=2).eval()
    with pytest.raises(ValueError, match=r'more than 0.0001 \(8x8: 0.5\).*rcan.onnx not written'):
        export_onnx(net, out, sample_size=(8, 8), check_sizes=[(8, 8)])
    assert list(tmp_path.iterdir()) == []


def test_old_opset_and_a_file_in_place_of_the_folder_are_refused(tmp_path):
    with pytest.raises(ValueError, match='opset 17 is not supported'):
        export_onnx(tiny_san(), tmp_path / 'a.onnx', opset=17)
    (tmp_path / 'notes').write_text('a file, not a folder')
    with pytest.raises(ValueError, match=f'{tmp_path / "notes"} is a file, not a folder'):
        export_onnx(tiny_san(), tmp_path / 'notes' / 'a.onnx')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['notes']


def run_tool(*args):
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / 'tools' / 'export_onnx.py'), *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, 'OMP_NUM_THREADS': '1'},
    )


@pytest.mark.slow
def test_tool_exports_a_basicsr_checkpoint_and_reports_the_check(tmp_path):
    weights = tmp_path / 'net_g.pth'
    save_weights_file(tiny_san().state_dict(), weights)
    out = tmp_path / 'new' / 'folder' / 'san.onnx'  # missing folders are created
    result = run_tool(weights, out, '--check-sizes', '12x12,9x15', '--scale', '2')
    assert result.returncode == 0, result.stderr
    assert f'wrote {out}: x2 SAN, opset 18' in result.stdout
    assert 'at 9x15: max abs difference' in result.stdout
    assert out.stat().st_size > 0


@pytest.mark.parametrize(
    ('args', 'message'),
    [
        (['missing.pth', 'out.onnx'], 'missing.pth'),
        (['net.pth', 'out.onnx', '--scale', '4'], '--scale is 4, but weights file'),
        (['net.pth', 'out.onnx', '--check-sizes', '3x8'], 'height and width must be at least 4'),
        (['net.pth', 'out.onnx', '--check-sizes', '12by12'], "'12by12' is not HEIGHTxWIDTH"),
    ],
)
def test_tool_errors_name_the_cause_and_write_nothing(tmp_path, capsys, args, message):
    """The tool's ``main`` in this process (its happy path runs as a subprocess above): argparse's exit or 1."""
    save_weights_file(tiny_san().state_dict(), tmp_path / 'net.pth')
    argv = [str(tmp_path / arg) if arg.endswith(('.pth', '.onnx')) else arg for arg in args]
    try:
        status = load_tool('export_onnx').main(argv)
    except SystemExit as exit_:
        status = exit_.code
    assert status not in (0, None)
    assert message in capsys.readouterr().err
    assert not (tmp_path / 'out.onnx').exists()
