"""End to end through BasicSR's pipelines: ``pretrain_network_g`` pointing straight at an authors' SAN .pt file in
``python -m basicsr.test``, and x2 weights fine-tuned at x4 in ``python -m basicsr.train``.

SANModel converts the file on load (san_plugin.convert.loading.load_into_network); the saved SR image must be the
authors' network's output on the same input.
"""

import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.archs import build_network
from helpers.fixture_weights import fixture_and_weights
from helpers.workflow import TINY_SAN, describe, make_pairs, read_log, run_python, train_options, write_options

import san_plugin
from san_plugin.convert.original_san import san_config_from_original

pytestmark = pytest.mark.slow


def write_png(path, chw):
    """Write a 3xHxW RGB tensor in [0, 1] as an 8-bit BGR PNG; return the quantised tensor."""
    rgb = (chw.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert cv2.imwrite(str(path), rgb[:, :, ::-1])
    return torch.from_numpy(rgb.astype(np.float32) / 255).permute(2, 0, 1)


@pytest.mark.parametrize('param_key', ['params', None])
def test_basicsr_test_with_authors_checkpoint(tmp_path, param_key):
    fixture, weights = fixture_and_weights('san_x4_g2b2.pt')
    authors_file = tmp_path / 'SAN_BIX4.pt'
    torch.save(weights, authors_file)
    lq_dir, gt_dir = tmp_path / 'lq', tmp_path / 'gt'
    lq_dir.mkdir()
    gt_dir.mkdir()
    lq = write_png(lq_dir / 'img.png', fixture['inputs'][0][0])
    write_png(gt_dir / 'img.png', torch.nn.functional.interpolate(lq[None], scale_factor=4, mode='bicubic')[0])
    opt = {
        'name': 'authors_san',
        'model_type': 'SANModel',
        'scale': 4,
        'num_gpu': 0,
        'datasets': {
            'test_1': {
                'name': 'tiny',
                'type': 'PairedImageDataset',
                'dataroot_gt': str(gt_dir),
                'dataroot_lq': str(lq_dir),
                'io_backend': {'type': 'disk'},
            }
        },
        'network_g': {'type': 'SAN', **san_config_from_original(weights)},
        'path': {'pretrain_network_g': str(authors_file), 'strict_load_g': True, 'param_key_g': param_key},
        'val': {'save_img': True, 'suffix': None, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4}}},
    }
    opt_file = tmp_path / 'test_SAN_x4.yml'
    opt_file.write_text(yaml.safe_dump(opt))
    script = f'from basicsr.test import test_pipeline; test_pipeline({str(tmp_path)!r})'
    result = subprocess.run(
        [sys.executable, '-c', script, '-opt', str(opt_file)], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    saved = cv2.imread(str(tmp_path / 'results/authors_san/visualization/tiny/img_authors_san.png'))
    with torch.no_grad():
        expected = san_plugin.from_original(weights)(lq[None])[0]
    expected = (expected.clamp(0, 1) * 255).round().permute(1, 2, 0).numpy()[:, :, ::-1]
    assert saved.shape == expected.shape
    assert np.abs(saved.astype(np.float32) - expected).max() <= 1


def test_fine_tune_x2_weights_at_x4_through_basicsr_train(tmp_path):
    """``train.allow_scale_change_g: true`` loads x2 weights into a x4 SAN (all but the upsampler's second conv) and
    trains through ``python -m basicsr.train``; with a learning rate of 0 the saved weights are the loaded ones."""
    x2_file = tmp_path / 'san_x2.pth'
    x2 = build_network(dict(TINY_SAN))
    torch.save({'params': x2.state_dict()}, x2_file)
    opt = train_options('finetune_x4', *make_pairs(tmp_path / 'pairs', scale=4), total_iter=2, validate=False)
    opt['scale'] = 4
    opt['network_g']['upscale'] = 4
    opt['path']['pretrain_network_g'] = str(x2_file)
    opt['train'].update(allow_scale_change_g=True, ema_decay=0)
    opt['train']['optim_g']['lr'] = 0
    write_options(tmp_path / 'train.yml', opt)
    proc = run_python(['-m', 'basicsr.train', '-opt', 'train.yml'], cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    log = read_log(tmp_path / 'experiments' / 'finetune_x4', 'train_')
    assert f'Loading {x2_file}: 2 tensors kept their initial values: upsample.2.weight, upsample.2.bias' in log
    saved = torch.load(tmp_path / 'experiments/finetune_x4/models/net_g_latest.pth', weights_only=True)['params']
    assert saved['upsample.2.weight'].shape == (64, 16, 3, 3)  # x4: a second x2 step
    for key, tensor in x2.state_dict().items():
        assert torch.equal(saved[key], tensor), key
