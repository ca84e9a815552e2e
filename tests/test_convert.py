"""tools/convert_checkpoint.py: authors' SAN/DRLN/RCAN files -> BasicSR .pth / .safetensors that reproduce them,
the printed summary and network_g block, --to-original round trips, RCAN's mean-shift report."""

import math

import pytest
import torch
import torch.nn.functional as F
import yaml
from basicsr.archs import build_network
from basicsr.archs.rcan_arch import RCAN
from conftest import load_tool
from helpers.fixture_weights import fixture_and_weights

import san_plugin  # noqa: F401  (registers the archs)
from san_plugin.archs.drln_arch import DRLN
from san_plugin.archs.san_arch import SAN
from san_plugin.convert.checkpoint_io import load_weights_file, save_weights_file
from san_plugin.convert.convert_file import convert_file
from san_plugin.convert.loading import load_into_network
from san_plugin.convert.original import convert_original_state
from san_plugin.convert.original_rcan import RGB_MEAN, mean_shift_distance, rcan_state_to_original


@pytest.fixture(scope='module')
def convert_tool():
    return load_tool('convert_checkpoint')


def authors_file(tmp_path, name):
    fixture, weights = fixture_and_weights(name)
    path = tmp_path / 'authors.pt'
    torch.save(weights, path)
    return fixture, weights, path


def assert_reproduces(net, fixture):
    net.eval()
    for lq, expected in zip(fixture['inputs'], fixture['outputs']):
        with torch.no_grad():
            assert (net(lq) - expected).abs().max().item() < 1e-4


def network_from_printed_block(output):
    """Build the network from the network_g block that the tool printed."""
    block = yaml.safe_load(output[output.index('network_g:') :])['network_g']
    return build_network(block)


CASES = [
    pytest.param('san_x4_g2b2.pt', 'SAN', 4, id='SAN-x4'),
    pytest.param('san_x3_g2b2.pt', 'SAN', 3, id='SAN-x3'),
    pytest.param('drln_x4_full.pt', 'DRLN', 4, id='DRLN-x4', marks=pytest.mark.slow),  # 35 M parameters
]


@pytest.mark.parametrize('name, arch, scale', CASES)
@pytest.mark.parametrize('suffix', ['.pth', '.safetensors'])
def test_convert_then_load_reproduces_authors_outputs(tmp_path, capsys, convert_tool, name, arch, scale, suffix):
    fixture, weights, src = authors_file(tmp_path, name)
    dst = tmp_path / f'converted{suffix}'
    assert convert_tool.main([str(src), str(dst)]) == 0
    output = capsys.readouterr().out
    assert f'architecture: {arch}' in output and f'scale: x{scale}' in output
    net = network_from_printed_block(output)
    num_params = sum(p.numel() for p in net.parameters())
    assert f'parameters: {num_params:,}' in output
    assert 'dropped' in output
    if suffix == '.pth':
        # What BasicSR's own load_network does with strict_load_g: true.
        net.load_state_dict(torch.load(dst, weights_only=True)['params'], strict=True)
    else:
        assert load_into_network(net, dst) == []
    assert_reproduces(net, fixture)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(['authors.pt', dst.name])  # no temp file left


TINY_SAN = {'num_feat': 16, 'squeeze_factor': 4, 'num_group': 1, 'num_block': 1, 'upscale': 2}


@pytest.mark.parametrize(
    'network, message',
    [
        (SAN(**TINY_SAN, use_nonlocal=False), 'use_nonlocal=False'),
        (SAN(**TINY_SAN, channel_attention='none'), "channel_attention='none'"),
        (DRLN(num_feat=8, squeeze_factor=4, upscale=2, cascade_sizes=[1]), 'cascade_sizes [1]'),
        (SAN(**TINY_SAN, channel_attention='laplacian'), "channel_attention='laplacian'"),
        (SAN(**TINY_SAN, attention_placement='block'), "attention_placement='block'"),
    ],
    ids=['san_without_nonlocal', 'san_without_attention', 'shallow_drln', 'san_laplacian', 'san_attention_in_blocks'],
)
def test_networks_without_an_authors_format_are_refused_on_the_way_out(
    tmp_path, convert_tool, capsys, network, message
):
    save_weights_file(network.state_dict(), tmp_path / 'ours.pth')
    assert convert_tool.main(['--to-original', str(tmp_path / 'ours.pth'), str(tmp_path / 'back.pt')]) != 0
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['ours.pth']


