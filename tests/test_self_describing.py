"""Weight files that record their network configuration: what SANModel and the converter write, how every loader uses
it, the warnings when a setting is neither recorded nor in the tensors, --network-opt, and the benchmark's
param_key_g / strict_load_g."""

import json
import logging
import warnings

import cv2
import pytest
import torch
import yaml
from basicsr.archs import build_network
from basicsr.archs.rcan_arch import RCAN
from basicsr.models.base_model import BaseModel
from conftest import load_tool
from helpers.fixture_weights import fixture_and_weights
from safetensors import safe_open
from safetensors.torch import load_file

import san_plugin  # noqa: F401  (registers the archs)
from san_plugin.archs.san_arch import SAN
from san_plugin.benchmark.models import parse_model_spec
from san_plugin.convert.checkpoint_io import save_weights_file
from san_plugin.convert.convert_file import convert_file
from san_plugin.convert.loading import load_into_network, read_network_file
from san_plugin.convert.network_config import FORMAT_VERSION, AssumedSettingWarning, network_record
from san_plugin.convert.original import convert_original_state
from san_plugin.inference import load_model
from san_plugin.models.san_model import SANModel

# A SAN trained with settings that its tensors do not show.
HIDDEN = {'img_range': 1.0, 'nonlocal_grid': 3, 'soca_crop': 6, 'soca_iter': 3}
TINY = {'type': 'SAN', 'num_feat': 16, 'num_group': 1, 'num_block': 1, 'squeeze_factor': 4, 'upscale': 2}
SAN_ARGUMENTS = [
    'num_in_ch', 'num_out_ch', 'num_feat', 'num_group', 'num_block', 'squeeze_factor', 'upscale', 'img_range',
    'rgb_mean', 'nonlocal_reduction', 'nonlocal_grid', 'soca_crop', 'soca_iter', 'channel_attention', 'use_nonlocal',
    'share_source_skip', 'attention_placement',
]  # fmt: skip


def hidden_san():
    return SAN(**{key: value for key, value in TINY.items() if key != 'type'}, **HIDDEN).eval()


def output(net, lq):
    with torch.no_grad():
        return net(lq)


@pytest.fixture
def lq():
    return torch.rand(1, 3, 13, 11)


def test_record_holds_every_constructor_argument():
    record = network_record({**TINY, **HIDDEN})
    assert record['format_version'] == FORMAT_VERSION and record['type'] == 'SAN'
    assert list(record['args']) == SAN_ARGUMENTS
    assert record['args']['rgb_mean'] == [0.4488, 0.4371, 0.4040] and record['args']['img_range'] == 1.0
    assert json.loads(json.dumps(record)) == record
    with pytest.raises(ValueError, match="network_g.num_feats: SAN has no option 'num_feats'"):
        network_record({'type': 'SAN', 'num_feats': 8})


def test_san_model_checkpoint_records_network_g(tmp_path, lq):
    """net_g_*.pth as SANModel writes it: BasicSR's own load_network reads it, and the plugin's loaders rebuild the
    network from the record alone."""
    net, ema = hidden_san(), hidden_san()
    model = SANModel.__new__(SANModel)
    model.opt = {'network_g': {**TINY, **HIDDEN}, 'path': {'models': str(tmp_path)}}
    model.save_network([net, ema], 'net_g', 5, param_key=['params', 'params_ema'])
    path = tmp_path / 'net_g_5.pth'
    saved = torch.load(path, weights_only=True)
    assert set(saved) == {'params', 'params_ema', 'network_config'}
    assert saved['network_config'] == network_record(model.opt['network_g'])
    fresh = hidden_san()
    BaseModel.load_network(model, fresh, str(path), strict=True, param_key='params_ema')  # BasicSR's own loader
    assert torch.equal(output(fresh, lq), output(ema, lq))
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # nothing assumed
        rebuilt, scale = load_model(path)
    assert scale == 2 and rebuilt.img_range == 1.0
    assert torch.equal(output(rebuilt, lq), output(net, lq))


