"""FLOPs of the benchmarks (MMEngine's FlopAnalyzer): RCAN against an analytic count, SAN's attention products."""

import pytest
import torch
from basicsr.archs.rcan_arch import RCAN
from torch import nn

from san_plugin.archs.san_arch import SAN
from san_plugin.benchmark.flops import count_flops, count_params

H = W = 12


def conv_only_macs(net, x):
    """Multiply-accumulates of every Conv2d of ``net`` on ``x``, from the output shapes seen by forward hooks."""
    total = []

    def hook(module, _, out):
        total.append(out.numel() * module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1])

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        net(x)
    for handle in handles:
        handle.remove()
    return sum(total)


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


@pytest.mark.parametrize('num_iter', [1, 5])
def test_san_flops_include_covariance_newton_schulz_and_attention(num_iter):
    feat, group = 16, 2
    net = SAN(num_feat=feat, num_group=group, num_block=1, squeeze_factor=4, upscale=2, soca_iter=num_iter).eval()
    x = torch.rand(1, 3, H, W)
    covariance = feat * feat * H * W
    newton_schulz = (3 * (num_iter - 1) + 2) * feat**3
    inter = feat // 8
    queries, keys = (H // 2) * (W // 2), (H // 4) * (W // 4)
    attention = 4 * queries * keys * 2 * inter  # 4 regions, q k^T and attention x v, per use of the module
    total, by_operator = count_flops(net, (3, H, W))
    assert total == conv_only_macs(net, x) + group * (covariance + newton_schulz) + 2 * attention
    assert by_operator['scaled_dot_product_attention'] == 2 * attention


def test_count_params():
    assert count_params(nn.Conv2d(3, 4, 3)) == 3 * 4 * 9 + 4
