"""SANModel's switches (use_amp/amp_dtype, channels_last, compile/compile_mode): training steps, test forward,
saved files, option errors and every fallback warning."""

import copy
import logging
import math
import re
from unittest import mock

import pytest
import torch
from basicsr.utils import get_root_logger
from helpers.inductor_san import NETWORK_ARGS, NETWORK_OPT
from helpers.workflow import train_options

import san_plugin  # noqa: F401  (registers the archs and the model)
from san_plugin.archs.san_arch import SAN
from san_plugin.models import network_switches
from san_plugin.models.network_switches import NetworkSwitches, parse_switches, resolve_switches
from san_plugin.models.san_model import SANModel


def model_options(tmp_path, **switches):
    """The helpers' tiny training options, as ``basicsr.train`` completes them for one CPU process, plus
    ``switches``."""
    opt = train_options('switches', tmp_path, tmp_path, network=NETWORK_OPT, validate=False)
    opt.update(is_train=True, dist=False, rank=0, world_size=1, **switches)
    for key in ('models', 'training_states'):
        (tmp_path / key).mkdir(exist_ok=True)
        opt['path'][key] = str(tmp_path / key)
    return opt


@pytest.fixture
def basicsr_log(caplog):
    """``caplog`` that also sees BasicSR's logger (which does not propagate to the root logger)."""
    logger = get_root_logger()
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


def build_model(tmp_path, **switches):
    torch.manual_seed(0)
    return SANModel(model_options(tmp_path, **switches))


def batch(lq_size=8, seed=0):
    gt = torch.rand(2, 3, 2 * lq_size, 2 * lq_size, generator=torch.Generator().manual_seed(seed))
    return {'lq': gt[..., ::2, ::2].contiguous(), 'gt': gt}


def train_step(model, seed=0):
    model.feed_data(batch(seed=seed))
    model.optimize_parameters(1)
    return model.log_dict['l_pix']


@pytest.mark.parametrize('amp_dtype', ['bfloat16', 'float16'])
def test_amp_training_step_and_test_forward_are_finite_float32(tmp_path, amp_dtype):
    model = build_model(tmp_path, use_amp=True, amp_dtype=amp_dtype)
    assert model.switches.amp_dtype == amp_dtype
    before = copy.deepcopy(model.net_g.state_dict())
    loss = train_step(model)
    assert math.isfinite(loss)
    assert model.output.dtype == {'bfloat16': torch.bfloat16, 'float16': torch.float16}[amp_dtype]
    assert any(not torch.equal(before[k], v) for k, v in model.net_g.state_dict().items())
    model.test()
    assert model.output.dtype == torch.float32 and torch.isfinite(model.output).all()
    assert (model.grad_scaler is not None) == (amp_dtype == 'float16')


def test_float16_training_steps_through_the_grad_scaler(tmp_path, monkeypatch):
    model = build_model(tmp_path, use_amp=True, amp_dtype='float16')
    calls = mock.Mock()
    for name in ('scale', 'step', 'update'):
        spy = mock.Mock(wraps=getattr(model.grad_scaler, name))
        monkeypatch.setattr(model.grad_scaler, name, spy)
        calls.attach_mock(spy, name)
    train_step(model)
    assert [call[0] for call in calls.mock_calls] == ['scale', 'step', 'update']
    assert calls.step.call_args.args == (model.optimizer_g,)


def test_float16_grad_scaler_state_is_saved_and_restored(tmp_path):
    model = build_model(tmp_path, use_amp=True, amp_dtype='float16')
    train_step(model)
    model.grad_scaler.update(new_scale=123.0)  # away from the initial scale, which a fresh scaler would have
    model.save_training_state(epoch=0, current_iter=1)
    state = torch.load(tmp_path / 'training_states' / '1.state', weights_only=False)
    assert state['scaler']['scale'] == 123.0
    resumed = build_model(tmp_path, use_amp=True, amp_dtype='float16')
    assert resumed.grad_scaler.get_scale() != 123.0
    resumed.resume_training(state)
    assert resumed.grad_scaler.get_scale() == 123.0