@pytest.mark.parametrize('suffix', ['.pth', '.safetensors'])
def test_converter_output_records_and_readers_ignore_it(tmp_path, suffix):
    _, weights = fixture_and_weights('san_x3_g2b2.pt')
    src, dst = tmp_path / 'SAN_BIX3.pt', tmp_path / f'san{suffix}'
    torch.save(weights, src)
    summary = convert_file(src, dst)
    if suffix == '.pth':
        saved = torch.load(dst, weights_only=True)
        record = saved['network_config']
        assert set(saved) == {'params', 'network_config'} and set(saved['params']) == set(
            convert_original_state(weights)[1]
        )
    else:
        with safe_open(str(dst), framework='pt') as opened:
            record = json.loads(opened.metadata()['network_config'])
        assert set(load_file(str(dst))) == set(convert_original_state(weights)[1])  # tensors only
    assert record == network_record({'type': 'SAN', **summary['config']})
    assert record['args']['num_feat'] == 32 and record['args']['upscale'] == 3 and record['args']['img_range'] == 255


@pytest.mark.parametrize(
    'switches, listed, unlisted',
    [
        ({}, ['nonlocal_grid', 'soca_crop', 'soca_iter'], []),
        ({'use_nonlocal': False}, ['soca_crop', 'soca_iter'], ['nonlocal_reduction', 'nonlocal_grid']),
        ({'channel_attention': 'first_order'}, ['nonlocal_grid'], ['soca_crop', 'soca_iter']),
        (
            {'channel_attention': 'none', 'use_nonlocal': False},
            [],
            ['nonlocal_grid', 'soca_crop', 'squeeze_factor', 'attention_placement'],
        ),
    ],
)
def test_assumed_settings_leave_out_those_without_effect(tmp_path, switches, listed, unlisted):
    net = SAN(**{key: value for key, value in TINY.items() if key != 'type'}, **switches)
    path = tmp_path / 'bare.pth'
    save_weights_file(net.state_dict(), path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        assumed = read_network_file(path).assumed
    messages = [str(w.message) for w in caught if issubclass(w.category, AssumedSettingWarning)]
    assert len(messages) == 1  # img_range is always assumed
    for key in listed:
        assert key in assumed and f'{key}=' in messages[0], key
    for key in unlisted:
        assert key not in assumed and f'{key}=' not in messages[0], key


@pytest.mark.parametrize('suffix', ['.pth', '.safetensors'])
def test_loader_uses_the_record_else_warns(tmp_path, lq, suffix):
    net = hidden_san()
    recorded, bare = tmp_path / f'recorded{suffix}', tmp_path / f'bare{suffix}'
    save_weights_file(net.state_dict(), recorded, record=network_record({**TINY, **HIDDEN}))
    save_weights_file(net.state_dict(), bare)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        from_record, _ = load_model(recorded)
    assert torch.equal(output(from_record, lq), output(net, lq))
    with pytest.warns(AssumedSettingWarning) as caught:
        assumed, _ = load_model(bare)
    message = str(caught[0].message)
    assert f'weights file {bare}' in message and '--network-opt key=value' in message
    assert 'img_range=255.0, nonlocal_grid=2, soca_crop=1000, soca_iter=5' in message
    assert 'rgb_mean' not in message  # held by the mean-shift layers
    assert (output(assumed, lq) - output(net, lq)).abs().max() > 0.1  # wrong pictures, hence the warning
    inference = load_tool('inference')
    image = tmp_path / 'in.png'
    cv2.imwrite(str(image), (lq[0].permute(1, 2, 0).numpy()[..., ::-1] * 255).round().astype('uint8'))
    opts = [f'--network-opt={key}={value}' for key, value in HIDDEN.items()]
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert inference.main(['-i', str(image), '-o', str(tmp_path / 'a'), '-w', str(bare), *opts]) == 0
        assert inference.main(['-i', str(image), '-o', str(tmp_path / 'b'), '-w', str(recorded)]) == 0
    assert (tmp_path / 'a' / 'in_x2.png').read_bytes() == (tmp_path / 'b' / 'in_x2.png').read_bytes()


def test_rcan_without_record_warns_about_its_mean(tmp_path):
    path = tmp_path / 'rcan.pth'
    torch.save({'params': RCAN(3, 3, num_feat=16, num_group=1, num_block=1, squeeze_factor=4, upscale=2).state_dict()},
               path)  # fmt: skip
    with pytest.warns(AssumedSettingWarning, match=r'res_scale=1, img_range=255.0, rgb_mean=\[0.4488'):
        weights = read_network_file(path)
    assert weights.arch == 'RCAN' and set(weights.assumed) == {'res_scale', 'img_range', 'rgb_mean'}


def test_authors_files_assume_nothing(tmp_path):
    _, weights = fixture_and_weights('san_x3_g2b2.pt')
    src = tmp_path / 'SAN_BIX3.pt'
    torch.save(weights, src)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        result = read_network_file(src)
    assert result.assumed == {} and result.recorded is None and result.config['soca_iter'] == 5


def record_with(**changes):
    record = network_record({**TINY, **HIDDEN})
    return {**record, **changes}


@pytest.mark.parametrize(
    'record, message',
    [
        (record_with(args={**network_record(TINY)['args'], 'num_feat': 32}),
         r"do not fit the configuration from network_config \(num_feat=32 where the tensors show 16\)"),
        (record_with(args={**network_record(TINY)['args'], 'upscale': 4}),
         r'upscale=4 where the tensors show 2'),
        (record_with(args={**network_record(TINY)['args'], 'soca_size': 4}),
         "network_config.args.soca_size: SAN has no option 'soca_size'"),
        (record_with(type='DRLN'), r'network_config.type is DRLN, but its tensors are a SAN'),
        (record_with(format_version=FORMAT_VERSION + 1), r'network_config.format_version is 2, newer than'),
        (record_with(args=[1, 2]), r'network_config.args is \[1, 2\], not a mapping'),
    ],
)  # fmt: skip
def test_bad_records_are_errors_naming_file_and_key(tmp_path, record, message):
    path = tmp_path / 'net.pth'
    torch.save({'params': hidden_san().state_dict(), 'network_config': record}, path)
    with pytest.raises(ValueError, match=message) as error:
        load_model(path)
    assert str(path) in str(error.value)


def test_network_opt_that_contradicts_the_tensors_is_an_error(tmp_path):
    path = tmp_path / 'net.pth'
    save_weights_file(hidden_san().state_dict(), path)
    with pytest.raises(ValueError, match=r'--network-opt num_feat=8: the tensors of weights file .* show 16'):
        load_model(path, network_opt={'num_feat': 8})
    with pytest.raises(ValueError, match="--network-opt img_rang: SAN has no option 'img_rang'"):
        load_model(path, network_opt={'img_rang': 1.0})
    assert load_tool('inference').main(['-i', 'x', '-o', 'y', '-w', str(path), '--network-opt', 'img_range']) == 1


def test_loading_into_a_network_built_otherwise_logs_each_difference(tmp_path, caplog):
    path = tmp_path / 'net.pth'
    save_weights_file(hidden_san().state_dict(), path, record=network_record({**TINY, **HIDDEN}))
    net = SAN(**{key: value for key, value in TINY.items() if key != 'type'})
    with caplog.at_level(logging.WARNING, logger='test'):
        load_into_network(net, path, logger=logging.getLogger('test'), network_opt=TINY)
    assert 'the file records img_range=1.0, the network is built with 255.0' in caplog.text
    assert 'soca_iter=3' in caplog.text and 'num_feat' not in caplog.text


def test_benchmark_options_file_honours_param_key_and_strict_load(tmp_path, lq):
    net, ema = hidden_san(), hidden_san()
    weights = tmp_path / 'net_g_latest.pth'
    torch.save({'params': net.state_dict(), 'params_ema': ema.state_dict()}, weights)
    options = tmp_path / 'run.yml'
    path_opt = {'pretrain_network_g': str(weights), 'param_key_g': 'params_ema', 'strict_load_g': False}
    options.write_text(yaml.safe_dump({'network_g': {**TINY, **HIDDEN}, 'path': path_opt}))
    spec = parse_model_spec(f'ema={options}')
    assert (spec.param_key, spec.strict) == ('params_ema', False)
    assert torch.equal(output(spec.build(2), lq), output(ema, lq))
    options.write_text(yaml.safe_dump({'network_g': {**TINY, **HIDDEN}, 'path': {'pretrain_network_g': str(weights)}}))
    spec = parse_model_spec(f'plain={options}')  # BasicSR's defaults: params, strict
    assert (spec.param_key, spec.strict) == ('params', True)
    assert torch.equal(output(spec.build(2), lq), output(net, lq))


def test_benchmark_weights_with_network_opt(tmp_path, lq):
    net = hidden_san()
    path = tmp_path / 'bare.pth'
    save_weights_file(net.state_dict(), path)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        spec = parse_model_spec(f'san={path}', network_opt=HIDDEN)
    assert torch.equal(output(spec.build(2), lq), output(net, lq))
    with pytest.warns(AssumedSettingWarning, match='NAME=OPTIONS.yml with a network_g block'):
        parse_model_spec(f'san={path}')


def test_record_names_any_basicsr_arch(tmp_path, lq):
    """A network the tensors do not identify (BasicSR's EDSR, trained with SANModel) is rebuilt from its record."""
    opt = {
        'type': 'EDSR',
        'num_in_ch': 3,
        'num_out_ch': 3,
        'num_feat': 8,
        'num_block': 2,
        'upscale': 2,
        'img_range': 1.0,
    }
    net = build_network(opt).eval()
    recorded, bare = tmp_path / 'edsr.safetensors', tmp_path / 'bare.safetensors'
    save_weights_file(net.state_dict(), recorded, record=network_record(opt))
    save_weights_file(net.state_dict(), bare)
    rebuilt, scale = load_model(recorded)
    assert scale == 2 and type(rebuilt).__name__ == 'EDSR'
    assert torch.equal(output(rebuilt, lq), output(net, lq))
    with pytest.raises(ValueError, match=f'weights file {bare}: the architecture is not recognised'):
        load_model(bare)


def test_to_original_says_what_the_authors_format_cannot_hold(tmp_path):
    src, back = tmp_path / 'recorded.pth', tmp_path / 'SAN_BIX2.pt'
    save_weights_file(hidden_san().state_dict(), src, record=network_record({**TINY, **HIDDEN}))
    summary = convert_file(src, back, to_original=True)
    assert (
        "the authors' format cannot hold img_range=1.0, nonlocal_grid=3, soca_crop=6, soca_iter=3: their code assumes "
        'img_range=255.0, nonlocal_grid=2, soca_crop=1000, soca_iter=5 unless told otherwise' in summary['notes']
    )
    assert 'network_config' not in torch.load(back, weights_only=True)  # a bare state dict


def test_to_original_names_a_drln_upsampler_without_relu(tmp_path):
    opt = {'type': 'DRLN', 'num_feat': 8, 'squeeze_factor': 4, 'upscale': 2, 'upsample_relu': False}
    src, back = tmp_path / 'drln.pth', tmp_path / 'DRLN_BIX2.pt'
    save_weights_file(build_network(opt).state_dict(), src, record=network_record(opt))
    summary = convert_file(src, back, to_original=True)
    assert (
        "the authors' format cannot hold upsample_relu=False: their code assumes upsample_relu=True unless told "
        'otherwise' in summary['notes']
    )