@pytest.mark.parametrize('name', ['san_x4_g2b2.pt', pytest.param('drln_x4_full.pt', marks=pytest.mark.slow)])
def test_to_original_round_trip_is_exact(tmp_path, convert_tool, name):
    _, weights, src = authors_file(tmp_path, name)
    ours, back = tmp_path / 'ours.safetensors', tmp_path / 'back.pt'
    assert convert_tool.main([str(src), str(ours)]) == 0
    assert convert_tool.main(['--to-original', str(ours), str(back)]) == 0
    restored = torch.load(back, weights_only=True)  # a bare state dict, as the authors' scripts expect
    _, _, _, dropped = convert_original_state(weights)
    assert set(restored) == set(weights)
    for key, tensor in weights.items():
        if key in dropped:  # never used by the authors' forward: written as zeros
            assert restored[key].shape == tensor.shape and not restored[key].any(), key
        else:
            assert torch.equal(restored[key], tensor), key


def test_refuses_to_overwrite_input(tmp_path, capsys, convert_tool):
    _, _, src = authors_file(tmp_path, 'san_x3_g2b2.pt')
    before = src.read_bytes()
    assert convert_tool.main([str(src), str(src)]) == 1
    assert 'refusing to overwrite the input file' in capsys.readouterr().err
    assert src.read_bytes() == before


def test_unknown_output_suffix_is_an_error(tmp_path, capsys, convert_tool):
    _, _, src = authors_file(tmp_path, 'san_x3_g2b2.pt')
    assert convert_tool.main([str(src), str(tmp_path / 'out.ckpt')]) == 1
    assert "unknown suffix '.ckpt'" in capsys.readouterr().err
    assert not (tmp_path / 'out.ckpt').exists()


# RCAN: the authors' files (yulunzhang/RCAN) -> BasicSR's RCAN.
RCAN_TINY = {'num_feat': 16, 'num_group': 2, 'num_block': 2, 'squeeze_factor': 4}


