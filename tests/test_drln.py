"""DRLN: parity with the authors' code through the converter, converter errors, shallower cascades, the upsampler
switch. The output shape at every scale and the gradients of each variant: ``test_archs``."""

import math

import pytest
import torch
import yaml
from basicsr.archs import build_network
from basicsr.utils.options import ordered_yaml
from helpers.fixture_weights import fixture_and_weights

import san_plugin  # noqa: F401  (registers DRLN)
from san_plugin.archs.drln_arch import DRLN
from san_plugin.benchmark.flops import count_params
from san_plugin.compat.network_options import check_network_options
from san_plugin.convert.loading import load_into_network
from san_plugin.convert.original_drln import (
    drln_config_from_original,
    drln_state_from_original,
    drln_state_to_original,
    is_original_drln,
)

TINY = {'num_feat': 16, 'squeeze_factor': 4}


@pytest.fixture(scope='module')
def drln_x4():
    """The full-size x4 fixture and its rebuilt authors'-format weights (checked against the stored checksums)."""
    return fixture_and_weights('drln_x4_full.pt')


@pytest.fixture
def tiny_original():
    """A small authors'-format state dict (x3), written from one of our networks."""
    return drln_state_to_original(DRLN(upscale=3, **TINY).state_dict())


def test_reproduces_authors_outputs(drln_x4):
    fixture, weights = drln_x4
    assert is_original_drln(weights)
    config = drln_config_from_original(weights)
    assert config == {'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 64, 'squeeze_factor': 16, 'upscale': 4}
    state, dropped = drln_state_from_original(weights)
    assert dropped == ['c4.body.0.weight', 'c4.body.0.bias']
    net = build_network({'type': 'DRLN', **config})
    net.load_state_dict(state, strict=True)
    net.eval()
    for lq, expected in zip(fixture['inputs'], fixture['outputs']):
        with torch.no_grad():
            out = net(lq)
        assert out.shape == expected.shape
        assert (out - expected).abs().max().item() < 1e-4


def test_parameter_count_matches_the_paper(drln_x4):
    """34.58M in the authors' checkpoint; ours lacks only the never-read ``c4`` (64 * 128 * 9 + 64)."""
    fixture, _ = drln_x4
    original_count = sum(math.prod(shape) for _, shape in fixture['entries'])
    assert abs(original_count - 34.58e6) <= 0.01e6
    with torch.device('meta'):
        net = DRLN()
    assert sum(p.numel() for p in net.parameters()) == original_count - (64 * 128 * 9 + 64)


def test_round_trip_is_exact(drln_x4):
    _, weights = drln_x4
    back = drln_state_to_original(drln_state_from_original(weights)[0])
    assert list(back) == list(weights)
    for key in weights:
        if key.startswith('c4.'):
            assert back[key].shape == weights[key].shape and not back[key].any()
        else:
            assert torch.equal(back[key], weights[key]), key


def test_round_trip_from_ours():
    ours = DRLN(upscale=3, **TINY).state_dict()
    original = drln_state_to_original(ours)
    assert drln_config_from_original(original) == {'num_in_ch': 3, 'num_out_ch': 3, 'upscale': 3, **TINY}
    back, dropped = drln_state_from_original(original)
    assert dropped == ['c4.body.0.weight', 'c4.body.0.bias']
    assert set(back) == set(ours)
    assert all(torch.equal(back[key], ours[key]) for key in ours)
    assert list(original)[:3] == ['sub_mean.shifter.weight', 'sub_mean.shifter.bias', 'add_mean.shifter.weight']
    assert list(original)[-2:] == ['tail.weight', 'tail.bias']


def test_detection(tiny_original):
    assert is_original_drln(tiny_original)
    assert not is_original_drln(DRLN(**TINY).state_dict())
    assert not is_original_drln({'head.0.weight': torch.zeros(1), 'tail.1.weight': torch.zeros(1)})


def test_mean_shift_is_in_unit_range_on_255_input():
    """The authors' quirk: the DIV2K mean in [0, 1] units is subtracted from [0, 255] input, and added back."""
    net = DRLN(**TINY)
    mean = torch.tensor([0.4488, 0.4371, 0.4040]).view(1, 3, 1, 1)
    x = torch.rand(1, 3, 2, 2)
    with torch.no_grad():
        assert torch.allclose(net.sub_mean(x * 255), x * 255 - mean, atol=1e-5)
        assert torch.allclose(net.add_mean(x * 255), x * 255 + mean, atol=1e-5)
    assert net.sub_mean.weight.requires_grad and net.add_mean.bias.requires_grad


@pytest.mark.parametrize('upscale', [1, 5, 6, 16])
def test_invalid_upscale_raises(upscale):
    with pytest.raises(ValueError, match='upscale'):
        build_network({'type': 'DRLN', 'upscale': upscale, **TINY})


def _replace(key, shape):
    def corrupt(state):
        state[key] = torch.zeros(shape)

    return corrupt


@pytest.mark.parametrize(
    'corrupt, error, fragments',
    [
        (lambda sd: sd.pop('b7.r2.body.0.weight'), KeyError, ["'b7.r2.body.0.weight'", 'missing']),
        (lambda sd: sd.pop('head.weight'), KeyError, ["'head.weight'"]),
        (_replace('b21.r1.body.0.weight', (16, 16, 3, 3)), KeyError, ["'b21.r1.body.0.weight'", 'unexpected']),
        (
            _replace('c16.body.0.weight', (16, 64, 3, 3)),
            ValueError,
            ["'c16.body.0.weight'", '(16, 64, 3, 3)', '(16, 80, 3, 3)'],
        ),
        (_replace('b3.ca.c4.body.0.bias', (4,)), ValueError, ["'b3.ca.c4.body.0.bias'", '(4,)', '(16,)']),
        (_replace('upsample.up.body.0.weight', (40, 16, 3, 3)), ValueError, ["'upsample.up.body.0.weight' 40"]),
    ],
)
def test_bad_checkpoint_names_the_key(tiny_original, corrupt, error, fragments):
    corrupt(tiny_original)
    with pytest.raises(error) as info:
        drln_state_from_original(tiny_original)
    assert all(fragment in str(info.value) for fragment in fragments), str(info.value)


def test_bad_state_to_original_names_the_key():
    state = DRLN(**TINY).state_dict()
    with pytest.raises(KeyError, match="'extra.weight'"):
        drln_state_to_original({**state, 'extra.weight': torch.zeros(1)})
    state['body.2.fusions.1.bias'] = torch.zeros(3)
    with pytest.raises(ValueError, match=r"'body\.2\.fusions\.1\.bias' has shape \(3,\), expected \(16,\)"):
        drln_state_to_original(state)


SHALLOW = {**TINY, 'cascade_sizes': [2, 2]}


def block_counts(net):
    return [len(cascade.blocks) for cascade in net.body]


def test_default_depth_is_the_authors():
    default, explicit = DRLN(**TINY), DRLN(**TINY, cascade_sizes=[3, 3, 3, 3, 4, 4])
    assert block_counts(default) == [3, 3, 3, 3, 4, 4]
    assert [cascade.num_input_blocks for cascade in default.body] == [1, 2, 1, 1, 1, 1]
    assert list(default.state_dict()) == list(explicit.state_dict())
    assert not any(key.startswith('body.6.') for key in default.state_dict())


@pytest.mark.parametrize('sizes, input_blocks', [([2, 2], [1, 2]), ([1, 1, 1], [1, 1, 1]), ([3], [1])])
def test_shallower_drln_builds_from_options_and_keeps_the_second_cascade_wiring(tmp_path, sizes, input_blocks):
    path = tmp_path / 'drln.yml'
    path.write_text(yaml.dump({'network_g': {'type': 'DRLN', 'upscale': 2, **TINY, 'cascade_sizes': sizes}}))
    with open(path) as f:
        opt = yaml.load(f, Loader=ordered_yaml()[0])
    check_network_options(opt, str(path))
    net = build_network(opt['network_g'])
    assert block_counts(net) == sizes
    assert [cascade.num_input_blocks for cascade in net.body] == input_blocks
    assert count_params(net) < count_params(DRLN(upscale=2, **TINY))
    with torch.no_grad():
        assert net(torch.rand(1, 3, 6, 5)).shape == (1, 3, 12, 10)


def test_second_block_of_second_cascade_reads_the_cascade_input():
    """The second cascade's second block gets the cascade input, not the first fused features (authors' wiring)."""
    cascade = DRLN(**SHALLOW).body[1]
    x = torch.rand(1, 16, 6, 6)
    seen = []
    cascade.blocks[1].register_forward_hook(lambda module, inputs, out: seen.append(inputs[0]))
    with torch.no_grad():
        cascade(x, torch.rand(1, 16, 6, 6))
    assert torch.equal(seen[0], x)


def test_shallower_drln_has_no_authors_format_but_loads_as_ours(tmp_path):
    net = DRLN(upscale=2, **SHALLOW)
    with pytest.raises(ValueError, match=r"cascade_sizes \[2, 2\]; the authors' format exists only"):
        drln_state_to_original(net.state_dict())
    path = tmp_path / 'shallow.pth'
    torch.save({'params': net.state_dict()}, path)
    fresh = DRLN(upscale=2, **SHALLOW)
    assert load_into_network(fresh, path) == []
    assert all(torch.equal(fresh.state_dict()[key], value) for key, value in net.state_dict().items())
    with pytest.raises(ValueError, match='missing keys'):
        load_into_network(DRLN(upscale=2, **TINY), path)


@pytest.mark.parametrize('sizes', [[], [2, 0], [2.5], 3, 'abc', [True]])
def test_bad_cascade_sizes_name_the_argument(sizes):
    with pytest.raises(ValueError, match='cascade_sizes'):
        DRLN(**TINY, cascade_sizes=sizes)


def test_upsampler_without_relu_keeps_the_keys_and_changes_only_the_upsampler(tmp_path):
    path = tmp_path / 'drln.yml'
    path.write_text(yaml.dump({'network_g': {'type': 'DRLN', 'upscale': 4, **SHALLOW, 'upsample_relu': False}}))
    with open(path) as f:
        opt = yaml.load(f, Loader=ordered_yaml()[0])
    check_network_options(opt, str(path))
    plain, authors = build_network(opt['network_g']), DRLN(upscale=4, **SHALLOW)
    assert [type(m).__name__ for m in plain.upsample] == ['Conv2d', 'Identity', 'PixelShuffle'] * 2
    assert [type(m).__name__ for m in authors.upsample] == ['Conv2d', 'ReLU', 'PixelShuffle'] * 2
    assert list(plain.state_dict()) == list(authors.state_dict())
    authors.load_state_dict(plain.state_dict())
    lq = torch.rand(1, 3, 5, 6)
    head = {}
    plain.upsample[0].register_forward_hook(lambda module, inputs, out: head.update(conv=out.clone()))
    out = plain(lq)
    assert head['conv'].min() < 0  # what the authors' ReLU would have cut reaches the next layer
    with torch.no_grad():
        assert not torch.allclose(out, authors(lq))


@pytest.mark.parametrize('value', ['false', 0, None])
def test_upsample_relu_must_be_a_bool(value):
    with pytest.raises(ValueError, match=f'upsample_relu must be true or false, got {value!r}'):
        DRLN(**TINY, upsample_relu=value)
