"""Speed benchmark on tiny networks: JSON with ratios, variants against float32, memory in a subprocess, the GAN
step."""

import copy
import json
import math
import re

import pytest
import torch
from basicsr.archs import build_network
from conftest import load_fixture, load_tool

from san_plugin.benchmark import gan_step, models
from san_plugin.benchmark.flops import count_params
from san_plugin.benchmark.speed import (
    SpeedConfig,
    Variant,
    gan_step_rows,
    measure_memory,
    ratios,
    run_in_subprocess,
    run_speed,
    variants_from_flags,
)

benchmark = load_tool('benchmark')

TINY = {
    'san': {'type': 'SAN', 'num_feat': 16, 'num_group': 1, 'num_block': 1, 'squeeze_factor': 4},
    'rcan': {'type': 'RCAN', 'num_feat': 16, 'num_group': 1, 'num_block': 1, 'squeeze_factor': 4},
}


@pytest.fixture
def tiny_networks(monkeypatch):
    for name, opt in TINY.items():
        monkeypatch.setitem(models.PAPER_NETWORKS, name, opt)


@pytest.mark.parametrize(
    'name, fixture, unused',
    [
        ('san', 'san_x4_full.pt', r'conv_last\.|non_local\.soca\.|RG\.\d+\.gamma$'),
        ('drln', 'drln_x4_full.pt', r'c4\.'),
    ],
    ids=['san', 'drln'],
)
def test_paper_networks_have_the_parameters_of_the_authors_checkpoints(name, fixture, unused):
    """As many parameters as the authors' x4 checkpoint, less those their forward never reads (fixtures/README.md)."""
    entries = load_fixture(fixture)['entries']
    used = sum(math.prod(shape) for key, shape in entries if not re.match(unused, key))
    with torch.device('meta'):
        net = build_network(models.paper_network_opt(name, 4))
    assert count_params(net) == used


def test_unknown_paper_network_is_named():
    with pytest.raises(ValueError, match=r"unknown model 'edsr' for --models; choose from \['drln', 'rcan', 'san'\]"):
        models.paper_network_opt('edsr', 4)


