"""The GAN stage of tools/compare.py's studies (issue 26): a tiny study with a GAN stage end to end on the local
executor (the session's ``tiny_gan_study``), its report rebuilt with ``--report-only``, killed runs resumed without
retraining a finished PSNR run, and the bad inputs that stop a study before any training. The statistics of each
metric are tested in test_study_stats.py, the messages of bad ``gan`` and ``test.metrics`` keys in
test_study_messages.py."""

import csv
import json

import cv2
import pytest
import torch
import yaml
from basicsr.archs import build_network
from conftest import load_tool
from helpers.study import TINY_GAN, changed, gan_study_options, record

import san_plugin  # noqa: F401  (registers the archs)
from san_plugin.benchmark.flops import count_params
from san_plugin.study.gan import discriminator_init, discriminator_init_path
from san_plugin.study.metrics import resolve_metrics
from san_plugin.study.options import StudyError, parse_study, read_study
from san_plugin.study.plan import check_networks
from san_plugin.study.report import build_report, csv_columns
from san_plugin.study.runner import run_study

PSNR_RUNS = ('tiny_SAN_x2_s0', 'tiny_RCAN_x2_s0')
GAN_RUNS = ('tiny_SAN_x2_s0_gan', 'tiny_RCAN_x2_s0_gan')
METRICS = ('psnr', 'ssim', 'lpips', 'dists', 'niqe')


def logs(folder, run):
    return sorted((folder / 'experiments' / run).glob('train_*.log'))


@pytest.mark.slow
def test_gan_study_reports_both_stages_with_every_metric(tiny_gan_study, tmp_path):
    folder = tiny_gan_study(tmp_path)
    out = folder / 'report'
    report = json.loads((out / 'report.json').read_text())
    assert report['stages'] == ['psnr', 'gan']
    assert [(r['network'], r['stage'], r['dataset']) for r in report['summary']] == [
        ('SAN', 'psnr', 'Tiny'), ('RCAN', 'psnr', 'Tiny'), ('SAN', 'gan', 'Tiny'), ('RCAN', 'gan', 'Tiny'),
    ]  # fmt: skip
    assert [(m['name'], m['better']) for m in report['metrics']] == [
        ('psnr', 'higher'), ('ssim', 'higher'), ('lpips', 'lower'), ('dists', 'lower'), ('niqe', 'lower'),
    ]  # fmt: skip
    assert report['skipped_metrics'] == []
    columns = csv_columns(METRICS)
    for row in report['summary']:
        missing = [c for c in columns if row.get(c) is None]
        assert missing == [f'{m}_std' for m in METRICS], missing  # one seed: no spread
    with open(out / 'report.csv') as handle:
        assert tuple(next(csv.reader(handle))) == columns
    assert [(p['stage'], p['a'], p['b']) for p in report['pairs']] == [('psnr', 'SAN', 'RCAN'), ('gan', 'SAN', 'RCAN')]
    for metric in METRICS:
        assert all(p[f'{metric}_p_holm'] is None and p[f'{metric}_significant'] is False for p in report['pairs'])
    assert set(report['bicubic'][0]) == {'dataset', 'scale', *METRICS, 'hr_niqe'}  # NIQE of the HR images too
    params = {
        n: count_params(build_network({**opt, 'upscale': 2}))
        for n, opt in gan_study_options(tmp_path)['networks'].items()
    }
    assert all(row['params'] == params[row['network']] and row['train_peak_mb'] > 0 for row in report['summary'])
    text = (out / 'report.md').read_text()
    assert '### PSNR stage (L1)' in text and '### GAN stage' in text and 'no statistical test is possible' in text
    assert '| SAN |' in text and '| bicubic |' in text and 'p Welch' not in text
    hr_niqe = f'| - | - | - | - | - | - | {report["bicubic"][0]["hr_niqe"]:.3f} | - |'
    assert text.count(f'| HR (no-reference metrics of the ground truth) {hr_niqe}') == 2  # both stages' tables
    assert text.count('Pairs of networks (NIQE, lower is better):') == 2 and '| Tiny NIQE |' in text
    figures = [
        'convergence_iter_x2.png',
        'gan_convergence_iter_x2.png',
        'gan_convergence_time_x2.png',
        'psnr_latency_Tiny_x2.png',
        *(f'perception_distortion_{m}_Tiny_x2.png' for m in METRICS[2:]),
    ]
    for name in figures:
        assert cv2.imread(str(out / name)) is not None, name

    runs = {r['name']: r for r in report['runs']}
    for psnr_run, gan_run in zip(PSNR_RUNS, GAN_RUNS):
        gan = runs[gan_run]
        assert (gan['stage'], gan['starts_from'], gan['param_key']) == ('gan', psnr_run, 'params_ema')
        assert [v['iter'] for v in gan['training']['validations']] == [2, 4]
        options = yaml.safe_load((out / 'options' / f'{gan_run}.yml').read_text())
        assert options['model_type'] == 'SANGANModel' and options['train']['total_iter'] == TINY_GAN['total_iter']
        assert options['network_d'] == TINY_GAN['network_d']
        first_log = logs(folder, gan_run)[0].read_text()  # each started from its PSNR run's final weights
        assert f'from experiments/{psnr_run}/models/net_g_latest.pth' in first_log
        assert f'from {options["path"]["pretrain_network_d"]}' in first_log
    # The same discriminator for every network of a seed: made under the seed alone, whatever the generator.
    study = read_study(folder / 'study.yml')
    paths = {yaml.safe_load((out / 'options' / f'{r}.yml').read_text())['path']['pretrain_network_d'] for r in GAN_RUNS}
    assert paths == {str(discriminator_init_path(study, 0))}
    saved = torch.load(folder / paths.pop(), weights_only=True)['params']
    for seed, same in ((0, True), (1, False)):
        made = discriminator_init(TINY_GAN['network_d'], seed).state_dict()
        assert all(torch.equal(saved[k], made[k]) for k in made) is same
    validations = runs['tiny_SAN_x2_s0']['training']['validations']
    assert [v['iter'] for v in validations] == [2, 4] and validations[0]['seconds'] < validations[1]['seconds']
    console = (folder / 'console.log').read_text()
    assert 'SAN x2 seed 0: iter 4/4, l_pix' in console
    assert 'SAN x2 seed 0 GAN: iter 4/4, l_g_pix' in console and 'l_d_real' in console


