"""load_into_network / read_any_checkpoint: every supported format, fine-tuning across scales, and every refusal."""

import logging
import os
import pickle

import pytest
import torch
from helpers.fixture_weights import fixture_and_weights

import san_plugin  # noqa: F401  (registers the archs)
from san_plugin.archs.drln_arch import DRLN
from san_plugin.archs.san_arch import SAN
from san_plugin.convert.checkpoint_io import load_weights_file, save_weights_file
from san_plugin.convert.loading import load_into_network, read_any_checkpoint

TINY_SAN = {'num_feat': 16, 'num_group': 1, 'num_block': 1, 'squeeze_factor': 4}


def tiny_san(upscale=4, **overrides):
    return SAN(upscale=upscale, **{**TINY_SAN, **overrides})


@pytest.fixture
def logger():
    return logging.getLogger('test_loading')


@pytest.fixture
def authors_san(tmp_path):
    fixture, weights = fixture_and_weights('san_x4_g2b2.pt')
    path = tmp_path / 'SAN_BIX4.pt'
    torch.save(weights, path)
    return fixture, path


def assert_same_state(net, state):
    current = net.state_dict()
    assert set(current) == set(state)
    for key, tensor in state.items():
        assert torch.equal(current[key], tensor), key


def test_authors_file_loads_and_reproduces_their_outputs(authors_san, caplog, logger):
    """What pretrain_network_g pointing at an authors' .pt does in SANModel.load_network."""
    fixture, path = authors_san
    arch, _, config, notes = read_any_checkpoint(path)
    assert arch == 'SAN' and config['upscale'] == 4 and config['num_group'] == 2
    assert any("authors' SAN format" in note for note in notes)
    net = SAN(**config)
    with caplog.at_level(logging.INFO, logger='test_loading'):
        assert load_into_network(net, path, logger=logger) == []
    assert 'RG.0.gamma' in caplog.text  # the dropped never-used keys are reported
    net.eval()
    with torch.no_grad():
        assert (net(fixture['inputs'][0]) - fixture['outputs'][0]).abs().max().item() < 1e-4


@pytest.mark.parametrize('suffix', ['.pth', '.safetensors'])
def test_basicsr_checkpoint_and_safetensors(tmp_path, suffix):
    source = tiny_san()
    path = tmp_path / f'net{suffix}'
    save_weights_file(source.state_dict(), path)
    arch, _, config, _ = read_any_checkpoint(path)
    assert arch == 'SAN' and config['upscale'] == 4 and config['num_feat'] == 16
    net = tiny_san()
    load_into_network(net, path)
    assert_same_state(net, source.state_dict())


def test_params_ema_and_module_prefix(tmp_path, caplog, logger):
    source = tiny_san()
    path = tmp_path / 'net.pth'
    torch.save({'params_ema': {f'module.{k}': v for k, v in source.state_dict().items()}}, path)
    net = tiny_san()
    with caplog.at_level(logging.INFO, logger='test_loading'):
        load_into_network(net, path, param_key='params', logger=logger)
    assert "param key 'params' is not in the file; loaded 'params_ema'" in caplog.text
    assert_same_state(net, source.state_dict())


def test_drln_authors_state_loads(tmp_path):
    from san_plugin.convert.original_drln import drln_state_to_original

    source = DRLN(num_feat=16, squeeze_factor=4, upscale=2)
    path = tmp_path / 'DRLN_BIX2.pt'
    torch.save(drln_state_to_original(source.state_dict()), path)
    net = DRLN(num_feat=16, squeeze_factor=4, upscale=2)
    assert load_into_network(net, path) == []
    assert_same_state(net, source.state_dict())


