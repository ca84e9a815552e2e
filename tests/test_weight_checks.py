"""A run whose ImageNet weights (perceptual loss, LPIPS, DISTS) are missing or bad stops at option parsing, in one
message naming each file, where to put it and the option key that asked for it; runs that need nothing check
nothing, and runs that have their weights go on as before."""

import contextlib
import copy
import re

import pytest
import torch
from basicsr.metrics import calculate_metric
from helpers.backbones import write_random_backbone
from helpers.workflow import describe, make_pairs, read_log, run_python, train_options, write_options

from san_plugin.compat.weights_check import check_weights
from san_plugin.metrics.backbones import MissingWeightsError, WeightsFileError, weights_file_name

PERCEPTUAL = {'type': 'PerceptualLoss', 'layer_weights': {'conv1_2': 1.0}, 'perceptual_weight': 1.0}
LPIPS = {'type': 'calculate_lpips', 'crop_border': 2}
DISTS = {'type': 'calculate_dists', 'crop_border': 2, 'better': 'lower'}


def run_opt(perceptual=None, **metrics):
    """Options of a run: ``train.perceptual_opt`` and ``val.metrics`` as given, beside an L1 loss and PSNR."""
    train = {'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}, 'perceptual_opt': perceptual}
    val_metrics = {'psnr': {'type': 'calculate_psnr', 'crop_border': 2}, **metrics}
    return {'train': train, 'val': {'metrics': val_metrics}}


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    """No weights anywhere: an empty TORCH_HOME, and a working folder without experiments/pretrained_models."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    monkeypatch.chdir(tmp_path)
    return tmp_path / 'torch_home' / 'hub' / 'checkpoints'


def test_the_documented_torchvision_file_names():
    names = {arch: weights_file_name(arch) for arch in ('alexnet', 'squeezenet1_1', 'vgg16', 'vgg19')}
    assert names == {'alexnet': 'alexnet-owt-7be5be79.pth', 'squeezenet1_1': 'squeezenet1_1-b8a52dc0.pth',
                     'vgg16': 'vgg16-397923af.pth', 'vgg19': 'vgg19-dcbb9e9d.pth'}  # fmt: skip


def test_a_missing_vgg_of_the_perceptual_loss_is_named(empty_torch_home, offline_hub):
    with pytest.raises(MissingWeightsError) as error:
        check_weights(run_opt(PERCEPTUAL))
    assert str(error.value) == (
        'missing ImageNet weights (downloading failed: URLError: <urlopen error [Errno -3] Temporary failure in name '
        f'resolution>): train.perceptual_opt needs vgg19-dcbb9e9d.pth: put it at {empty_torch_home}/vgg19-dcbb9e9d.pth '
        'or experiments/pretrained_models/vgg19-dcbb9e9d.pth'
    )
    assert offline_hub == ['https://download.pytorch.org/models/vgg19-dcbb9e9d.pth']


def test_one_message_lists_every_missing_file(empty_torch_home, offline_hub):
    opt = run_opt(PERCEPTUAL, lpips=dict(LPIPS), dists=dict(DISTS), lpips_vgg={**LPIPS, 'net': 'vgg'})
    with pytest.raises(MissingWeightsError) as error:
        check_weights(opt)
    message = str(error.value)
    assert '\n' not in message
    clauses = message.split('): ', 1)[1].split('; ')
    assert [clause.split(': put it at')[0] for clause in clauses] == [
        'train.perceptual_opt needs vgg19-dcbb9e9d.pth',
        'val.metrics.lpips needs alexnet-owt-7be5be79.pth',
        'val.metrics.dists needs vgg16-397923af.pth',
        'val.metrics.lpips_vgg needs vgg16-397923af.pth',
    ]
    assert clauses[1].endswith(
        f'{empty_torch_home}/alexnet-owt-7be5be79.pth (or give its path as val.metrics.lpips.backbone_path)'
    )
    assert len(offline_hub) == 3  # VGG16 is tried once for both metrics that need it


@pytest.mark.slow  # builds an LPIPS network (importing torchmetrics) and writes a VGG19 file
def test_weights_in_the_places_the_libraries_read_pass(torch_home, tmp_path, monkeypatch, offline_hub):
    # The VGG19 of BasicSR's loss in torchvision's cache; LPIPS in the cache too.
    opt = run_opt(PERCEPTUAL, lpips={**LPIPS, 'net': 'squeeze'})
    expected = copy.deepcopy(opt)
    expected['val']['metrics']['lpips']['better'] = 'lower'
    check_weights(opt)
    assert opt == expected and offline_hub == []
    # BasicSR's own place for the loss's VGG19, relative to the working folder.
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'empty'))
    monkeypatch.chdir(tmp_path)
    write_random_backbone('vgg19', tmp_path / 'experiments' / 'pretrained_models')
    check_weights(run_opt(PERCEPTUAL))
    assert offline_hub == []


def test_a_missing_file_is_downloaded_into_torchvision_s_cache(empty_torch_home, monkeypatch):
    fetched = []

    def download_url_to_file(url, dst, hash_prefix, *args, **kwargs):
        fetched.append((url, dst, hash_prefix))
        write_random_backbone('squeezenet1_1', empty_torch_home)

    monkeypatch.setattr(torch.hub, 'download_url_to_file', download_url_to_file)
    check_weights(run_opt(lpips={**LPIPS, 'net': 'squeeze'}))
    cache_file = str(empty_torch_home / 'squeezenet1_1-b8a52dc0.pth')
    assert fetched == [('https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth', cache_file, 'b8a52dc0')]


@pytest.mark.parametrize('loss', [{**PERCEPTUAL, 'perceptual_weight': 0}, None], ids=['weight_0', 'no_loss'])
def test_a_run_that_needs_nothing_checks_nothing(empty_torch_home, offline_hub, loss):
    opt = run_opt(loss, niqe={'type': 'calculate_niqe', 'crop_border': 2, 'better': 'lower'})
    opt['val']['metrics']['ssim'] = {'type': 'calculate_ssim', 'crop_border': 2}
    expected = copy.deepcopy(opt)
    expected['train']['perceptual_opt'] = None
    warns = pytest.warns(UserWarning, match='perceptual_weight and style_weight are 0 and vgg19-dcbb9e9d.pth is mis')
    with warns if loss else contextlib.nullcontext():
        check_weights(opt)
    assert opt == expected and offline_hub == []


def test_a_loss_with_weight_0_is_left_as_it_is_when_its_vgg_is_there(torch_home, offline_hub):
    opt = run_opt({**PERCEPTUAL, 'perceptual_weight': 0})
    expected = copy.deepcopy(opt)
    check_weights(opt)
    assert opt == expected


def test_a_style_loss_needs_its_vgg(empty_torch_home, offline_hub):
    with pytest.raises(MissingWeightsError, match='train.perceptual_opt needs vgg19-dcbb9e9d.pth'):
        check_weights(run_opt({**PERCEPTUAL, 'perceptual_weight': 0, 'style_weight': 1.0}))


def test_a_missing_backbone_path_is_named_and_not_downloaded(empty_torch_home, offline_hub, tmp_path):
    opt = run_opt(lpips={**LPIPS, 'backbone_path': str(tmp_path / 'alex.pth')})
    with pytest.raises(MissingWeightsError) as error:
        check_weights(opt)
    assert str(error.value) == (
        f'missing ImageNet weights: val.metrics.lpips.backbone_path: {tmp_path}/alex.pth does not exist'
    )
    assert offline_hub == []


@pytest.mark.parametrize('bad', ['corrupt', 'other_network'])
def test_a_bad_backbone_file_stops_the_check(tmp_path, bad):
    path = tmp_path / 'squeeze.pth'
    if bad == 'corrupt':
        path.write_bytes(b'\x80\x02 not a pickle')
    else:
        write_random_backbone('alexnet', tmp_path).rename(path)
    with pytest.raises(WeightsFileError, match=f'^val.metrics.lpips: {path} (cannot be read|is not torchvision squee)'):
        check_weights(run_opt(lpips={**LPIPS, 'net': 'squeeze', 'backbone_path': str(path)}))


@pytest.mark.parametrize(
    'metric, message',
    [
        ({**LPIPS, 'net': 'alexx'}, r"val.metrics.lpips.net: 'alexx' is not one of alex, vgg, squeeze"),
        ({**LPIPS, 'better': 'higher'}, r"val.metrics.lpips.better: calculate_lpips is better when lower, got 'highe"),
        ({**LPIPS, 'test_y_channel': True}, r"val.metrics.lpips \(calculate_lpips\): unknown option\(s\) \['test_y_c"),
        ({'type': 'calculate_dists'}, r"val.metrics.lpips \(calculate_dists\): missing required option\(s\) \['crop_"),
    ],
)
def test_bad_metric_options_name_the_key(offline_hub, metric, message):
    with pytest.raises(ValueError, match=message):
        check_weights(run_opt(lpips=metric))
    assert offline_hub == []


def test_an_unknown_metric_type_is_left_to_basicsr(empty_torch_home, offline_hub):
    opt = run_opt(lpips={**LPIPS, 'type': 'calculate_lpipz'})
    check_weights(opt)
    with pytest.raises(KeyError, match="No object named 'calculate_lpipz' found in 'metric' registry!"):
        calculate_metric({'img': None, 'img2': None}, opt['val']['metrics']['lpips'])


@pytest.mark.slow
def test_basicsr_training_stops_at_option_parsing(tmp_path):
    opt = train_options('tiny_missing_weights', *make_pairs(tmp_path / 'pairs', num=2))
    opt['train']['perceptual_opt'] = dict(PERCEPTUAL)
    opt['val']['metrics'].update(lpips=dict(LPIPS), dists=dict(DISTS))
    write_options(tmp_path / 'train.yml', opt)
    proc = run_python(['-m', 'basicsr.train', '-opt', 'train.yml'], cwd=tmp_path, env={'TORCH_HOME': 'torch_home'})
    assert proc.returncode != 0, describe(proc)
    last_line = proc.stderr.strip().splitlines()[-1]
    assert last_line.startswith(
        'san_plugin.compat.entry_points.OptionsCheckError: train.yml: missing ImageNet weights'
    ), last_line
    needed = [('train.perceptual_opt', 'vgg19'), ('val.metrics.lpips', 'alexnet'), ('val.metrics.dists', 'vgg16')]
    for key, arch in needed:
        assert f'{key} needs {weights_file_name(arch)}: put it at torch_home/hub/checkpoints/' in last_line
    assert 'urllib' not in proc.stderr, 'a download traceback is shown'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['pairs', 'torch_home', 'train.yml']  # no experiments/


@pytest.mark.slow
def test_basicsr_training_validates_with_perceptual_metrics(tmp_path, random_torch_home):
    opt = train_options('tiny_perceptual', *make_pairs(tmp_path / 'pairs', num=2), total_iter=2)
    opt['train']['perceptual_opt'] = dict(PERCEPTUAL)
    opt['val']['metrics'].update(lpips={**LPIPS, 'net': 'squeeze'})
    write_options(tmp_path / 'train.yml', opt)
    proc = run_python(['-m', 'basicsr.train', '-opt', 'train.yml'], cwd=tmp_path,
                      env={'TORCH_HOME': str(random_torch_home)})  # fmt: skip
    assert proc.returncode == 0, describe(proc)
    log = read_log(tmp_path / 'experiments' / 'tiny_perceptual', 'train_tiny_perceptual')
    assert 'l_percep: ' in log
    assert re.search(r'\t # lpips: 0\.\d{4}\tBest: 0\.\d{4} @ 2 iter\n', log), log  # BasicSR validates at iteration 2
