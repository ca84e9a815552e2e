"""SANModel's test path applies the test-time options of the ``val`` section (chop, tiles, self-ensemble)."""

import pytest
import torch

import san_plugin  # noqa: F401  (registers the archs)
from san_plugin.models import plugin_mixin
from san_plugin.models.san_model import SANModel
from san_plugin.utils.test_time import forward_chop, forward_self_ensemble


def bare_model(val):
    """A SANModel with only what its test path reads: the options and the device."""
    model = SANModel.__new__(SANModel)
    model.opt = {'scale': 2, 'val': val, 'network_g': {'type': 'SAN'}}
    model.device = torch.device('cpu')
    return model


def tiny_san():
    net = san_plugin.archs.san_arch.SAN(num_feat=8, num_group=1, num_block=1, squeeze_factor=2, upscale=2).eval()
    torch.nn.init.normal_(net.non_local.conv_out.weight, 0, 0.1)
    return net


def test_val_options_reach_test_forward(monkeypatch):
    seen = {}

    def fake_forward(net, lq, scale, **kwargs):
        seen.update(kwargs, scale=scale)
        return lq

    monkeypatch.setattr(plugin_mixin, 'test_forward', fake_forward)
    val = {'chop': True, 'chop_shave': 4, 'chop_min_size': 100, 'self_ensemble': True, 'tile_pad': 3}
    bare_model(val)._forward_test(tiny_san(), torch.rand(1, 3, 8, 8))
    assert seen == {'scale': 2, 'chop': True, 'shave': 4, 'min_size': 100, 'tile': None, 'tile_pad': 3,
                    'self_ensemble': True}  # fmt: skip


@pytest.mark.parametrize('val', [{}, {'chop': True, 'chop_min_size': 64, 'chop_shave': 2}, {'self_ensemble': True}])
def test_forward_matches_the_strategy(val):
    net, lq = tiny_san(), torch.rand(1, 3, 13, 11)
    with torch.no_grad():
        out = bare_model(val)._forward_test(net, lq)
        if val.get('chop'):
            expected = forward_chop(net, lq, 2, shave=2, min_size=64)
        elif val.get('self_ensemble'):
            expected = forward_self_ensemble(net, lq)
        else:
            expected = net(lq)
    assert torch.allclose(out, expected)
    if val.get('chop'):
        assert not torch.allclose(out, net(lq), atol=1e-6), 'chop should see per-piece statistics'