@pytest.mark.slow
def test_report_only_rebuilds_both_stages(tiny_gan_study, tmp_path, monkeypatch, capsys):
    folder = tiny_gan_study(tmp_path)
    monkeypatch.chdir(folder)
    out = folder / 'report'
    before = json.loads((out / 'report.json').read_text())
    for name in ('report.json', 'report.md', 'report.csv', 'perception_distortion_niqe_Tiny_x2.png'):
        (out / name).unlink()
    trained = {run: logs(folder, run) for run in PSNR_RUNS + GAN_RUNS}
    assert load_tool('compare').main(['-opt', 'study.yml', '--report-only']) == 0
    assert '### GAN stage' in capsys.readouterr().out
    after = json.loads((out / 'report.json').read_text())
    assert after == before
    assert cv2.imread(str(out / 'perception_distortion_niqe_Tiny_x2.png')) is not None
    assert {run: logs(folder, run) for run in trained} == trained  # nothing trained


@pytest.mark.slow
def test_killed_runs_resume_and_no_finished_psnr_run_trains_again(tiny_gan_study, tmp_path, monkeypatch, study_log,
                                                                  torch_home):  # fmt: skip
    folder = tiny_gan_study(tmp_path)
    monkeypatch.chdir(folder)
    runs, experiments = folder / 'report' / 'runs', folder / 'experiments'
    # SAN's GAN run killed after its checkpoint at iteration 2; RCAN's PSNR run killed after its checkpoint at
    # iteration 2, so its GAN run had not started; SAN's PSNR run finished.
    for run in ('tiny_SAN_x2_s0_gan', 'tiny_RCAN_x2_s0'):
        models, states = experiments / run / 'models', experiments / run / 'training_states'
        for path in [*models.glob('*_latest.pth'), *models.glob('*_4.pth'), states / '4.state', runs / f'{run}.json']:
            path.unlink()
    for path in [*(experiments / 'tiny_RCAN_x2_s0_gan').rglob('*'), runs / 'tiny_RCAN_x2_s0_gan.json']:
        if path.is_file():
            path.unlink()
    untouched = logs(folder, 'tiny_SAN_x2_s0')
    report = run_study(read_study('study.yml'))
    lines = study_log.messages
    assert '[1/4] tiny_SAN_x2_s0: finished before, skipped' in lines
    assert logs(folder, 'tiny_SAN_x2_s0') == untouched
    assert [line for line in lines if 'SAN x2 seed 0:' in line] == []  # the finished PSNR run trained no iteration
    assert [line.split(': iter ')[1].split(',')[0] for line in lines if 'SAN x2 seed 0 GAN: iter' in line] == ['4/4']
    assert [line.split(': iter ')[1].split(',')[0] for line in lines if 'RCAN x2 seed 0: iter' in line] == ['4/4']
    assert [line.split(': iter ')[1].split(',')[0] for line in lines if 'RCAN x2 seed 0 GAN: iter' in line] == [
        '2/4', '4/4'
    ]  # fmt: skip
    for run in ('tiny_SAN_x2_s0_gan', 'tiny_RCAN_x2_s0'):
        assert 'Resuming training from epoch: 0, iter: 2' in logs(folder, run)[-1].read_text(), run
    # RCAN's GAN run started once its PSNR run had finished again, from its new final weights.
    (gan_log,) = logs(folder, 'tiny_RCAN_x2_s0_gan')
    assert 'from experiments/tiny_RCAN_x2_s0/models/net_g_latest.pth' in gan_log.read_text()
    assert all((runs / f'{run}.json').is_file() for run in PSNR_RUNS + GAN_RUNS)
    assert len(report['summary']) == 4


