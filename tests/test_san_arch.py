"""SAN and its blocks: any input size, stability, mixed precision, ablation switches. The output shape at every scale
and the gradients of every switch combination: ``test_archs``."""

import re

import numpy as np
import pytest
import scipy.linalg
import torch
import yaml
from basicsr.archs import build_network
from basicsr.utils.options import ordered_yaml
from helpers.san import COMBINATIONS, randomise_zero_parameters

import san_plugin  # noqa: F401  (registers the archs)
from san_plugin.archs import drln_arch
from san_plugin.archs.region_nonlocal_arch import RegionNonLocal
from san_plugin.archs.san_arch import CHANNEL_ATTENTIONS, LSRAG, AttentionResidualBlock
from san_plugin.archs.soca_arch import covariance, sqrtm_newton_schulz
from san_plugin.compat.network_options import check_network_options

TINY = {'type': 'SAN', 'num_feat': 16, 'num_group': 2, 'num_block': 1, 'squeeze_factor': 4}

# The paper's ablations: each switch alone, and all of them off (RCAN-like groups without attention).
VARIANTS = {
    'paper': {},
    'first_order': {'channel_attention': 'first_order'},
    'no_channel_attention': {'channel_attention': 'none'},
    'no_nonlocal': {'use_nonlocal': False},
    'no_share_source_skip': {'share_source_skip': False},
    'all_off': {'channel_attention': 'none', 'use_nonlocal': False, 'share_source_skip': False},
}
COMBINATION_IDS = ['-'.join(str(v) for v in combination.values()) for combination in COMBINATIONS]


def tiny_san(upscale=2):
    """The tiny SAN at ``upscale``, its zero-initialised layers randomised, in eval mode."""
    return randomise_zero_parameters(build_network({**TINY, 'upscale': upscale})).eval()


def paper_keys(num_group, num_block, upsample_convs):
    """State dict keys of the paper's SAN, in order (its own parameter first, then its modules')."""
    conv = ('weight', 'bias')
    keys = ['gamma'] + [f'sub_mean.{p}' for p in conv] + [f'conv_first.{p}' for p in conv]
    keys += [f'non_local.{m}.{p}' for m in ('theta', 'phi', 'g', 'conv_out') for p in conv]
    for i in range(num_group):
        keys += [f'body.{i}.blocks.{j}.{c}.{p}' for j in range(num_block) for c in ('conv1', 'conv2') for p in conv]
        keys += [f'body.{i}.soca.attention.{k}.{p}' for k in (0, 2) for p in conv]
        keys += [f'body.{i}.conv.{p}' for p in conv]
    keys += [f'upsample.{k}.{p}' for k in upsample_convs for p in conv]
    return keys + [f'conv_last.{p}' for p in conv] + [f'add_mean.{p}' for p in conv]


@pytest.mark.parametrize('size', [(1, 1), (1, 5), (2, 2), (3, 3), (5, 2), (17, 23), (32, 32)])
def test_any_input_size(size):
    net = tiny_san()
    with torch.no_grad():
        out = net(torch.rand(2, 3, *size))
    assert out.shape == (2, 3, 2 * size[0], 2 * size[1])
    assert torch.isfinite(out).all()


def test_batch_items_are_independent():
    net, x = tiny_san(), torch.rand(3, 3, 13, 10)
    with torch.no_grad():
        assert torch.allclose(net(x), torch.cat([net(x[i : i + 1]) for i in range(3)]), atol=1e-5)


def test_constant_image_gives_finite_output():
    net = tiny_san(upscale=4)
    with torch.no_grad():
        out = net(torch.full((1, 3, 12, 12), 0.5))
    assert torch.isfinite(out).all()


def test_bfloat16_autocast_is_finite_and_close_to_float32():
    net = tiny_san()
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


@pytest.mark.parametrize('upscale, upsample_convs', [(2, [0]), (3, [0]), (4, [0, 2])])
def test_default_network_keeps_the_paper_keys(upscale, upsample_convs):
    explicit = {'channel_attention': 'second_order', 'use_nonlocal': True, 'share_source_skip': True,
                'attention_placement': 'group'}  # fmt: skip
    for options in ({}, explicit):
        net = build_network({**TINY, 'num_block': 2, 'upscale': upscale, **options})
        assert list(net.state_dict()) == paper_keys(2, 2, upsample_convs)


@pytest.mark.parametrize('variant', COMBINATIONS, ids=COMBINATION_IDS)
def test_variant_builds_only_its_modules(variant):
    keys = list(build_network({**TINY, **variant}).state_dict())
    attention, placement = variant['channel_attention'], variant['attention_placement']
    for kind, name in CHANNEL_ATTENTIONS.items():
        if name is None:
            continue
        in_groups = [k for k in keys if re.match(rf'body\.\d+\.{name}\.', k)]
        in_blocks = [k for k in keys if re.match(rf'body\.\d+\.blocks\.\d+\.{name}\.', k)]
        assert bool(in_groups) == (attention == kind and placement == 'group'), kind
        assert bool(in_blocks) == (attention == kind and placement == 'block'), kind
        if in_blocks:  # one module in every block of every group
            assert {k.split(f'.{name}.')[0] for k in in_blocks} == {f'body.{i}.blocks.0' for i in range(2)}
    assert any(key.startswith('non_local.') for key in keys) == variant['use_nonlocal']
    assert ('gamma' in keys) == variant['share_source_skip']
    common = [
        key for key in paper_keys(2, 1, [0, 2]) if not key.startswith(('non_local.', 'gamma')) and 'soca' not in key
    ]
    assert [key for key in keys if key in common] == common


