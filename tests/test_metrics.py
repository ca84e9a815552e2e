"""LPIPS and DISTS as BasicSR metrics: torchmetrics' values and their weight files.

The backbones are random (``helpers/backbones.py``): the values test the computation and the loading path, and mean
nothing as image quality.
"""

import shutil

import cv2
import numpy as np
import pytest
import torch
from basicsr.metrics import calculate_metric
from basicsr.metrics.niqe import calculate_niqe
from basicsr.utils.registry import METRIC_REGISTRY
from helpers.backbones import write_random_backbone

from san_plugin.metrics.backbones import MissingWeightsError, WeightsFileError
from san_plugin.metrics.perceptual import calculate_dists, calculate_lpips


def image_pair(h=48, w=56, seed=0):
    """A smooth BGR uint8 image and a noisy copy of it."""
    rng = np.random.default_rng(seed)
    clean = cv2.resize((rng.random((6, 6, 3)) * 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
    noisy = np.clip(clean + rng.normal(0, 12, clean.shape), 0, 255).astype(np.uint8)
    return noisy, clean


def library_tensor(img, crop_border):
    """What torchmetrics takes: RGB float (1, 3, H, W) in [0, 1], written out independently of the plugin's own."""
    cropped = img[crop_border:-crop_border, crop_border:-crop_border].astype(np.float32) / 255.0
    return torch.from_numpy(cropped[:, :, [2, 1, 0]].transpose(2, 0, 1).copy())[None]


def test_registered_beside_basicsr_metrics():
    assert METRIC_REGISTRY.get('calculate_lpips') is calculate_lpips
    assert METRIC_REGISTRY.get('calculate_dists') is calculate_dists
    assert METRIC_REGISTRY.get('calculate_niqe') is calculate_niqe  # BasicSR's own, untouched


@pytest.mark.parametrize('input_order', ['HWC', 'CHW'])
def test_lpips_equals_torchmetrics(torch_home, input_order):
    from torchmetrics.functional.image.lpips import learned_perceptual_image_patch_similarity

    sr, hr = image_pair(64, 72)
    expected = learned_perceptual_image_patch_similarity(
        library_tensor(sr, 3), library_tensor(hr, 3), net_type='squeeze', normalize=True
    )
    if input_order == 'CHW':  # and float images in [0, 255], as BasicSR's metrics take them too
        sr, hr = (img.transpose(2, 0, 1).astype(np.float32) for img in (sr, hr))
    value = calculate_lpips(sr, hr, crop_border=3, input_order=input_order, net='squeeze')
    assert value == float(expected) and value > 0
    assert calculate_lpips(hr, hr, crop_border=3, input_order=input_order, net='squeeze') == 0


@pytest.mark.slow
def test_dists_equals_torchmetrics(torch_home):
    from torchmetrics.functional.image.dists import deep_image_structure_and_texture_similarity

    sr, hr = image_pair()
    with torch.no_grad():
        expected = deep_image_structure_and_texture_similarity(library_tensor(sr, 2), library_tensor(hr, 2), 'mean')
    # Through BasicSR's calculate_metric, with the options a val.metrics section passes (better included).
    value = calculate_metric({'img': sr, 'img2': hr}, {'type': 'calculate_dists', 'crop_border': 2, 'better': 'lower'})
    assert value == float(expected) and value > 0


def test_backbone_path_is_the_file_read(torch_home, tmp_path, monkeypatch):
    sr, hr = image_pair()
    from_cache = calculate_lpips(sr, hr, 2, net='squeeze')
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'empty'))
    copy = shutil.copy(torch_home / 'hub' / 'checkpoints' / 'squeezenet1_1-b8a52dc0.pth', tmp_path / 'my.pth')
    other = write_random_backbone('squeezenet1_1', tmp_path / 'other', seed=1)
    assert calculate_lpips(sr, hr, 2, net='squeeze', backbone_path=str(copy)) == from_cache
    assert calculate_lpips(sr, hr, 2, net='squeeze', backbone_path=str(other)) != from_cache


def test_a_missing_backbone_stops_the_metric_without_a_download(tmp_path, monkeypatch, offline_hub):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    sr, hr = image_pair()
    cache = tmp_path / 'hub' / 'checkpoints' / 'squeezenet1_1-b8a52dc0.pth'
    message = f'calculate_lpips needs squeezenet1_1-b8a52dc0.pth: put it at {cache} .or give its path as backbone_path'
    with pytest.raises(MissingWeightsError, match=message):
        calculate_lpips(sr, hr, 2, net='squeeze')
    with pytest.raises(MissingWeightsError, match=f'backbone_path: {tmp_path}/nope.pth does not exist'):
        calculate_dists(sr, hr, 2, backbone_path=str(tmp_path / 'nope.pth'))
    assert offline_hub == []


def corrupt_file(path):
    path.write_bytes(b'PK\x03\x04 half a zip')
    return 'cannot be read as a torch file (PytorchStreamReader failed reading zip archive: not a ZIP archive)'


def other_network(path):
    torch.save(torch.load(write_random_backbone('alexnet', path.parent / 'alex'), weights_only=True), path)
    return "is not torchvision squeezenet1_1 weights (missing ['features.3.squeeze.weight'"


def not_a_state_dict(path):
    torch.save([1, 2], path)
    return 'holds a list, not a state dict of squeezenet1_1'


@pytest.mark.parametrize('make_bad', [corrupt_file, other_network, not_a_state_dict], ids=lambda f: f.__name__)
def test_a_bad_backbone_file_is_named(tmp_path, make_bad):
    path = tmp_path / 'backbone.pth'
    expected = make_bad(path)
    with pytest.raises(WeightsFileError) as error:
        calculate_lpips(*image_pair(), 2, net='squeeze', backbone_path=str(path))
    assert str(error.value).startswith(f'calculate_lpips: {path}') and expected in str(error.value)


def test_wrong_inputs_are_named(torch_home):
    sr, hr = image_pair()
    with pytest.raises(ValueError, match="net: 'alexx' is not one of alex, vgg, squeeze"):
        calculate_lpips(sr, hr, 2, net='alexx')
    with pytest.raises(ValueError, match=r'Image shapes are different: \(48, 56, 3\), \(48, 50, 3\)'):
        calculate_lpips(sr, hr[:, :50], 2, net='squeeze')
    with pytest.raises(ValueError, match='expected 3-channel BGR images'):
        calculate_lpips(sr[..., 0], hr[..., 0], 2, net='squeeze')