def test_bfloat16_state_has_no_scaler_and_resuming_it_in_float16_starts_fresh(tmp_path, basicsr_log):
    model = build_model(tmp_path, use_amp=True, amp_dtype='bfloat16')
    train_step(model)
    model.save_training_state(epoch=0, current_iter=1)
    state = torch.load(tmp_path / 'training_states' / '1.state', weights_only=False)
    assert 'scaler' not in state
    resumed = build_model(tmp_path, use_amp=True, amp_dtype='float16')
    resumed.resume_training(state)
    assert 'no GradScaler state' in basicsr_log.text
    assert resumed.grad_scaler.get_scale() == torch.amp.GradScaler('cpu').get_scale()


def test_channels_last_networks_and_inputs_and_same_results(tmp_path):
    plain = build_model(tmp_path)
    model = build_model(tmp_path, channels_last=True)
    assert model.net_g.conv_first.weight.is_contiguous(memory_format=torch.channels_last)
    assert model.net_g_ema.conv_first.weight.is_contiguous(memory_format=torch.channels_last)
    loss = train_step(model)
    assert model.lq.is_contiguous(memory_format=torch.channels_last)
    assert model.gt.is_contiguous(memory_format=torch.channels_last)
    assert loss == pytest.approx(train_step(plain), abs=1e-6)
    model.test()
    plain.test()
    assert torch.allclose(model.output, plain.output, atol=1e-5)


@pytest.mark.slow
@pytest.mark.xdist_group('inductor')  # shares its compiled graphs with test_compile's inductor test
def test_compile_trains_matches_eager_and_saves_plain_keys(tmp_path):
    (tmp_path / 'plain').mkdir()
    plain = build_model(tmp_path / 'plain')
    model = build_model(tmp_path, compile=True)
    assert model.net_g._compiled_call_impl is not None
    assert model.net_g_ema._compiled_call_impl is not None
    assert train_step(model) == pytest.approx(train_step(plain), abs=1e-5)
    ema = dict(model.net_g_ema.named_parameters())
    assert all(torch.allclose(ema[k], v, atol=1e-5) for k, v in plain.net_g_ema.named_parameters())
    model.save_network([model.net_g, model.net_g_ema], 'net_g', 1, param_key=['params', 'params_ema'])
    saved = torch.load(tmp_path / 'models' / 'net_g_1.pth', weights_only=True)
    assert not any('_orig_mod' in key for keys in saved.values() for key in keys)
    net = SAN(**NETWORK_ARGS)
    net.load_state_dict(saved['params'], strict=True)
    for lq_size in (8, 12):  # a second size through the same dynamic-shape graph (a 6x6 input would add one)
        for each in (model, plain):
            each.feed_data(batch(lq_size, seed=1))
            each.test()
        assert torch.allclose(model.output, plain.output, atol=1e-4)


@pytest.mark.parametrize(
    ('options', 'message'),
    [
        ({'use_amp': 'yes'}, "option use_amp: expected true or false, got 'yes'"),
        ({'channels_last': 1}, 'option channels_last: expected true or false, got 1'),
        ({'compile': 'false'}, "option compile: expected true or false, got 'false'"),
        ({'amp_dtype': 'float32'}, "option amp_dtype: expected one of bfloat16, float16, got 'float32'"),
        ({'compile_mode': 'fast'}, 'option compile_mode: expected one of default, reduce-overhead, max-autotune'),
    ],
)
def test_invalid_switch_values_name_the_key(options, message):
    with pytest.raises(ValueError, match=message):
        parse_switches(options)


def test_the_model_rejects_an_invalid_switch(tmp_path):
    with pytest.raises(ValueError, match="option amp_dtype: expected one of bfloat16, float16, got 'float32'"):
        build_model(tmp_path, use_amp=True, amp_dtype='float32')