@pytest.mark.slow
def test_speed_writes_json_with_ratios(tiny_networks, tmp_path, capsys):
    out = tmp_path / 'speed.json'
    args = ['speed', '--sizes', '8', '12', '--train-batch', '2', '--train-size', '8', '--memory-sizes', '8']
    code = benchmark.main([*args, '--repeats', '2', '--warmup', '1', '--json', str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    report = json.loads(out.read_text())
    rows = report['results']
    keys = {(r['model'], r['variant'], r['measurement'], r['input']) for r in rows}
    for model in ('san', 'rcan'):
        for variant in ('fp32',):
            for measurement, inp in [('forward_ms', '1x3x8x8'), ('forward_ms', '1x3x12x12'),
                                     ('train_step_ms', '2x3x8x8'), ('forward_peak_mb', '1x3x8x8'),
                                     ('train_peak_mb', '2x3x8x8')]:  # fmt: skip
                assert (model, variant, measurement, inp) in keys
    assert all(r['error'] is None and r['value'] > 0 for r in rows if r['measurement'].endswith('_ms'))
    assert all(r['value'] is not None for r in rows)
    values = {(r['model'], r['variant'], r['measurement'], r['input']): r['value'] for r in rows}
    ratio = next(r for r in report['model_ratios'] if r['measurement'] == 'forward_ms' and r['input'] == '1x3x8x8'
                 and r['variant'] == 'fp32')  # fmt: skip
    assert ratio['ratio'] == 'san/rcan'
    assert ratio['value'] == pytest.approx(
        values['san', 'fp32', 'forward_ms', '1x3x8x8'] / values['rcan', 'fp32', 'forward_ms', '1x3x8x8']
    )
    assert report['variant_ratios'] == []
    assert 'VmHWM' in report['environment']['memory_method']
    assert 'san/rcan' in printed and 'forward_peak_mb' in printed
    # each measurement's line as it ends, logged by run_speed and shown by the tool
    assert re.search(r'^ +san +fp32 +forward_ms +1x3x8x8: [\d.]+$', printed, re.MULTILINE), printed


def test_ratios_pair_same_measurement_input_and_variant():
    rows = [
        {'model': m, 'variant': v, 'measurement': 'forward_ms', 'input': '1x3x8x8', 'value': value}
        for m, v, value in [
            ('san', 'fp32', 6.0),
            ('rcan', 'fp32', 3.0),
            ('san', 'compile', 2.0),
            ('rcan', 'compile', None),
        ]
    ]
    model_ratios, variant_ratios = ratios(rows, 'rcan')
    assert [(r['ratio'], r['variant'], r['value']) for r in model_ratios] == [('san/rcan', 'fp32', 2.0)]
    assert [(r['model'], r['ratio'], r['value']) for r in variant_ratios] == [
        ('san', 'compile/fp32', pytest.approx(1 / 3))
    ]


def test_variants_each_against_fp32():
    assert variants_from_flags() == [Variant()]
    names = [v.name for v in variants_from_flags('bfloat16', True, True)]
    assert names == ['fp32', 'amp-bfloat16', 'channels_last', 'compile', 'amp-bfloat16+channels_last+compile']


@pytest.mark.parametrize('variant', [Variant(), Variant(amp='bfloat16', channels_last=True)])
def test_memory_job_runs_forward_and_train_step(variant):
    job = {'network_opt': {**TINY['san'], 'upscale': 2}, 'device': 'cpu', 'variant': variant.__dict__}
    for train in (False, True):
        peak = measure_memory({**job, 'batch': 1, 'size': 8, 'train': train})
        assert peak is not None and peak >= 0


@pytest.mark.slow
def test_memory_subprocess_reports_failures():
    job = {'network_opt': {'type': 'NoSuchNet', 'upscale': 2}, 'device': 'cpu', 'variant': {}, 'batch': 1, 'size': 8,
           'train': False, 'threads': 1}  # fmt: skip
    peak, error = run_in_subprocess(job)
    assert peak is None and 'NoSuchNet' in error
    peak, error = run_in_subprocess({**job, 'network_opt': {**TINY['rcan'], 'num_in_ch': 3, 'num_out_ch': 3}})
    assert error is None and peak > 0


TINY_DISCRIMINATOR = {'type': 'VGGStyleDiscriminator', 'num_in_ch': 3, 'num_feat': 4}


@pytest.fixture
def no_vgg19(monkeypatch, tmp_path):
    """A working directory and a torchvision cache without VGG19 weights."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    gan_step.perceptual_loss.cache_clear()
    yield
    gan_step.perceptual_loss.cache_clear()


def test_gan_step_trains_generator_discriminator_and_ema():
    net_g = build_network({**TINY['san'], 'upscale': 4}).train()
    net_d = build_network({**TINY_DISCRIMINATOR, 'input_size': 128}).train()
    before = [copy.deepcopy(net.state_dict()) for net in (net_g, net_d)]
    step = gan_step.ESRGANStep(net_g, net_d, None, torch.device('cpu'))
    gt = torch.rand(2, 3, 128, 128)
    losses = step.step(gt[..., ::4, ::4].contiguous(), gt)
    assert set(losses) == {'l_g_pix', 'l_g_gan', 'l_d_real', 'l_d_fake', 'out_d_real', 'out_d_fake'}
    for net, old in zip((net_g, net_d, step.net_g_ema), (*before, before[0])):
        assert any(not torch.equal(old[key], value) for key, value in net.state_dict().items())


def test_gan_step_rows_time_every_model_and_say_the_perceptual_loss_is_missing(tiny_networks, no_vgg19, monkeypatch):
    monkeypatch.setattr(models, 'PAPER_DISCRIMINATOR', TINY_DISCRIMINATOR)
    config = SpeedConfig(train_batch=1, repeats=1, warmup=1, gan=True)
    rows = gan_step_rows(config, Variant())
    assert [(r['model'], r['measurement'], r['input'], r['error']) for r in rows] == [
        ('san', 'gan_step_ms', '1x3x32x32', None),
        ('rcan', 'gan_step_ms', '1x3x32x32', None),
    ]
    assert all(r['value'] > 0 for r in rows)
    model_ratios, _ = ratios(rows, 'rcan')
    assert [(r['ratio'], r['measurement'], r['value']) for r in model_ratios] == [
        ('san/rcan', 'gan_step_ms', pytest.approx(rows[0]['value'] / rows[1]['value']))
    ]
    loss, description = gan_step.perceptual_loss('cpu')
    assert loss is None and description.startswith('none: no VGG19 weights (experiments/pretrained_models/')


def test_gan_sizes_are_checked_before_anything_runs():
    with pytest.raises(ValueError, match=r'--gan-gt-size 96: VGGStyleDiscriminator takes 128 or 256, a multiple of'):
        run_speed(SpeedConfig(gan=True, gan_gt_size=96))
    with pytest.raises(ValueError, match=r'--gan-gt-size 128: .* a multiple of --scale 3'):
        run_speed(SpeedConfig(gan=True, scale=3))


@pytest.mark.slow
def test_gan_step_uses_the_vgg19_weights_that_are_there(no_vgg19, monkeypatch, vgg19_weights):
    monkeypatch.setenv('TORCH_HOME', str(vgg19_weights.parents[2]))
    loss, description = gan_step.perceptual_loss('cpu')
    assert type(loss).__name__ == 'PerceptualLoss' and list(loss.layer_weights) == ['conv5_4']
    assert description == f'VGG19 conv5_4, weights {vgg19_weights}'
    first = dict(loss.vgg.vgg_net.named_parameters())['conv1_1.weight']
    assert torch.equal(first, torch.load(vgg19_weights, weights_only=True)['features.0.weight'])
