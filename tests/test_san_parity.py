"""SAN reproduces the authors' code: every SAN reference fixture, through from_original and the registry."""

import pytest
import torch
from helpers.fixture_weights import fixture_and_weights

import san_plugin
from san_plugin.convert.original_san import san_state_from_original, san_state_to_original

SAN_FIXTURES = ['san_x4_g2b2.pt', 'san_x3_g2b2.pt', 'san_x4_full.pt']


@pytest.mark.parametrize('name', SAN_FIXTURES)
def test_from_original_reproduces_fixture_outputs(name):
    fixture, weights = fixture_and_weights(name)
    net = san_plugin.from_original(weights)
    assert not net.training
    for lq, expected in zip(fixture['inputs'], fixture['outputs']):
        with torch.no_grad():
            out = net(lq)
        assert out.shape == expected.shape
        assert (out - expected).abs().max().item() < 1e-4


@pytest.mark.parametrize('name', SAN_FIXTURES)
def test_config_is_inferred_from_tensors(name):
    fixture, weights = fixture_and_weights(name)
    _, config, dropped = san_state_from_original(weights)
    original = fixture['config']
    assert config['upscale'] == original['scale']
    assert config['num_group'] == original['n_resgroups']
    assert config['num_block'] == original['n_resblocks']
    assert config['num_feat'] == original['n_feats']
    assert config['squeeze_factor'] == original['reduction']
    assert 'conv_last.weight' in dropped and 'RG.0.gamma' in dropped
    assert any(key.startswith('non_local.soca.') for key in dropped)


def test_trained_mean_shift_is_kept():
    """The fixtures' mean-shift layers are away from identity; dropping them would change the output."""
    fixture, weights = fixture_and_weights('san_x4_g2b2.pt')
    net = san_plugin.from_original(weights)
    assert not torch.equal(net.sub_mean.weight.flatten(1), torch.eye(3))
    fresh = san_plugin.from_original(weights)
    fresh.sub_mean.weight.data = torch.eye(3).view(3, 3, 1, 1)
    with torch.no_grad():
        assert (fresh(fixture['inputs'][0]) - fixture['outputs'][0]).abs().max() > 1e-3


def test_to_original_round_trip():
    _, weights = fixture_and_weights('san_x4_g2b2.pt')
    ours, config, dropped = san_state_from_original(weights)
    back = san_state_to_original(ours, config)
    assert set(back) == set(weights)
    for key in weights:
        assert back[key].shape == weights[key].shape
        if key not in dropped:
            assert torch.equal(back[key], weights[key]), key


def test_path_loading(tmp_path):
    fixture, weights = fixture_and_weights('san_x3_g2b2.pt')
    path = tmp_path / 'SAN_BIX3.pt'
    torch.save(weights, path)
    with torch.no_grad():
        out = san_plugin.from_original(path)(fixture['inputs'][0])
    assert (out - fixture['outputs'][0]).abs().max().item() < 1e-4


def test_module_prefix_is_accepted():
    fixture, weights = fixture_and_weights('san_x3_g2b2.pt')
    net = san_plugin.from_original({f'module.{k}': v for k, v in weights.items()})
    with torch.no_grad():
        assert (net(fixture['inputs'][0]) - fixture['outputs'][0]).abs().max().item() < 1e-4


@pytest.mark.parametrize(
    'corrupt, message',
    [
        (lambda sd: sd.pop('RG.1.conv_last.weight'), "missing key 'RG.1.conv_last.weight'"),
        (lambda sd: sd.__setitem__('RG.0.rcab.1.conv_first.2.weight', torch.zeros(64, 64, 1, 1)), 'expected'),
        (lambda sd: sd.__setitem__('RG.0.extra.weight', torch.zeros(1)), "'RG.0.extra.weight'"),
        (lambda sd: sd.pop('head.0.weight'), 'head.0.weight'),
    ],
    ids=['missing', 'wrong-shape', 'unexpected', 'truncated-head'],
)
def test_wrong_checkpoints_are_refused_with_the_key(corrupt, message):
    _, weights = fixture_and_weights('san_x4_g2b2.pt')
    weights = dict(weights)
    corrupt(weights)
    with pytest.raises((KeyError, ValueError), match=message.replace('.', r'\.').replace('(', r'\(')):
        san_plugin.from_original(weights)


def test_wrong_shape_message_names_both_shapes():
    _, weights = fixture_and_weights('san_x4_g2b2.pt')
    weights = dict(weights, **{'RG.0.rcab.1.conv_first.2.weight': torch.zeros(64, 64, 1, 1)})
    with pytest.raises(ValueError) as info:
        san_plugin.from_original(weights)
    assert 'RG.0.rcab.1.conv_first.2.weight' in str(info.value)
    assert '(64, 64, 1, 1)' in str(info.value) and '(64, 64, 3, 3)' in str(info.value)


def test_other_checkpoints_are_refused():
    with pytest.raises(ValueError, match="not an authors' SAN, DRLN or RCAN checkpoint"):
        san_plugin.from_original({'params': {'conv_first.weight': torch.zeros(1)}})


def test_truncated_and_empty_files_are_refused(tmp_path):
    _, weights = fixture_and_weights('san_x3_g2b2.pt')
    path = tmp_path / 'SAN_BIX3.pt'
    torch.save(weights, path)
    truncated = tmp_path / 'truncated.pt'
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match='truncated.pt'):
        san_plugin.from_original(truncated)
    empty = tmp_path / 'empty.pt'
    empty.write_bytes(b'')
    with pytest.raises(ValueError, match='empty.pt is empty'):
        san_plugin.from_original(empty)
    with pytest.raises(FileNotFoundError, match='missing.pt'):
        san_plugin.from_original(tmp_path / 'missing.pt')
