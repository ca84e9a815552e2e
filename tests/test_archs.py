"""Every super-resolution network the plugin registers, and BasicSR's RCAN, at every supported scale: the output shape
under ``torch.inference_mode()``, then one training step (a finite loss, a finite non-zero gradient for every
parameter, a lower loss after the step).

The networks are found in BasicSR's registry (the plugin's archs whose constructor takes ``upscale``), so a new one is
covered at once; give it tiny options in ``TINY_OPTIONS`` (otherwise it runs at its default, full size).
"""

import inspect

import pytest
import torch
from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY
from helpers.san import COMBINATIONS, randomise_zero_parameters
from torch.nn import functional as F

import san_plugin  # noqa: F401  (registers the archs)
from san_plugin.archs.common import SUPPORTED_SCALES


def plugin_networks():
    """Names of the super-resolution networks that the plugin registers (its blocks, e.g. SOCA, take no upscale)."""
    return sorted(
        name
        for name, arch in ARCH_REGISTRY
        if arch.__module__.startswith('san_plugin.') and 'upscale' in inspect.signature(arch).parameters
    )


NETWORKS = [*plugin_networks(), 'RCAN']
# Tiny widths and depths. squeeze_factor 1: each attention's ReLU layer is as wide as the features (16 units), so
# that none is dead on the whole batch at initialisation (which would leave the layers before it without gradient).
TINY_OPTIONS = {
    'SAN': {'num_feat': 16, 'num_group': 2, 'num_block': 1, 'squeeze_factor': 1},
    'DRLN': {'num_feat': 16, 'squeeze_factor': 1},
    'RCAN': {'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 16, 'num_group': 2, 'num_block': 1, 'squeeze_factor': 1},
}
# The variants of each network (its defaults alone when it has none here): every combination of SAN's switches
# (the defaults among them), DRLN's authors' depth and shallower cascades with and without the upsampler's ReLU.
VARIANTS = {
    'SAN': COMBINATIONS,
    'DRLN': [{}, {'cascade_sizes': [2, 2]}, {'cascade_sizes': [2, 2], 'upsample_relu': False}],
}
# (batch, height, width): odd sides in inference, odd and even in training.
INFERENCE_INPUT = (2, 5, 5)
TRAIN_INPUT = (2, 6, 7)


def case_id(network, variant, scale):
    """E.g. ``DRLN-cascade_sizes=2,2-x4``."""
    options = [
        f'{key}={",".join(map(str, value)) if isinstance(value, list) else value}' for key, value in variant.items()
    ]
    return '-'.join([network, *options, f'x{scale}'])


CASES = [
    pytest.param(
        {'type': network, **TINY_OPTIONS.get(network, {}), **variant}, scale, id=case_id(network, variant, scale)
    )
    for network in NETWORKS
    for variant in VARIANTS.get(network, [{}])
    for scale in SUPPORTED_SCALES
]


def test_the_registry_gives_the_plugins_networks_and_not_its_blocks():
    blocks = {'SOCA', 'RegionNonLocal'}
    assert blocks <= set(ARCH_REGISTRY.keys())
    assert {'SAN', 'DRLN'} <= set(plugin_networks()) and not blocks & set(plugin_networks())


@pytest.mark.parametrize('network_opt, scale', CASES)
def test_network_upscales_and_trains_one_step(network_opt, scale):
    net = randomise_zero_parameters(build_network({**network_opt, 'upscale': scale}))
    batch, h, w = INFERENCE_INPUT
    with torch.inference_mode():
        out = net(torch.rand(batch, 3, h, w))
    assert out.shape == (batch, 3, h * scale, w * scale)
    assert torch.isfinite(out).all()

    batch, h, w = TRAIN_INPUT
    lq, gt = torch.rand(batch, 3, h, w), torch.rand(batch, 3, h * scale, w * scale)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    out = net(lq)
    assert out.shape == gt.shape
    loss = F.l1_loss(out, gt)
    assert torch.isfinite(loss)
    loss.backward()
    for name, param in net.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0, name
    optimizer.step()
    with torch.no_grad():
        assert F.l1_loss(net(lq), gt) < loss
