"""Reduced precision: float16 stays finite on every fixture input, and bfloat16 costs under 0.05 dB PSNR on Set5 x4."""

import json

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import load_tool, require_shared
from helpers.fixture_weights import fixture_and_weights

import san_plugin
from san_plugin.archs.san_arch import SAN
from san_plugin.archs.soca_arch import SOCA
from san_plugin.data.images import bicubic_resize

benchmark = load_tool('benchmark')


@pytest.mark.slow  # float16 has no fast CPU kernels: the full-size networks take seconds per input
@pytest.mark.parametrize('name', ['san_x4_g2b2.pt', 'san_x3_g2b2.pt', 'san_x4_full.pt', 'drln_x4_full.pt'])
def test_float16_autocast_is_finite_and_close_on_fixture_inputs(name):
    fixture, weights = fixture_and_weights(name)
    net = san_plugin.from_original(weights)
    for lq, expected in zip(fixture['inputs'], fixture['outputs']):
        with torch.no_grad(), torch.autocast('cpu', dtype=torch.float16):
            out = net(lq)
        assert torch.isfinite(out).all()
        assert (out.float() - expected).abs().max().item() < 0.1


def training_crops(count, hr_size, scale, rng):
    """HR crops of BSD200 and their bicubic LR, as (lq, gt) float tensors in [0, 1]."""
    files = sorted(require_shared('datasets', 'BSD200').glob('*.png'))[:20]
    hrs, lrs = [], []
    for index in range(count):
        img = cv2.imread(str(files[index % len(files)]))
        top = rng.integers(0, img.shape[0] - hr_size)
        left = rng.integers(0, img.shape[1] - hr_size)
        hr = img[top : top + hr_size, left : left + hr_size]
        hrs.append(hr)
        lrs.append(bicubic_resize(hr, 1 / scale))

    def to_tensor(images):
        return torch.from_numpy(np.stack(images)[..., ::-1].copy()).permute(0, 3, 1, 2).float() / 255

    return to_tensor(lrs), to_tensor(hrs)


def quickly_trained_san_x4(steps=150, batch=8):
    """A tiny SAN trained as every recipe trains, with a decaying learning rate (cosine, as the studies), so that it
    ends at a converged point rather than wherever the last large step left it, as a network in real use does. (With a
    constant rate it ended at 27.27 dB on Set5, where bfloat16 cost 0.079 dB on a CPU without AVX-512 and under
    0.05 dB on one with it.)"""
    torch.manual_seed(0)
    net = SAN(num_feat=16, num_group=2, num_block=2, squeeze_factor=4, upscale=4)
    lq, gt = training_crops(160, 64, 4, np.random.default_rng(0))
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for _ in range(steps):
        index = torch.randint(0, len(lq), (batch,))
        loss = F.l1_loss(net(lq[index]), gt[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    return net.eval()


@pytest.mark.slow
def test_bfloat16_psnr_within_0_05_db_of_float32_on_set5_x4(tmp_path):
    set5 = require_shared('datasets', 'Set5')
    weights = tmp_path / 'san_x4.pth'
    torch.save({'params': quickly_trained_san_x4().state_dict()}, weights)
    psnr = {}
    for amp in (None, 'bfloat16'):
        out = tmp_path / str(amp)
        args = ['quality', '--no-progress', '--model', f'san={weights}', '--scale', '4', '--out', str(out)]
        args += ['--dataset', f'Set5={set5}/HR/x{{scale}}:{set5}/LR_bicubic/x{{scale}}']
        assert benchmark.main(args + (['--amp', amp] if amp else [])) == 0
        (row,) = json.loads((out / 'results.json').read_text())
        psnr[amp] = row['psnr']
    # Trained to about bicubic's 28.43 dB (28.41-28.55 dB over four seeds), as a network in real use and unlike the
    # unconverged 27.27 dB of a constant learning rate; bfloat16 cost -0.002 to 0.011 dB at those seeds without AVX-512.
    assert psnr[None] > 28.0
    assert abs(psnr['bfloat16'] - psnr[None]) < 0.05


def test_quality_amp_option_is_checked(tmp_path, capsys):
    options = tmp_path / 'quality.yml'
    options.write_text('models: [bicubic]\ndatasets: [toy=hr]\nscales: [2]\nout: out\namp: float32\n')
    assert benchmark.main(['quality', '-opt', str(options)]) == 1
    assert "amp: expected one of bfloat16, float16 or null, got 'float32'" in capsys.readouterr().err


def test_soca_statistics_under_bfloat16_autocast_are_the_float32_statistics():
    """SOCA's covariance and square root run in float32 under autocast: the same values, bit for bit, as float32 on
    the same (bfloat16-valued) features, on any CPU. A path that let autocast compute them in bfloat16, even one that
    cast the result back to float32, differs here; the Set5 PSNR test above cannot see it (measured: 0.0001 dB)."""
    soca = SOCA(num_feat=16, squeeze_factor=4)
    feat = torch.randn(2, 16, 9, 7).bfloat16()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        mixed = soca.channel_statistics(feat)
    assert mixed.dtype == torch.float32
    assert torch.equal(mixed, soca.channel_statistics(feat.float()))
