"""SAN, SOCA, RegionNonLocal and DRLN through MMEngine's MODELS registry, in their own scope."""

import pytest
import torch
from mmengine.registry import MODELS, DefaultScope

from san_plugin.archs.drln_arch import DRLN
from san_plugin.archs.region_nonlocal_arch import RegionNonLocal
from san_plugin.archs.san_arch import SAN
from san_plugin.archs.soca_arch import SOCA
from san_plugin.registry import MODELS as SAN_PLUGIN_MODELS

CASES = [
    ('SAN', SAN, {'num_feat': 16, 'num_group': 1, 'num_block': 1, 'squeeze_factor': 4, 'upscale': 2}, (1, 3, 12, 10)),
    ('DRLN', DRLN, {'num_feat': 16, 'squeeze_factor': 4, 'upscale': 2}, (1, 3, 12, 10)),
    ('SOCA', SOCA, {'num_feat': 16, 'squeeze_factor': 4}, (1, 16, 12, 10)),
    ('RegionNonLocal', RegionNonLocal, {'num_feat': 16, 'reduction': 4}, (1, 16, 12, 10)),
]


@pytest.mark.parametrize('name, cls, kwargs, input_shape', CASES, ids=[case[0] for case in CASES])
def test_build_through_mmengine_models(name, cls, kwargs, input_shape):
    net = MODELS.build({'type': f'san_plugin.{name}', **kwargs})
    assert type(net) is cls
    scale = kwargs.get('upscale', 1)
    with torch.no_grad():
        out = net(torch.rand(input_shape))
    assert out.shape == (input_shape[0], out.shape[1], input_shape[2] * scale, input_shape[3] * scale)


def test_build_under_default_scope():
    with DefaultScope.overwrite_default_scope('san_plugin'):
        net = MODELS.build({'type': 'SAN', 'num_feat': 16, 'num_group': 1, 'num_block': 1, 'upscale': 3})
    assert isinstance(net, SAN)


def test_own_scope_does_not_touch_other_names():
    assert SAN_PLUGIN_MODELS.scope == 'san_plugin' and SAN_PLUGIN_MODELS.parent is MODELS
    assert set(SAN_PLUGIN_MODELS.module_dict) == {'SAN', 'DRLN', 'SOCA', 'RegionNonLocal'}
    assert 'SAN' not in MODELS.module_dict and 'DRLN' not in MODELS.module_dict
    with pytest.raises(KeyError, match='not in the'):
        MODELS.build({'type': 'san_plugin.EDSR'})
