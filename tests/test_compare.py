"""tools/compare.py's study runner: study file checks, log reading, the shipped studies' sizes and a report rebuilt
from stored records. The report's statistics are tested in test_study_stats.py; a tiny study end to end (with a GAN
stage), its resume and its rebuild in test_gan_study.py."""

import json
import os
import sys

import pytest
import yaml
from basicsr.archs import build_network
from conftest import REPO_ROOT, load_tool, require_shared, shared_root
from helpers.study import changed, record, write_images

import san_plugin  # noqa: F401  (registers the archs)
from san_plugin.benchmark.flops import count_params
from san_plugin.study.data import dataset_specs
from san_plugin.study.logs import parse_log_text, read_training_logs
from san_plugin.study.options import StudyError, parse_study
from san_plugin.study.plan import check_networks, plan_runs
from san_plugin.study.processes import stream_process
from san_plugin.study.records import RecordStore
from san_plugin.study.report import pairwise, summarize
from san_plugin.study.runner import run_study


def test_hr_and_lr_folders_with_a_scale_placeholder_are_accepted(tiny_study, tmp_path):
    # Their mistakes (a scale without a folder, a validated set without lr) are cases of tests/data/study_messages.yml.
    for role in ('HR', 'LR'):
        write_images(tmp_path / 'set' / role / 'x2', 1, (16, 16), 2)
    hr, lr = (str(tmp_path / 'set' / role / 'x{scale}') for role in ('HR', 'LR'))
    study = parse_study(changed(tiny_study, ('test', 'datasets', 'Set'), {'hr': hr, 'lr': lr}))
    assert [(spec.name, spec.hr_dir, spec.lr_dir) for spec in dataset_specs(study)][-1] == ('Set', hr, lr)