def test_defaults_are_off_and_amp_dtype_applies_only_with_use_amp():
    assert parse_switches({}) == NetworkSwitches()
    assert parse_switches({'amp_dtype': 'float16'}).amp_dtype is None
    assert parse_switches({'use_amp': True}).amp_dtype == 'bfloat16'
    assert parse_switches({'compile': True, 'compile_mode': 'max-autotune'}).compile_mode == 'max-autotune'


ALL_ON = NetworkSwitches(amp_dtype='float16', channels_last=True, compile_mode='default')


def resolve_warned(caplog, message, switches, arch, device):
    """``resolve_switches`` with a logger; checks that both the warning and the log say ``message``."""
    with pytest.warns(RuntimeWarning, match=re.escape(message)):
        resolved = resolve_switches(switches, arch, torch.device(device), logging.getLogger('test_model_switches'))
    assert message in caplog.text
    return resolved


def test_table_entry_turns_the_switch_off_with_its_reason(monkeypatch, tmp_path, basicsr_log):
    monkeypatch.setitem(network_switches.UNSUPPORTED, ('SAN', 'channels_last'), 'a measured failure')
    message = 'channels_last: turned off for SAN on cpu: a measured failure'
    with pytest.warns(RuntimeWarning, match=re.escape(message)):
        model = build_model(tmp_path, channels_last=True, use_amp=True)
    assert message in basicsr_log.text
    assert model.switches == NetworkSwitches(amp_dtype='bfloat16')
    assert not model.net_g.conv_first.weight.is_contiguous(memory_format=torch.channels_last)
    assert math.isfinite(train_step(model))
    assert not model.lq.is_contiguous(memory_format=torch.channels_last)


def test_table_entries_apply_to_their_arch_only(monkeypatch):
    monkeypatch.setitem(network_switches.UNSUPPORTED, ('DRLN', 'compile'), 'a measured failure')
    assert resolve_switches(ALL_ON, 'SAN', torch.device('cpu')) == ALL_ON


def test_unavailable_autocast_falls_back_to_float32(monkeypatch, caplog):
    monkeypatch.setattr(torch.amp.autocast_mode, 'is_autocast_available', lambda device_type: False)
    message = 'use_amp: turned off for DRLN on cpu: autocast is not available on cpu'
    resolved = resolve_warned(caplog, message, ALL_ON, 'DRLN', 'cpu')
    assert resolved == NetworkSwitches(channels_last=True, compile_mode='default')


def test_compile_without_a_cpp_compiler_falls_back_to_eager(monkeypatch, caplog):
    monkeypatch.setattr(network_switches.shutil, 'which', lambda name: None)
    message = 'compile: turned off for RCAN on cpu: torch.compile on CPU needs a C++ compiler (g++; $CXX names another)'
    with network_switches.inductor_config.patch({'cpp.cxx': (None, 'g++')}):  # as without $CXX
        resolved = resolve_warned(caplog, message, ALL_ON, 'RCAN', 'cpu')
    assert resolved == NetworkSwitches(amp_dtype='float16', channels_last=True)


def test_bfloat16_on_a_gpu_without_it_falls_back(monkeypatch, caplog):
    monkeypatch.setattr(torch.amp.autocast_mode, 'is_autocast_available', lambda device_type: True)
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda: False)
    message = 'use_amp: turned off for SAN on cuda: this GPU does not support bfloat16'
    assert resolve_warned(caplog, message, NetworkSwitches(amp_dtype='bfloat16'), 'SAN', 'cuda') == NetworkSwitches()


def test_compile_on_a_gpu_without_triton_falls_back_to_eager(monkeypatch, caplog):
    monkeypatch.setattr(torch.utils._triton, 'has_triton', lambda: False)
    message = 'compile: turned off for SAN on cuda: torch.compile on CUDA needs Triton'
    switches = NetworkSwitches(compile_mode='max-autotune')
    assert resolve_warned(caplog, message, switches, 'SAN', 'cuda') == NetworkSwitches()
