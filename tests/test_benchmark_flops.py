"""FLOPs of the benchmarks (MMEngine's FlopAnalyzer): RCAN and SAN against counts by hand, per module too."""

import pytest
from basicsr.archs.rcan_arch import RCAN
from torch import nn

from san_plugin.archs.san_arch import SAN
from san_plugin.benchmark.flops import count_flops, count_flops_by_module, count_params

H = W = 12


def test_rcan_flops_equal_analytic_conv_count():
    feat, group, block, squeeze = 16, 2, 2, 4
    net = RCAN(3, 3, num_feat=feat, num_group=group, num_block=block, squeeze_factor=squeeze, upscale=4).eval()
    hw = H * W
    conv3 = feat * feat * 9 * hw
    channel_attention = feat * hw + 2 * feat * (feat // squeeze)  # global average pool + two 1x1 convs on 1x1 maps
    expected = (
        3 * feat * 9 * hw  # conv_first
        + group * (block * (2 * conv3 + channel_attention) + conv3)  # RCABs and each group's last conv
        + conv3  # conv_after_body
        + feat * 4 * feat * 9 * (hw + 4 * hw)  # x2 upsampler convs at H x W and 2H x 2W
        + feat * 3 * 9 * 16 * hw  # conv_last at 4H x 4W
    )
    total, by_operator = count_flops(net, (3, H, W))
    assert total == expected
    assert set(by_operator) == {'conv', 'adaptive_avg_pool2d'}


def san_flops_by_hand(feat, group, block, squeeze, num_iter, reduction, h, w):
    """Multiply-accumulates of an x2 SAN, written out from its structure (``shared/REFERENCE.md``).

    Returns:
        dict[str, int]: Per top-level module (``non_local`` for both of its calls).
    """
    hw, inter = h * w, feat // reduction
    conv3 = feat * feat * 9 * hw
    # Region non-local: 2 x 2 regions of (h/2 x w/2) queries against (h/4 x w/4) 2x2-max-pooled keys; q k^T and
    # softmax(.) v each take one MAC per (query, key, channel); four 1x1 convs (theta, phi, g, out).
    queries, keys = (h // 2) * (w // 2), (h // 4) * (w // 4)
    non_local = 4 * queries * keys * (inter + inter) + 4 * feat * inter * hw
    covariance = feat * feat * hw  # (X - mean)(X - mean)^T
    newton_schulz = (3 * num_iter - 1) * feat**3  # Z Y, T Z and Y T per step; the last step skips T Z
    squeeze_excitation = 2 * feat * (feat // squeeze)  # two 1x1 convs on the 1x1 statistics
    lsrag = block * 2 * conv3 + covariance + newton_schulz + squeeze_excitation + conv3
    return {
        'sub_mean': 3 * 3 * hw,
        'conv_first': 3 * feat * 9 * hw,
        'non_local': 2 * non_local,
        'body': group * lsrag,
        'upsample': feat * 4 * feat * 9 * hw,
        'conv_last': feat * 3 * 9 * 4 * hw,
        'add_mean': 3 * 3 * 4 * hw,
    }


@pytest.mark.parametrize('num_iter', [1, 5])
def test_san_flops_equal_a_count_by_hand(num_iter):
    """Convolutions, the non-local attention products and SOCA's covariance and Newton-Schulz products, by hand."""
    feat, group, block, squeeze = 16, 2, 2, 4
    net = SAN(num_feat=feat, num_group=group, num_block=block, squeeze_factor=squeeze, upscale=2, soca_iter=num_iter)
    expected = san_flops_by_hand(feat, group, block, squeeze, num_iter, reduction=8, h=H, w=W)
    total, by_operator = count_flops(net.eval(), (3, H, W))
    assert total == sum(expected.values())
    assert by_operator['scaled_dot_product_attention'] == 2 * 4 * (H // 2) * (W // 2) * (H // 4) * (W // 4) * 2 * 2
    assert by_operator['bmm'] == group * (feat * feat * H * W + (3 * num_iter - 1) * feat**3)
    by_module = count_flops_by_module(net, (3, H, W))
    assert {name: sum(ops.values()) for name, ops in by_module.items() if name} == expected
    assert sum(by_module[''].values()) == total


def test_flops_by_module_depth_and_switched_off_parts():
    """Deeper listings add the groups and the non-local convs; a SAN without RL-NL saves exactly its FLOPs."""
    options = {'num_feat': 16, 'num_group': 2, 'num_block': 1, 'squeeze_factor': 4, 'upscale': 2}
    net = SAN(**options).eval()
    by_module = count_flops_by_module(net, (3, H, W), depth=2)
    assert {'body.0', 'body.1', 'non_local.theta', 'non_local.conv_out'} <= set(by_module)
    assert 'body.0.blocks' not in by_module
    assert sum(by_module['body.0'].values()) + sum(by_module['body.1'].values()) == sum(by_module['body'].values())
    without = count_flops(SAN(**options, use_nonlocal=False).eval(), (3, H, W))[0]
    assert without == sum(by_module[''].values()) - sum(by_module['non_local'].values())
    with pytest.raises(ValueError, match='depth'):
        count_flops_by_module(net, (3, H, W), depth=0)


def test_count_params():
    assert count_params(nn.Conv2d(3, 4, 3)) == 3 * 4 * 9 + 4