def authors_rcan_forward(state, x, num_group, num_block, scale):
    """The authors' RCAN forward on [0, 255] input, computed from their key layout."""

    def conv(name, tensor):
        weight = state[f'{name}.weight']
        return F.conv2d(tensor, weight, state[f'{name}.bias'], padding=weight.shape[-1] // 2)

    head = conv('head.0', conv('sub_mean', x))
    body = head
    for i in range(num_group):
        group = body
        for j in range(num_block):
            block = f'body.{i}.body.{j}.body'
            res = conv(f'{block}.2', F.relu(conv(f'{block}.0', group)))
            squeezed = F.relu(conv(f'{block}.3.conv_du.0', res.mean((2, 3), keepdim=True)))
            group = group + res * torch.sigmoid(conv(f'{block}.3.conv_du.2', squeezed))
        body = conv(f'body.{i}.body.{num_block}', group) + body
    feat = conv(f'body.{num_group}', body) + head
    for stage in range(int(math.log2(scale))):
        feat = F.pixel_shuffle(conv(f'tail.0.{2 * stage}', feat), 2)
    return conv('add_mean', conv('tail.1', feat))


@pytest.mark.parametrize('scale', [2, 4])
def test_rcan_converts_to_basicsr_rcan(tmp_path, capsys, convert_tool, scale):
    reference = RCAN(3, 3, upscale=scale, **RCAN_TINY)
    authors = rcan_state_to_original(reference.state_dict())
    lq = torch.rand(1, 3, 10, 12)
    with torch.no_grad():
        expected = authors_rcan_forward(authors, lq * 255, RCAN_TINY['num_group'], RCAN_TINY['num_block'], scale)
    src, dst = tmp_path / f'RCAN_BIX{scale}.pt', tmp_path / 'rcan.pth'
    torch.save(authors, src)
    assert convert_tool.main([str(src), str(dst)]) == 0
    output = capsys.readouterr().out
    assert 'architecture: RCAN' in output and f'scale: x{scale}' in output
    assert 'no mean-shift layers' in output and 'sub_mean.weight 0,' in output
    net = network_from_printed_block(output)
    net.load_state_dict(load_weights_file(dst)['params'], strict=True)
    with torch.no_grad():
        assert (net.eval()(lq) - expected / 255).abs().max().item() < 1e-5


def test_rcan_mean_shift_distance_is_reported(tmp_path, capsys, convert_tool):
    reference = RCAN(3, 3, upscale=2, **RCAN_TINY)
    authors = rcan_state_to_original(reference.state_dict())
    authors['sub_mean.bias'] = authors['sub_mean.bias'] + torch.tensor([0.0, 1.5, 0.0])
    authors['add_mean.weight'] = authors['add_mean.weight'] * 1.01
    distance = mean_shift_distance(authors)
    assert distance['sub_mean.bias'] == pytest.approx(1.5, abs=1e-4)
    assert distance['add_mean.weight'] == pytest.approx(0.01, abs=1e-6)
    assert distance['sub_mean.weight'] == 0 and distance['add_mean.bias'] < 1e-4
    src = tmp_path / 'RCAN_BIX2.pt'
    torch.save(authors, src)
    assert convert_tool.main([str(src), str(tmp_path / 'rcan.safetensors')]) == 0
    output = capsys.readouterr().out
    assert 'sub_mean.bias 1.5' in output and 'add_mean.weight 0.01' in output
    arch, state, config, dropped = convert_original_state(authors)
    assert arch == 'RCAN' and config['upscale'] == 2 and config['rgb_mean'] == list(RGB_MEAN)
    assert sorted(dropped) == ['add_mean.bias', 'add_mean.weight', 'sub_mean.bias', 'sub_mean.weight']
    reference_state = reference.state_dict()
    assert set(state) == set(reference_state)
    assert all(torch.equal(state[key], reference_state[key]) for key in state)


def test_rcan_round_trip_to_original(tmp_path, convert_tool):
    authors = rcan_state_to_original(RCAN(3, 3, upscale=3, **RCAN_TINY).state_dict())
    src, ours, back = tmp_path / 'RCAN_BIX3.pt', tmp_path / 'ours.pth', tmp_path / 'back.pt'
    torch.save(authors, src)
    assert convert_tool.main([str(src), str(ours)]) == 0
    assert convert_tool.main(['--to-original', str(ours), str(back)]) == 0
    restored = torch.load(back, weights_only=True)
    assert list(restored) == list(authors)
    assert all(torch.equal(restored[key], authors[key]) for key in authors)


def test_convert_file_summary(tmp_path):
    _, weights, src = authors_file(tmp_path, 'san_x3_g2b2.pt')
    summary = convert_file(src, tmp_path / 'san.pth')
    assert summary['arch'] == 'SAN' and summary['config']['upscale'] == 3
    assert summary['config']['num_feat'] == 32 and summary['config']['squeeze_factor'] == 8
    assert summary['num_params'] == sum(t.numel() for t in load_weights_file(tmp_path / 'san.pth')['params'].values())


def test_missing_output_folders_are_created(tmp_path, convert_tool):
    """The README's example writes experiments/pretrained_models/SAN_x4.pth in a fresh clone."""
    source = SAN(**TINY_SAN)
    save_weights_file(source.state_dict(), tmp_path / 'san.pth')
    out = tmp_path / 'experiments' / 'pretrained_models' / 'SAN_x2.pth'
    assert convert_tool.main([str(tmp_path / 'san.pth'), str(out)]) == 0
    net = SAN(**TINY_SAN)
    load_into_network(net, out)
    assert all(torch.equal(net.state_dict()[key], tensor) for key, tensor in source.state_dict().items())
