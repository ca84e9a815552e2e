"""Speed benchmark on tiny networks: JSON with ratios, variants against float32, memory in a subprocess."""

import json
import math
import re
import sys

import pytest
import torch
from basicsr.archs import build_network
from conftest import REPO_ROOT, load_fixture

from san_plugin.benchmark import models
from san_plugin.benchmark.flops import count_params
from san_plugin.benchmark.speed import Variant, measure_memory, ratios, run_in_subprocess, variants_from_flags

sys.path.insert(0, str(REPO_ROOT / 'tools'))
import benchmark  # noqa: E402

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