@pytest.fixture
def gan_study(tmp_path, monkeypatch):
    """The tiny GAN study's mapping (:func:`helpers.study.gan_study_options`), its working directory ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    return gan_study_options(tmp_path)


def stops_before_training(options, folder, pattern):
    """Run the study: it must stop with a StudyError matching ``pattern`` having prepared and trained nothing."""
    with pytest.raises(StudyError, match=pattern):
        run_study(parse_study(options))
    assert not (folder / 'experiments').exists() and not (folder / 'datasets').exists()


@pytest.mark.parametrize(
    'edit, pattern',
    [
        # the perceptual loss's VGG19, and a metric listed in test.metrics, with no weights and no network to download
        (
            {},
            r'^study: missing ImageNet weights \(downloading failed: URLError: .*\): gan\.perceptual_weight needs '
            r'vgg19-dcbb9e9d\.pth: put it at .*/vgg19-dcbb9e9d\.pth or experiments/pretrained_models/vgg19-dcbb9e9d'
            r'\.pth \(gan\.perceptual_weight: 0 trains without the perceptual loss\)$',
        ),
        (
            {'gan': {**TINY_GAN, 'perceptual_weight': 0}, 'test': {'metrics': ['niqe', 'lpips']}},
            r'^study: missing ImageNet weights \(downloading failed: URLError: .*\): test\.metrics\.lpips needs '
            r'alexnet-owt-7be5be79\.pth: put it at .*/alexnet-owt-7be5be79\.pth \(or give its path as '
            r'test\.metrics\.lpips\.backbone_path\)$',
        ),
        # both at once: one message names every missing file with the key that asked for it
        (
            {'test': {'metrics': ['lpips']}},
            r'^study: missing ImageNet weights \(downloading failed: URLError: .*\): gan\.perceptual_weight needs '
            r'vgg19-dcbb9e9d\.pth: put it at .*/vgg19-dcbb9e9d\.pth or experiments/pretrained_models/vgg19-dcbb9e9d'
            r'\.pth; test\.metrics\.lpips needs alexnet-owt-7be5be79\.pth: put it at .*/alexnet-owt-7be5be79\.pth '
            r'\(or give its path as test\.metrics\.lpips\.backbone_path\) \(gan\.perceptual_weight: 0 trains without '
            r'the perceptual loss\)$',
        ),
    ],
    ids=['perceptual_loss', 'listed_metric', 'loss_and_metric'],
)
def test_missing_weights_stop_the_study_naming_the_key(gan_study, tmp_path, monkeypatch, offline_hub, edit, pattern):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'empty_torch_home'))
    options = {**gan_study, **{k: v for k, v in edit.items() if k != 'test'}}
    options['test'] = {**gan_study['test'], **edit.get('test', {})}
    stops_before_training(options, tmp_path, pattern)
    assert offline_hub  # the libraries' download was tried first


def test_test_images_too_small_for_niqe_stop_the_study(gan_study, tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'empty_torch_home'))
    options = changed(gan_study, ('gan', 'perceptual_weight'), 0)
    small = changed(options, ('test', 'datasets', 'Tiny', 'images'), gan_study['train']['data'])  # 96x96 images
    path = tmp_path / 'train_hr' / 'img0.png'
    stops_before_training(
        small,
        tmp_path,
        rf'^study: test\.datasets\.Tiny: {path} is 96x96 at x2, too small for NIQE, which needs two 96x96 blocks '
        r'once 2 pixels are cropped from each edge \(at least 100x196\); use larger test images, or test\.metrics '
        r'without niqe$',
    )


def test_a_patch_the_discriminator_cannot_take_stops_the_study(gan_study):
    study = parse_study(changed(gan_study, ('gan', 'gt_size'), 36))  # the U-Net halves it three times: 36 -> 4.5
    with pytest.raises(StudyError, match=r'^study: gan\.gt_size: UNetDiscriminatorSN cannot take 36x36 patches: '):
        check_networks(study)


def test_without_weights_a_gan_study_reports_niqe_and_says_why_lpips_and_dists_are_left_out(
    gan_study, tmp_path, monkeypatch
):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'empty_torch_home'))
    metrics = resolve_metrics(parse_study(gan_study))
    assert [spec.name for spec in metrics.specs] == ['niqe']
    assert list(metrics.skipped) == ['lpips', 'dists']
    cache = tmp_path / 'empty_torch_home' / 'hub' / 'checkpoints'
    assert metrics.skipped['lpips'] == (
        f'left out, its weights are missing: test.metrics.lpips needs alexnet-owt-7be5be79.pth: put it at '
        f'{cache}/alexnet-owt-7be5be79.pth (or give its path as test.metrics.lpips.backbone_path); or list lpips in '
        'test.metrics to download them'
    )
    assert resolve_metrics(parse_study({k: v for k, v in gan_study.items() if k != 'gan'})).specs == []
    # The report says which metric was left out and why, instead of leaving a silent gap.
    study = parse_study(gan_study)
    records = [
        {**record(network, 0, [28.0, 29.0], 'Tiny', stage=stage, niqe=[5.0, 6.0]), 'skipped_metrics': metrics.skipped}
        for stage in ('psnr', 'gan')
        for network in ('SAN', 'RCAN')
    ]
    memory = {(n, 2): {'infer_peak_mb': 1, 'infer_input': '-', 'train_peak_mb': 1, 'train_input': '-'}
              for n in ('SAN', 'RCAN')}  # fmt: skip
    report = build_report(study, records, [], memory, {key: 1 for key in memory})
    assert [m['name'] for m in report['metrics']] == ['psnr', 'ssim', 'niqe']
    assert report['skipped_metrics'] == [{'name': n, 'reason': metrics.skipped[n]} for n in ('lpips', 'dists')]