def test_x2_weights_into_x4_network(tmp_path, caplog, logger):
    x2 = tiny_san(upscale=2)
    path = tmp_path / 'san_x2.pth'
    save_weights_file(x2.state_dict(), path)
    net = tiny_san(upscale=4)
    initial = {key: tensor.clone() for key, tensor in net.state_dict().items()}

    with pytest.raises(ValueError) as error:
        load_into_network(net, path)
    message = str(error.value)
    assert str(path) in message and 'scale mismatch' in message
    assert 'the file is a x2 SAN and the network a x4 SAN' in message
    assert 'missing keys: upsample.2.weight, upsample.2.bias' in message
    assert message.endswith('(in an options file: train.allow_scale_change_g: true)')

    with caplog.at_level(logging.WARNING, logger='test_loading'):
        kept = load_into_network(net, path, allow_scale_change=True, logger=logger)
    assert kept == ['upsample.2.weight', 'upsample.2.bias']
    assert 'upsample.2.weight, upsample.2.bias' in caplog.text and 'initial values' in caplog.text
    loaded = net.state_dict()
    for key, tensor in x2.state_dict().items():
        assert torch.equal(loaded[key], tensor), key
    for key in kept:
        assert torch.equal(loaded[key], initial[key]), key


def test_x3_weights_into_x4_network_keep_whole_upsampler(tmp_path):
    path = tmp_path / 'san_x3.safetensors'
    save_weights_file(tiny_san(upscale=3).state_dict(), path)
    kept = load_into_network(tiny_san(upscale=4), path, allow_scale_change=True)
    assert kept == ['upsample.0.weight', 'upsample.0.bias', 'upsample.2.weight', 'upsample.2.bias']


def test_other_configuration_names_key_and_shapes(tmp_path):
    path = tmp_path / 'wide.pth'
    save_weights_file(tiny_san(num_feat=32).state_dict(), path)
    with pytest.raises(ValueError) as error:
        load_into_network(tiny_san(), path)
    message = str(error.value)
    assert str(path) in message
    assert "'conv_first.weight': expected shape (16, 3, 3, 3), found (32, 3, 3, 3)" in message
    assert 'scale mismatch' not in message


def test_a_tensor_of_another_shape_is_named_and_the_rest_loads_when_not_strict(tmp_path):
    """A file that is no network as a whole (one tensor edited): building from it names the key; loading into a
    network does what it did before the file's own check (strict names the key, non-strict loads the rest)."""
    path = tmp_path / 'edited.pth'
    source = tiny_san()
    torch.save({'params': {**source.state_dict(), 'body.0.conv.weight': torch.zeros(16, 16, 1, 1)}}, path)
    with pytest.raises(ValueError) as error:
        read_any_checkpoint(path)
    assert str(error.value) == (
        f"weights file {path}: its tensors are not those of one SAN: key 'body.0.conv.weight' has shape "
        '(16, 16, 1, 1), expected (16, 16, 3, 3)'
    )
    with pytest.raises(
        ValueError, match=r"'body.0.conv.weight': expected shape \(16, 16, 3, 3\), found \(16, 16, 1, 1\)"
    ):
        load_into_network(tiny_san(), path)
    net = tiny_san()
    assert load_into_network(net, path, strict=False) == ['body.0.conv.weight']
    assert torch.equal(net.conv_first.weight, source.conv_first.weight)


def test_other_configuration_loads_what_fits_when_not_strict(tmp_path):
    path = tmp_path / 'deeper.pth'
    source = tiny_san(num_block=2)
    save_weights_file(source.state_dict(), path)
    net = tiny_san()
    with pytest.raises(ValueError, match='unexpected keys: body.0.blocks.1.conv1.weight'):
        load_into_network(net, path)
    assert load_into_network(net, path, strict=False) == []
    assert torch.equal(net.conv_first.weight, source.conv_first.weight)


def test_other_architecture(tmp_path):
    path = tmp_path / 'drln.pth'
    save_weights_file(DRLN(num_feat=16, squeeze_factor=4, upscale=4).state_dict(), path)
    with pytest.raises(ValueError, match=r'drln\.pth holds a x4 DRLN, but the network is a SAN'):
        load_into_network(tiny_san(), path)


