"""tools/inference.py: a folder with a non-image, grey, RGB, RGBA and 16-bit PNGs; outputs match the network."""

import cv2
import numpy as np
import pytest
import torch
from conftest import load_tool

import san_plugin  # noqa: F401  (registers the archs)
from san_plugin.archs.san_arch import SAN
from san_plugin.convert.checkpoint_io import save_weights_file
from san_plugin.inference import load_model, output_paths, upscale_keeping_format

SCALE = 2


@pytest.fixture(scope='module')
def inference_tool():
    return load_tool('inference')


@pytest.fixture
def net():
    torch.manual_seed(1)
    return SAN(num_feat=16, num_group=1, num_block=1, squeeze_factor=4, upscale=SCALE).eval()


@pytest.fixture
def weights(tmp_path, net):
    path = tmp_path / 'san_x2.safetensors'
    save_weights_file(net.state_dict(), path)
    return path


def run_net(net, rgb):
    """The network on an HxWx3 RGB float array in [0, 1]."""
    with torch.no_grad():
        out = net(torch.from_numpy(rgb.transpose(2, 0, 1).copy())[None].float())
    return out[0].clamp(0, 1).numpy().transpose(1, 2, 0)


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / 'in'
    folder.mkdir()
    arrays = {
        'rgb': rng.integers(0, 256, (9, 11, 3), dtype=np.uint8),
        'grey': rng.integers(0, 256, (9, 11), dtype=np.uint8),
        'rgba': rng.integers(0, 256, (9, 11, 4), dtype=np.uint8),
        'deep': rng.integers(0, 65536, (9, 11, 3), dtype=np.uint16),
    }
    for name, array in arrays.items():
        assert cv2.imwrite(str(folder / f'{name}.png'), array)
    (folder / 'readme.txt').write_text('not an image')
    return folder, arrays


def test_folder_with_every_kind_of_input(tmp_path, capsys, inference_tool, net, weights, images):
    folder, arrays = images
    out = tmp_path / 'out'
    code = inference_tool.main(['-i', str(folder), '-o', str(out), '-w', str(weights)])
    assert code == 1  # one file (readme.txt) failed
    assert 'readme.txt is not a readable image' in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ['deep_x2.png', 'grey_x2.png', 'rgb_x2.png', 'rgba_x2.png']
    results = {name: cv2.imread(str(out / f'{name}_x2.png'), cv2.IMREAD_UNCHANGED) for name in arrays}
    for name, array in arrays.items():
        assert results[name].dtype == array.dtype, name
        assert results[name].shape == (array.shape[0] * SCALE, array.shape[1] * SCALE, *array.shape[2:]), name

    bgr = arrays['rgb'].astype(np.float32) / 255
    expected = run_net(net, bgr[:, :, ::-1])[:, :, ::-1]
    assert np.abs(results['rgb'].astype(np.float32) / 255 - expected).max() <= 0.5 / 255 + 1e-6

    deep = arrays['deep'].astype(np.float32) / 65535
    expected = run_net(net, deep[:, :, ::-1])[:, :, ::-1]
    assert np.abs(results['deep'].astype(np.float64) / 65535 - expected).max() < 2 / 65535  # kept 16-bit precision

    alpha = arrays['rgba'][:, :, 3].astype(np.float32) / 255
    size = (alpha.shape[1] * SCALE, alpha.shape[0] * SCALE)
    expected_alpha = np.clip(cv2.resize(alpha, size, interpolation=cv2.INTER_CUBIC), 0, 1)
    assert np.abs(results['rgba'][:, :, 3] / 255 - expected_alpha).max() <= 0.5 / 255 + 1e-6
    expected_rgb = run_net(net, arrays['rgba'][:, :, 2::-1].astype(np.float32) / 255)[:, :, ::-1]
    assert np.abs(results['rgba'][:, :, :3] / 255 - expected_rgb).max() <= 0.5 / 255 + 1e-6

    grey = np.repeat(arrays['grey'][:, :, None].astype(np.float32) / 255, 3, axis=2)
    expected = cv2.cvtColor(run_net(net, grey), cv2.COLOR_RGB2GRAY)
    assert np.abs(results['grey'] / 255 - expected).max() <= 0.5 / 255 + 1e-5


def test_all_files_succeeding_exit_zero(tmp_path, inference_tool, weights, images):
    folder, _ = images
    (folder / 'readme.txt').unlink()
    assert inference_tool.main(['-i', str(folder / 'rgb.png'), '-o', str(tmp_path / 'one'), '-w', str(weights)]) == 0
    assert [p.name for p in (tmp_path / 'one').iterdir()] == ['rgb_x2.png']


def test_never_overwrites_an_input(tmp_path, capsys, inference_tool, weights, images):
    folder, _ = images
    cv2.imwrite(str(folder / 'rgb_x2.png'), np.zeros((4, 4, 3), np.uint8))  # would be the output of rgb.png
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert inference_tool.main(['-i', str(folder), '-o', str(folder), '-w', str(weights)]) == 1
    assert 'refusing to overwrite input files' in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    with pytest.raises(ValueError, match='refusing to overwrite'):
        output_paths([folder / 'a_b.png', folder / 'a.png'], folder, 2, suffix='b')
    assert output_paths([folder / 'rgb.png'], tmp_path, 2) == [tmp_path / 'rgb_x2.png']


def test_scale_option_must_match_weights(weights):
    with pytest.raises(ValueError, match=r'--scale is 4, but weights file .*san_x2\.safetensors is a x2 SAN'):
        load_model(weights, scale=4)


def test_authors_weights_detected(tmp_path, weights):
    from san_plugin.convert.original_san import san_state_to_original

    net, scale = load_model(weights)
    authors = tmp_path / 'SAN_BIX2.pt'
    torch.save(san_state_to_original(net.state_dict(), {'num_feat': 16, 'num_group': 1}), authors)
    authors_net, authors_scale = load_model(authors)
    assert scale == authors_scale == SCALE
    img = np.random.default_rng(1).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    assert np.array_equal(upscale_keeping_format(net, img, scale), upscale_keeping_format(authors_net, img, scale))


def test_tiled_matches_whole_image_closely(net):
    pytest.importorskip('san_plugin.utils.test_time')
    img = np.random.default_rng(2).integers(0, 256, (40, 36, 3), dtype=np.uint8)
    whole = upscale_keeping_format(net, img, SCALE).astype(np.int32)
    tiled = upscale_keeping_format(net, img, SCALE, tile=24, tile_pad=8).astype(np.int32)
    assert tiled.shape == whole.shape
    assert np.abs(tiled - whole).mean() < 8  # the non-local module and SOCA see each tile only