def test_network_values_and_sizes_are_checked_before_training(tiny_study, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = changed(tiny_study, ('networks', 'SAN', 'channel_attention'), 'third_order')
    with pytest.raises(StudyError, match=r'networks\.SAN: cannot build it at x2: .*channel_attention'):
        run_study(parse_study(bad))
    uneven = changed(tiny_study, ('param_tolerance',), 0.01)
    uneven['networks']['RCAN']['num_feat'] = 12
    with pytest.raises(StudyError, match=r'networks\.RCAN: [\d,]+ parameters at x2, .* outside param_tolerance 0.01'):
        run_study(parse_study(uneven))
    assert not (tmp_path / 'experiments').exists() and not (tmp_path / 'report').exists()
    params = check_networks(parse_study(changed(tiny_study, ('param_tolerance',), 0.1)))
    assert params == {
        (n, 2): count_params(build_network({**o, 'upscale': 2})) for n, o in tiny_study['networks'].items()
    }


def shipped_study(name):
    """A study file of options/compare, and the parameter count of each of its networks at its (one) scale."""
    study = yaml.safe_load((REPO_ROOT / 'options' / 'compare' / f'{name}.yml').read_text())
    (scale,) = study['scales']
    params = {net: count_params(build_network({**opt, 'upscale': scale})) for net, opt in study['networks'].items()}
    assert study['param_tolerance'] == 0.1 and study['seeds'] == [0, 1, 2]
    assert all(abs(count / params['SAN'] - 1) <= 0.1 for count in params.values()), params
    return study, params


def test_shipped_study_networks_have_equal_size_within_ten_percent():
    study, _ = shipped_study('san_ablation_x2')
    networks = study['networks']
    assert list(networks) == ['SAN', 'SAN-first-order', 'SAN-no-RLNL', 'SAN-no-share-skip', 'RCAN', 'DRLN']
    assert networks['SAN-first-order']['channel_attention'] == 'first_order'
    assert networks['SAN-no-RLNL']['use_nonlocal'] is False
    assert networks['SAN-no-share-skip']['share_source_skip'] is False
    assert {k: v for k, v in networks['SAN-first-order'].items() if k != 'channel_attention'} == networks['SAN']
    assert study['scales'] == [2]


def test_shipped_attention_study_varies_only_the_attention_at_equal_size():
    study, params = shipped_study('attention_x4')
    networks = study['networks']
    assert study['scales'] == [4]
    assert list(networks) == ['SAN', 'SAN-SOCA-in-blocks', 'SAN-first-order-in-blocks', 'SAN-Laplacian', 'RCAN', 'DRLN']
    switches = {'channel_attention': 'second_order', 'attention_placement': 'group'}
    expected = {
        'SAN-SOCA-in-blocks': {'attention_placement': 'block'},
        'SAN-first-order-in-blocks': {'channel_attention': 'first_order', 'attention_placement': 'block'},
        'SAN-Laplacian': {'channel_attention': 'laplacian'},
    }
    for name, changes in expected.items():
        opt = networks[name]
        assert {k: opt.get(k, v) for k, v in switches.items()} == {**switches, **changes}, name
        same = {k: v for k, v in opt.items() if k not in (*switches, 'squeeze_factor')}
        assert same == {k: v for k, v in networks['SAN'].items() if k != 'squeeze_factor'}, name
    assert networks['RCAN']['type'] == 'RCAN' and networks['DRLN']['type'] == 'DRLN'
    assert len(networks['DRLN']['cascade_sizes']) < 6 and networks['DRLN']['num_feat'] > 8  # wider, shallower
    assert params['SAN-Laplacian'] > params['SAN']  # its attention is larger even at a coarser reduction
    # Its folders are ../shared/... relative to the repository (as for tools/compare.py): read them from the shared
    # folder the tests use.
    require_shared('datasets', 'B100', 'HR')
    shared = yaml.safe_load(yaml.safe_dump(study).replace('../shared', str(shared_root())))
    assert parse_study(shared).train['total_iter'] == 1000


def test_shipped_gan_study_varies_only_the_channel_attention_and_needs_no_imagenet_weights():
    study, params = shipped_study('attention_gan_x4')
    networks = study['networks']
    assert study['scales'] == [4] and list(networks) == ['SAN', 'SAN-first-order', 'SAN-no-attention', 'RCAN']
    for name, attention in (('SAN-first-order', 'first_order'), ('SAN-no-attention', 'none')):
        assert networks[name] == {**networks['SAN'], 'channel_attention': attention}
    assert networks['RCAN']['type'] == 'RCAN'
    gan = study['gan']
    # L1 + adversarial: no perceptual loss, so no VGG19 weights; ESRGAN's loss weights and rates otherwise
    assert gan['perceptual_weight'] == 0 and 'metrics' not in study['test']
    assert (gan['pixel_weight'], gan['gan_weight'], gan['lr_g'], gan['lr_d']) == (1e-2, 5e-3, 1e-4, 1e-4)
    require_shared('datasets', 'B100', 'HR')
    shared = yaml.safe_load(yaml.safe_dump(study).replace('../shared', str(shared_root())))
    parsed = parse_study(shared)
    assert parsed.gan['total_iter'] == gan['total_iter'] and parsed.train['total_iter'] == 1000
    check_networks(parsed)  # the discriminator takes the study's patches


LOG = """2026-01-01 10:00:00,000 INFO: Start training from epoch: 0, iter: {start}
2026-01-01 10:00:{a:02d},000 INFO: [run..][epoch:  0, iter:       {i1}, lr:(1.000e-03,)] [eta: 0:00:09, time (data): 1.000 (0.010)] l_pix: 5.0000e-02
2026-01-01 10:00:{b:02d},000 INFO: Validation Set5
\t # psnr: {p1}\tBest: {p1} @ {i1} iter

2026-01-01 10:00:{c:02d},500 INFO: [run..][epoch:  0, iter:       {i2}, lr:(1.000e-04,)] [eta: -1 day, 23:59:59, time (data): 1.000 (0.010)] l_pix: 4.0000e-02
2026-01-01 10:00:{d:02d},500 INFO: Validation Set5
\t # psnr: {p2}\tBest: {p2} @ {i2} iter
"""  # noqa: E501


def test_training_time_leaves_validation_out_and_adds_resumed_starts(tmp_path):
    first = LOG.format(start=0, a=10, i1=10, b=15, p1='30.0000', c=25, i2=20, d=27, p2='31.0000')
    iterations, validations, clock = parse_log_text(first)
    assert [(r['iter'], r['seconds'], r['losses']) for r in iterations] == [
        (10, 10.0, {'l_pix': 0.05}),
        (20, 20.5, {'l_pix': 0.04}),
    ]
    assert [(v['iter'], v['seconds'], v['psnr']) for v in validations] == [(10, 10.0, 30.0), (20, 20.5, 31.0)]
    assert clock == 20.5
    run = tmp_path / 'run'
    run.mkdir()
    (run / 'train_run_1.log').write_text(first)
    resumed = LOG.format(start=20, a=4, i1=30, b=6, p1='31.5000', c=8, i2=40, d=9, p2='32.0000')
    (run / 'train_run_2.log').write_text(resumed)
    logs = read_training_logs(run)
    assert [(v['iter'], v['seconds']) for v in logs['validations']] == [(10, 10), (20, 20.5), (30, 24.5), (40, 27)]
    assert logs['seconds_per_iter'] == pytest.approx((27 - 10) / 30)


def test_statistics_keys_have_defaults_and_are_read(tiny_study):
    study = parse_study(tiny_study)
    assert (study.alpha, study.min_effect_db) == (0.05, 0.05)
    study = parse_study({**tiny_study, 'alpha': 0.01, 'min_effect_db': 0.1})
    assert (study.alpha, study.min_effect_db) == (0.01, 0.1)


def test_bicubic_record_of_metrics_in_another_order_is_the_same_record(tiny_study, tmp_path, monkeypatch):
    """The runner stores the bicubic rows under the study file's order of ``test.metrics``, ``--report-only`` asks
    for them in the report's order: both find the one record, and nothing is evaluated again."""
    monkeypatch.chdir(tmp_path)
    study = parse_study(tiny_study)
    store = RecordStore(study)
    rows = [{'dataset': 'Tiny', 'scale': 2, 'psnr': 26.0, 'ssim': 0.7, 'niqe': 7.0, 'lpips': 0.3}]
    store.bicubic(2, dataset_specs(study), lambda: rows, ['niqe', 'lpips'])
    assert store.bicubic(2, dataset_specs(study), lambda: pytest.fail('evaluated again'), ['lpips', 'niqe']) == rows
    assert store.stored_bicubic(2, dataset_specs(study), ['lpips', 'niqe']) == rows
    with pytest.raises(StudyError, match='bicubic x2 was recorded for other values than the study now gives'):
        store.stored_bicubic(2, dataset_specs(study), ['lpips'])


def write_stored_runs(study, missing=()):
    """What finished runs leave in ``<out>/runs`` (through the runner's record store): one record per run (PSNR per
    image: a per network, seed and image), the peak-memory records and the bicubic records."""
    store = RecordStore(study)
    offsets = {name: 0.4 * index for index, name in enumerate(study.networks)}
    for run in plan_runs(study):
        if run.name in missing:
            continue
        psnr = [28.0 + offsets[run.network] + 0.05 * run.seed + 0.3 * image for image in range(3)]
        store.write_run(run.name, record(run.network, run.seed, psnr, 'Tiny', run.scale))
    memory = {'infer_peak_mb': 10.0, 'infer_input': '1x3x16x16', 'train_peak_mb': 20.0, 'train_input': '2x3x16x16',
              'errors': {}}  # fmt: skip
    for network in study.networks:
        store.memory(network, 2, lambda: memory)
    store.bicubic(2, dataset_specs(study), lambda: [{'dataset': 'Tiny', 'scale': 2, 'psnr': 26.0, 'ssim': 0.7}])


def test_report_only_rebuilds_the_report_from_the_records_without_training(tiny_study, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    tiny_study['seeds'] = [0, 1, 2]
    study_file = tmp_path / 'study.yml'
    study_file.write_text(yaml.safe_dump(tiny_study, sort_keys=False))
    study = parse_study(tiny_study, str(study_file))
    compare = load_tool('compare')
    write_stored_runs(study, missing={'tiny_RCAN_x2_s1'})
    assert compare.main(['-opt', str(study_file), '--report-only']) == 1
    error = capsys.readouterr().err
    assert 'run tiny_RCAN_x2_s1 has no record' in error and 'tiny_RCAN_x2_s1.json' in error
    assert not (study.out / 'report.json').exists()

    write_stored_runs(study)
    assert compare.main(['-opt', str(study_file), '--report-only']) == 0
    assert '| SAN | RCAN | -0.400 |' in capsys.readouterr().out
    report = json.loads((study.out / 'report.json').read_text())
    records = [json.loads((study.out / 'runs' / f'{run.name}.json').read_text()) for run in plan_runs(study)]
    params = check_networks(study)
    memory = {key: json.loads((study.out / 'runs' / f'memory_{key[0]}_x2.json').read_text())['value'] for key in params}
    expected = pairwise(summarize(records, memory, params), records, study.alpha, study.min_effect_db)
    assert report['pairs'] == json.loads(json.dumps(expected))
    assert report['pairs'][0]['psnr_significant'] and report['pairs'][0]['images_share_a_better'] == 0.0
    assert report['bicubic'] == [{'dataset': 'Tiny', 'scale': 2, 'psnr': 26.0, 'ssim': 0.7}]
    assert not (tmp_path / 'experiments').exists() and not (tmp_path / 'datasets').exists()

    # a peak-memory record measured for other values than the study gives now stops the rebuild, naming it
    changed_input = {**tiny_study, 'test': {**tiny_study['test'], 'memory_input': 32}}
    study_file.write_text(yaml.safe_dump(changed_input, sort_keys=False))
    assert compare.main(['-opt', str(study_file), '--report-only']) == 1
    error = capsys.readouterr().err
    path = study.out / 'runs' / 'memory_SAN_x2.json'
    assert (
        f'error: {study_file}: peak memory of SAN was recorded for other values than the study now gives ({path})'
        in error
    )


def test_a_stopped_study_stops_its_training_process_too():
    command = [sys.executable, '-c', 'import os, time; print(os.getpid(), flush=True); time.sleep(120)']
    seen = []

    def interrupt(line):
        seen.append(int(line))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stream_process(command, dict(os.environ), interrupt)
    with pytest.raises(ProcessLookupError):  # terminated and reaped
        os.kill(seen[0], 0)
