"""SAN and its blocks: registry, shapes for any input size, stability, gradients, mixed precision."""

import numpy as np
import pytest
import scipy.linalg
import torch
from basicsr.archs import build_network

import san_plugin  # noqa: F401  (registers the archs)
from san_plugin.archs.region_nonlocal_arch import RegionNonLocal
from san_plugin.archs.soca_arch import covariance, sqrtm_newton_schulz

TINY = {'type': 'SAN', 'num_feat': 16, 'num_group': 2, 'num_block': 1, 'squeeze_factor': 4}


def randomise_zero_init(net):
    """Give the zero-initialised layers (non-local output, shared-source weight) random values."""
    with torch.no_grad():
        net.non_local.conv_out.weight.normal_(0, 0.1)
        net.gamma.fill_(0.3)
    return net


@pytest.mark.parametrize('scale', [2, 3, 4, 8])
def test_registry_builds_each_scale(scale):
    net = build_network({**TINY, 'upscale': scale})
    out = net(torch.rand(1, 3, 9, 7))
    assert out.shape == (1, 3, 9 * scale, 7 * scale)


@pytest.mark.parametrize('size', [(1, 1), (1, 5), (2, 2), (3, 3), (5, 2), (17, 23), (32, 32)])
def test_any_input_size(size):
    net = randomise_zero_init(build_network({**TINY, 'upscale': 2})).eval()
    with torch.no_grad():
        out = net(torch.rand(2, 3, *size))
    assert out.shape == (2, 3, 2 * size[0], 2 * size[1])
    assert torch.isfinite(out).all()


def test_batch_items_are_independent():
    net = randomise_zero_init(build_network({**TINY, 'upscale': 2})).eval()
    x = torch.rand(3, 3, 13, 10)
    with torch.no_grad():
        batched = net(x)
        single = torch.cat([net(x[i : i + 1]) for i in range(3)])
    assert torch.allclose(batched, single, atol=1e-5)


def test_constant_image_gives_finite_output():
    net = randomise_zero_init(build_network({**TINY, 'upscale': 4})).eval()
    with torch.no_grad():
        out = net(torch.full((1, 3, 12, 12), 0.5))
    assert torch.isfinite(out).all()


def test_every_parameter_gets_a_gradient():
    net = randomise_zero_init(build_network({**TINY, 'upscale': 2}))
    out = net(torch.rand(2, 3, 12, 10))
    torch.nn.functional.l1_loss(out, torch.rand_like(out)).backward()
    for name, param in net.named_parameters():
        assert param.grad is not None, name
        assert param.grad.abs().sum() > 0, name


def test_bfloat16_autocast_is_finite_and_close_to_float32():
    net = randomise_zero_init(build_network({**TINY, 'upscale': 2})).eval()
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        reference = net(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            mixed = net(x)
    assert torch.isfinite(mixed).all()
    assert (mixed.float() - reference).abs().mean() < 1e-2


def test_soca_statistics_stay_float32_under_autocast():
    soca = build_network({'type': 'SOCA', 'num_feat': 16, 'squeeze_factor': 4})
    with torch.autocast('cpu', dtype=torch.bfloat16):
        stats = soca.channel_statistics(torch.rand(1, 16, 8, 8).bfloat16())
    assert stats.dtype == torch.float32


def test_covariance_matches_the_centring_matrix_formula():
    x = torch.rand(2, 6, 5, 7, dtype=torch.float64)
    feat = x.flatten(2)
    m = feat.shape[2]
    centring = (torch.eye(m, dtype=torch.float64) - torch.ones(m, m, dtype=torch.float64) / m) / m
    assert torch.allclose(covariance(x), feat @ centring @ feat.transpose(1, 2))


def test_newton_schulz_converges_to_sqrtm():
    feat = torch.rand(1, 8, 64, dtype=torch.float64)
    cov = covariance(feat.view(1, 8, 8, 8))
    exact = torch.from_numpy(np.real(scipy.linalg.sqrtm(cov[0].numpy())))
    errors = [(sqrtm_newton_schulz(cov, n)[0] - exact).abs().max().item() for n in (1, 2, 3, 5, 10)]
    assert all(later < earlier for earlier, later in zip(errors, errors[1:]))
    assert errors[-1] < 1e-12


def test_newton_schulz_rejects_zero_iterations():
    with pytest.raises(ValueError, match='num_iter'):
        sqrtm_newton_schulz(torch.eye(3)[None], 0)


def test_soca_crops_statistics_of_long_sides_only():
    soca = build_network({'type': 'SOCA', 'num_feat': 8, 'squeeze_factor': 2, 'stat_crop': 6})
    x = torch.rand(1, 8, 6, 10)
    centre = x[..., :, 2:8]
    assert torch.allclose(soca.channel_statistics(x), soca.channel_statistics(centre))
    assert not torch.allclose(soca.channel_statistics(x), soca.channel_statistics(x[..., :, :6]))


def test_region_nonlocal_batched_path_matches_per_region_path():
    block = build_network({'type': 'RegionNonLocal', 'num_feat': 16, 'reduction': 4})
    torch.nn.init.normal_(block.conv_out.weight, 0, 0.1)
    x = torch.rand(2, 16, 12, 10)
    per_region = torch.zeros_like(x)
    for rows in (slice(0, 6), slice(6, 12)):
        for cols in (slice(0, 5), slice(5, 10)):
            single = RegionNonLocal(16, 4, grid=1)
            single.load_state_dict(block.state_dict())
            per_region[..., rows, cols] = single(x[..., rows, cols])
    assert torch.allclose(block(x), per_region, atol=1e-6)


def test_bad_options_name_the_argument():
    with pytest.raises(ValueError, match='upscale'):
        build_network({**TINY, 'upscale': 5})
    with pytest.raises(ValueError, match='rgb_mean'):
        build_network({**TINY, 'num_in_ch': 1})
    with pytest.raises(ValueError, match='squeeze_factor'):
        build_network({**TINY, 'squeeze_factor': 32})