class WritesMarker:
    """A pickle payload that would create a file when unpickled by a plain ``torch.load``/``pickle.load``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.filterwarnings('ignore:Detected pickle protocol')
@pytest.mark.parametrize('how', ['torch.save', 'pickle.dump'])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, how):
    marker = tmp_path / 'payload_ran'
    path = tmp_path / 'SAN_BIX4.pt'
    payload = {'params': {'conv_first.weight': WritesMarker(marker)}}
    if how == 'torch.save':
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    for load in (load_weights_file, read_any_checkpoint, lambda p: load_into_network(tiny_san(), p)):
        with pytest.raises(ValueError) as error:
            load(path)
        assert f'refused to load {path}' in str(error.value)
        assert 'nothing in it was run' in str(error.value)
        assert f'{os.mkdir.__module__}.mkdir' in str(error.value)
    assert not marker.exists()


def good_file(tmp_path, suffix):
    path = tmp_path / f'good{suffix}'
    save_weights_file(tiny_san().state_dict(), path)
    return path


@pytest.mark.parametrize('suffix', ['.pth', '.safetensors'])
def test_truncated_file(tmp_path, suffix):
    good = good_file(tmp_path, suffix)
    path = tmp_path / f'truncated{suffix}'
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match=f'{path} is (truncated|not a readable safetensors file)'):
        load_into_network(tiny_san(), path)


@pytest.mark.parametrize('suffix', ['.pth', '.safetensors'])
def test_empty_file(tmp_path, suffix):
    path = tmp_path / f'empty{suffix}'
    path.touch()
    with pytest.raises(ValueError, match=f'weights file {path} is empty'):
        load_into_network(tiny_san(), path)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / 'notes.pth'
    path.write_text('these are not weights\n' * 20)
    with pytest.raises(ValueError, match=f'weights file {path} is truncated, corrupt or not a PyTorch checkpoint'):
        read_any_checkpoint(path)


def test_authors_file_missing_an_identifying_key(tmp_path):
    _, weights = fixture_and_weights('san_x3_g2b2.pt')
    path = tmp_path / 'SAN_BIX3.pt'
    torch.save({k: v for k, v in weights.items() if k != 'non_local.non_local.theta.weight'}, path)
    with pytest.raises(ValueError) as error:
        read_any_checkpoint(path)
    assert str(error.value) == (
        f"weights file {path}: looks like an authors' SAN checkpoint but lacks the key(s) "
        "['non_local.non_local.theta.weight']"
    )


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='missing.pth does not exist'):
        read_any_checkpoint(tmp_path / 'missing.pth')


@pytest.mark.parametrize(
    'content, message',
    [
        (torch.zeros(3), 'holds a Tensor, not a dict of tensors'),
        ({'params': {'conv_first.weight': torch.zeros(1), 'note': 'text'}}, "'note' holds a str, not a tensor"),
        ({'params': {}}, 'holds no tensors'),
    ],
)
def test_not_a_state_dict(tmp_path, content, message):
    path = tmp_path / 'odd.pth'
    torch.save(content, path)
    with pytest.raises(ValueError, match=message):
        read_any_checkpoint(path)


def test_save_refuses_input_and_leaves_no_partial_file(tmp_path, monkeypatch):
    path = good_file(tmp_path, '.pth')
    before = path.read_bytes()
    with pytest.raises(ValueError, match='refusing to overwrite the input file'):
        save_weights_file(tiny_san().state_dict(), path, source=path)
    assert path.read_bytes() == before

    def failing_save(obj, name):
        with open(name, 'wb') as f:
            f.write(b'partial')
        raise OSError('disk full')

    monkeypatch.setattr(torch, 'save', failing_save)
    with pytest.raises(OSError, match='disk full'):
        save_weights_file(tiny_san().state_dict(), tmp_path / 'new.pth')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['good.pth']