@pytest.mark.parametrize('variant', [*VARIANTS.values(), *COMBINATIONS], ids=[*VARIANTS, *COMBINATION_IDS])
def test_variant_builds_from_an_options_file(tmp_path, variant):
    options = {'network_g': {**TINY, 'upscale': 2, **variant}}
    path = tmp_path / 'variant.yml'
    path.write_text(yaml.dump(options))
    with open(path) as f:
        opt = yaml.load(f, Loader=ordered_yaml()[0])
    check_network_options(opt, str(path))
    net = build_network(opt['network_g'])
    assert list(net.state_dict()) == list(build_network(options['network_g']).state_dict())
    assert net(torch.rand(1, 3, 6, 6)).shape == (1, 3, 12, 12)


def test_first_order_attention_is_rcans():
    """Average pooling, the bottleneck, a sigmoid and a product, between the residual blocks and the group's conv."""
    group = LSRAG(16, 1, 4, soca_crop=1000, soca_iter=5, channel_attention='first_order')
    x = torch.rand(2, 16, 7, 5)
    mlp = group.channel_attention.attention
    with torch.no_grad():
        feat = group.blocks(x)
        pooled = feat.mean(dim=(2, 3), keepdim=True)
        weight = torch.sigmoid(mlp[3](torch.relu(mlp[1](pooled))))
        expected = group.conv(feat * weight) + x
        assert torch.allclose(group(x), expected, atol=1e-6)
        no_attention = LSRAG(16, 1, 4, soca_crop=1000, soca_iter=5, channel_attention='none')
        no_attention.load_state_dict(group.state_dict(), strict=False)
        assert torch.allclose(no_attention(x), group.conv(feat) + x, atol=1e-6)


def test_attention_in_blocks_is_rcans_rcab_and_none_after_the_blocks():
    """block placement: x + CA(conv2(relu(conv1(x)))) in every block (first order: RCAN's RCAB), then only the conv."""
    group = LSRAG(16, 2, 4, soca_crop=1000, soca_iter=5, channel_attention='first_order', attention_placement='block')
    assert group.attention_name is None and not hasattr(group, 'channel_attention')
    x = torch.rand(2, 16, 7, 5)
    with torch.no_grad():
        feat = x
        for block in group.blocks:
            assert isinstance(block, AttentionResidualBlock)
            branch = block.conv2(torch.relu(block.conv1(feat)))
            mlp = block.channel_attention.attention
            weight = torch.sigmoid(mlp[3](torch.relu(mlp[1](branch.mean(dim=(2, 3), keepdim=True)))))
            feat = feat + branch * weight
        assert torch.allclose(group(x), group.conv(feat) + x, atol=1e-6)


@pytest.mark.parametrize('placement', ['group', 'block'])
def test_laplacian_attention_is_drlns_module(placement):
    """The module of drln_arch (not a copy): pooled features, three dilated branches, a conv and a sigmoid."""
    group = LSRAG(16, 1, 4, soca_crop=1000, soca_iter=5, channel_attention='laplacian', attention_placement=placement)
    owner = group if placement == 'group' else group.blocks[0]
    attention = owner.laplacian_attention
    assert type(attention) is drln_arch.LaplacianAttention
    x = torch.rand(2, 16, 7, 5)
    with torch.no_grad():
        pooled = x.mean(dim=(2, 3), keepdim=True)
        pyramid = torch.cat([torch.relu(branch(pooled)) for branch in attention.branches], dim=1)
        assert [branch.dilation for branch in attention.branches] == [(3, 3), (5, 5), (7, 7)]
        assert torch.allclose(attention(x), x * torch.sigmoid(attention.conv_out(pyramid)), atol=1e-6)


def test_switched_off_parts_are_skipped_in_forward():
    """Without RL-NL or the share-source skip, the paper's network with that part neutralised gives the same output."""
    paper = build_network({**TINY, 'upscale': 2})
    with torch.no_grad():
        paper.non_local.conv_out.weight.normal_(0, 0.1)
    x = torch.rand(1, 3, 8, 8)
    no_skip = build_network({**TINY, 'upscale': 2, 'share_source_skip': False})
    no_skip.load_state_dict({k: v for k, v in paper.state_dict().items() if k != 'gamma'})
    with torch.no_grad():
        paper.gamma.fill_(0.0)
        assert torch.equal(no_skip(x), paper(x))
        paper.gamma.fill_(0.3)
        no_nonlocal = build_network({**TINY, 'upscale': 2, 'use_nonlocal': False})
        no_nonlocal.load_state_dict({k: v for k, v in paper.state_dict().items() if not k.startswith('non_local.')})
        assert not torch.allclose(no_nonlocal(x), paper(x))
        paper.non_local.conv_out.weight.zero_()
        assert torch.allclose(no_nonlocal(x), paper(x), atol=1e-6)


@pytest.mark.parametrize(
    'key, value',
    [
        ('channel_attention', 'third_order'),
        ('attention_placement', 'rcab'),
        ('use_nonlocal', 'yes'),
        ('share_source_skip', 1),
    ],
)
def test_unknown_switch_values_name_the_argument(key, value):
    with pytest.raises(ValueError, match=key):
        build_network({**TINY, key: value})
