"""LPIPS and DISTS as BasicSR metrics: torchmetrics' values, their weight files, BasicSR's validation of any model,
and the quality benchmark's ``--metric``.

The backbones are random (``helpers/backbones.py``): the values test the computation and the loading path, and mean
nothing as image quality.
"""

import csv
import json
import shutil
import sys

import cv2
import numpy as np
import pytest
import torch
import yaml
from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.metrics import calculate_metric
from basicsr.metrics.niqe import calculate_niqe
from basicsr.models import build_model
from basicsr.utils.registry import METRIC_REGISTRY
from conftest import REPO_ROOT
from helpers.backbones import write_random_backbone
from helpers.workflow import SCALE, TINY_MSRRESNET, TINY_SAN, make_pairs

from san_plugin.benchmark.models import ModelSpec
from san_plugin.benchmark.report import markdown_table, write_csv
from san_plugin.compat.weights_check import check_weights
from san_plugin.metrics.backbones import BackboneRequest, MissingWeightsError, WeightsFileError
from san_plugin.metrics.perceptual import calculate_dists, calculate_lpips

sys.path.insert(0, str(REPO_ROOT / 'tools'))
import benchmark  # noqa: E402

TINY_RRDBNET = {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4}


def image_pair(h=48, w=56, seed=0):
    """A smooth BGR uint8 image and a noisy copy of it."""
    rng = np.random.default_rng(seed)
    clean = cv2.resize((rng.random((6, 6, 3)) * 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
    noisy = np.clip(clean + rng.normal(0, 12, clean.shape), 0, 255).astype(np.uint8)
    return noisy, clean


def library_tensor(img, crop_border):
    """What torchmetrics takes: RGB float (1, 3, H, W) in [0, 1], written out independently of the plugin's own."""
    cropped = img[crop_border:-crop_border, crop_border:-crop_border].astype(np.float32) / 255.0
    return torch.from_numpy(cropped[:, :, [2, 1, 0]].transpose(2, 0, 1).copy())[None]


def test_registered_beside_basicsr_metrics():
    assert METRIC_REGISTRY.get('calculate_lpips') is calculate_lpips
    assert METRIC_REGISTRY.get('calculate_dists') is calculate_dists
    assert METRIC_REGISTRY.get('calculate_niqe') is calculate_niqe  # BasicSR's own, untouched


@pytest.mark.parametrize('input_order', ['HWC', 'CHW'])
def test_lpips_equals_torchmetrics(torch_home, input_order):
    from torchmetrics.functional.image.lpips import learned_perceptual_image_patch_similarity

    sr, hr = image_pair(64, 72)
    expected = learned_perceptual_image_patch_similarity(
        library_tensor(sr, 3), library_tensor(hr, 3), net_type='squeeze', normalize=True
    )
    if input_order == 'CHW':  # and float images in [0, 255], as BasicSR's metrics take them too
        sr, hr = (img.transpose(2, 0, 1).astype(np.float32) for img in (sr, hr))
    value = calculate_lpips(sr, hr, crop_border=3, input_order=input_order, net='squeeze')
    assert value == float(expected) and value > 0
    assert calculate_lpips(hr, hr, crop_border=3, input_order=input_order, net='squeeze') == 0


@pytest.mark.slow
def test_dists_equals_torchmetrics(torch_home):
    from torchmetrics.functional.image.dists import deep_image_structure_and_texture_similarity

    sr, hr = image_pair()
    with torch.no_grad():
        expected = deep_image_structure_and_texture_similarity(library_tensor(sr, 2), library_tensor(hr, 2), 'mean')
    # Through BasicSR's calculate_metric, with the options a val.metrics section passes (better included).
    value = calculate_metric({'img': sr, 'img2': hr}, {'type': 'calculate_dists', 'crop_border': 2, 'better': 'lower'})
    assert value == float(expected) and value > 0


def test_backbone_path_is_the_file_read(torch_home, tmp_path, monkeypatch):
    sr, hr = image_pair()
    from_cache = calculate_lpips(sr, hr, 2, net='squeeze')
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'empty'))
    copy = shutil.copy(torch_home / 'hub' / 'checkpoints' / 'squeezenet1_1-b8a52dc0.pth', tmp_path / 'my.pth')
    other = write_random_backbone('squeezenet1_1', tmp_path / 'other', seed=1)
    assert calculate_lpips(sr, hr, 2, net='squeeze', backbone_path=str(copy)) == from_cache
    assert calculate_lpips(sr, hr, 2, net='squeeze', backbone_path=str(other)) != from_cache


def test_a_missing_backbone_stops_the_metric_without_a_download(tmp_path, monkeypatch, offline_hub):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    sr, hr = image_pair()
    cache = tmp_path / 'hub' / 'checkpoints' / 'squeezenet1_1-b8a52dc0.pth'
    message = f'calculate_lpips needs squeezenet1_1-b8a52dc0.pth: put it at {cache} .or give its path as backbone_path'
    with pytest.raises(MissingWeightsError, match=message):
        calculate_lpips(sr, hr, 2, net='squeeze')
    with pytest.raises(MissingWeightsError, match=f'backbone_path: {tmp_path}/nope.pth does not exist'):
        calculate_dists(sr, hr, 2, backbone_path=str(tmp_path / 'nope.pth'))
    assert offline_hub == []


def test_a_metric_looks_its_backbone_up_once(torch_home, tmp_path, monkeypatch):
    sr, hr = image_pair()
    first = calculate_lpips(sr, hr, 2, net='squeeze')
    looked_up, existing_file = [], BackboneRequest.existing_file
    monkeypatch.setattr(BackboneRequest, 'existing_file', lambda self: looked_up.append(self) or existing_file(self))
    assert [calculate_lpips(sr, hr, 2, net='squeeze') for _ in range(2)] == [first, first]
    assert looked_up == []
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))  # another cache folder is looked up (and has no file)
    with pytest.raises(MissingWeightsError, match='calculate_lpips needs squeezenet1_1-b8a52dc0.pth'):
        calculate_lpips(sr, hr, 2, net='squeeze')
    assert len(looked_up) == 1


def corrupt_file(path):
    path.write_bytes(b'PK\x03\x04 half a zip')
    return 'cannot be read as a torch file (PytorchStreamReader failed reading zip archive: not a ZIP archive)'


def other_network(path):
    torch.save(torch.load(write_random_backbone('alexnet', path.parent / 'alex'), weights_only=True), path)
    return "is not torchvision squeezenet1_1 weights (missing ['features.3.squeeze.weight'"


def not_a_state_dict(path):
    torch.save([1, 2], path)
    return 'holds a list, not a state dict of squeezenet1_1'


@pytest.mark.parametrize('make_bad', [corrupt_file, other_network, not_a_state_dict], ids=lambda f: f.__name__)
def test_a_bad_backbone_file_is_named(tmp_path, make_bad):
    path = tmp_path / 'backbone.pth'
    expected = make_bad(path)
    with pytest.raises(WeightsFileError) as error:
        calculate_lpips(*image_pair(), 2, net='squeeze', backbone_path=str(path))
    assert str(error.value).startswith(f'calculate_lpips: {path}') and expected in str(error.value)


def test_wrong_inputs_are_named(torch_home):
    sr, hr = image_pair()
    with pytest.raises(ValueError, match="net: 'alexx' is not one of alex, vgg, squeeze"):
        calculate_lpips(sr, hr, 2, net='alexx')
    with pytest.raises(ValueError, match=r'Image shapes are different: \(48, 56, 3\), \(48, 50, 3\)'):
        calculate_lpips(sr, hr[:, :50], 2, net='squeeze')
    with pytest.raises(ValueError, match='expected 3-channel BGR images'):
        calculate_lpips(sr[..., 0], hr[..., 0], 2, net='squeeze')


@pytest.fixture
def val_loader(tmp_path):
    gt_dir, lq_dir = make_pairs(tmp_path / 'pairs', num=2)
    dataset = PairedImageDataset({'name': 'tiny_val', 'dataroot_gt': str(gt_dir), 'dataroot_lq': str(lq_dir),
                                  'filename_tmpl': '{}', 'io_backend': {'type': 'disk'}, 'phase': 'val',
                                  'scale': SCALE})  # fmt: skip
    return torch.utils.data.DataLoader(dataset, batch_size=1)


@pytest.mark.parametrize(
    'model_type, network',
    [('SRModel', TINY_MSRRESNET), ('ESRGANModel', {**TINY_RRDBNET, 'scale': SCALE}), ('SANModel', TINY_SAN)],
)
def test_any_basicsr_model_validates_with_lower_is_better(torch_home, val_loader, model_type, network):
    metrics = {'lpips': {'type': 'calculate_lpips', 'crop_border': SCALE, 'net': 'squeeze'}}
    opt = {'model_type': model_type, 'name': 'metrics', 'scale': SCALE, 'num_gpu': 0, 'is_train': False,
           'dist': False, 'rank': 0, 'world_size': 1, 'network_g': dict(network), 'path': {'pretrain_network_g': None},
           'val': {'save_img': False, 'metrics': metrics}}  # fmt: skip
    check_weights(opt)
    assert metrics['lpips']['better'] == 'lower'
    model = build_model(opt)
    values = []
    for current_iter in (1, 2):
        model.validation(val_loader, current_iter, None, save_img=False)
        values.append(model.metric_results['lpips'])
        torch.nn.init.normal_(next(model.net_g.parameters()), 0, 0.5)  # another network for the next validation
    assert values[0] != values[1]
    best = model.best_metric_results['tiny_val']['lpips']
    assert best == {'better': 'lower', 'val': min(values), 'iter': 1 + values.index(min(values))}


def test_markdown_and_csv_columns_of_extra_metrics(tmp_path):
    base = {'dataset': 'd', 'scale': 2, 'device': 'cpu', 'flops_input': None, 'params': None, 'flops': None,
            'latency_ms': None, 'per_image': [{}]}  # fmt: skip
    rows = [
        {**base, 'model': 'a', 'psnr': 30.0, 'ssim': 0.9, 'lpips': 0.25, 'niqe': 5.5},
        {**base, 'model': 'b', 'psnr': 31.0, 'ssim': 0.8, 'lpips': 0.125, 'niqe': 6.5},
    ]
    md = markdown_table(rows)
    assert '| Model | Params (M) | FLOPs (G) | d PSNR / SSIM | d LPIPS | d NIQE | d ms |' in md
    assert '| a | - | - | 30.00 / **0.9000** | 0.2500 | **5.5000** | - |' in md
    assert '| b | - | - | **31.00** / 0.8000 | **0.1250** | 6.5000 | - |' in md
    assert 'LPIPS, NIQE: mean per image, crop border = scale, lower is better.' in md
    write_csv(tmp_path / 'r.csv', rows)
    with open(tmp_path / 'r.csv', newline='') as f:
        table = list(csv.DictReader(f))
    assert list(table[0])[3:7] == ['psnr', 'ssim', 'lpips', 'niqe']
    assert [r['lpips'] for r in table] == ['0.25', '0.125']


@pytest.fixture
def hr_folder(tmp_path):
    """Two noisy 196x196 HR images: at x2, 2x2 of NIQE's 96-pixel blocks fit after the border crop (it needs more
    than one)."""
    folder = tmp_path / 'hr'
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f'im{i}.png'), image_pair(196, 196, seed=i)[0])
    return folder


@pytest.mark.slow
def test_quality_benchmark_metric_columns(torch_home, hr_folder, tmp_path, capsys):
    opt = tmp_path / 'bench.yml'
    opt.write_text(yaml.safe_dump({'metrics': {'lpips': {'net': 'squeeze'}}}))
    out = tmp_path / 'out'
    model = 'n=type:SAN,num_feat:8,num_group:1,num_block:1,squeeze_factor:4'
    code = benchmark.main(['quality', '--no-progress', '-opt', str(opt), '--model', 'bicubic', '--model', model,
                           '--dataset', f'toy={hr_folder}', '--scale', '2', '--out', str(out), '--flops-input', '8',
                           '8', '--metric', 'niqe', '--metric', 'lpips'])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    rows = json.loads((out / 'results.json').read_text())
    for row in rows:
        assert row['lpips'] == pytest.approx(np.mean([p['lpips'] for p in row['per_image']]), rel=1e-12)
        assert row['niqe'] == pytest.approx(np.mean([p['niqe'] for p in row['per_image']]), rel=1e-12)
    bicubic, network = rows
    assert bicubic['lpips'] != network['lpips']
    md = (out / 'results.md').read_text()
    best, worst = sorted([bicubic, network], key=lambda r: r['lpips'])
    assert f'**{best["lpips"]:.4f}**' in md and f'| {worst["lpips"]:.4f} |' in md
    with open(out / 'results.csv', newline='') as f:
        assert [float(r['lpips']) for r in csv.DictReader(f)] == [r['lpips'] for r in rows]


def test_quality_benchmark_stops_before_any_model_runs_when_weights_are_missing(
    hr_folder, tmp_path, monkeypatch, offline_hub, capsys
):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'empty'))
    monkeypatch.setattr(ModelSpec, 'build', lambda *args: pytest.fail('a model was built'))
    out = tmp_path / 'out'
    code = benchmark.main(['quality', '--no-progress', '--model', 'bicubic', '--dataset', f'toy={hr_folder}',
                           '--scale', '2', '--out', str(out), '--metric', 'lpips', '--metric', 'dists'])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and not out.exists()
    cache = tmp_path / 'empty' / 'hub' / 'checkpoints'
    assert err.strip().splitlines() == [
        'error: missing ImageNet weights (downloading failed: URLError: <urlopen error [Errno -3] Temporary failure '
        f'in name resolution>): --metric lpips needs alexnet-owt-7be5be79.pth: put it at {cache}/alexnet-owt-'
        '7be5be79.pth (or give its path as metrics.lpips.backbone_path of the -opt file); --metric dists needs '
        f'vgg16-397923af.pth: put it at {cache}/vgg16-397923af.pth (or give its path as metrics.dists.backbone_path '
        'of the -opt file)'
    ]
    assert len(offline_hub) == 2


@pytest.mark.parametrize(
    'metrics, message',
    [
        (['fid'], "metrics.fid: unknown metric 'fid' (known: lpips, dists, niqe)"),
        ({'lpips': {'net': 'alexx'}}, "metrics.lpips.net: 'alexx' is not one of alex, vgg, squeeze"),
        (
            {'lpips': {'crop_border': 4}},
            "metrics.lpips (calculate_lpips): unknown option(s) ['crop_border']; calculate_lpips accepts ['net', "
            "'backbone_path']",
        ),
        (
            {'dists': {'backbone_path': '/no/vgg16.pth'}},
            'missing ImageNet weights: metrics.dists.backbone_path: /no/vgg16.pth does not exist',
        ),
        ({'niqe': 'y'}, "metrics.niqe: expected a mapping of options, got 'y'"),
        ('lpips', "metrics: expected a list of metric names or a mapping name -> options, got 'lpips'"),
    ],
)
def test_quality_benchmark_metric_options_are_checked(hr_folder, tmp_path, capsys, metrics, message):
    opt = tmp_path / 'bench.yml'
    opt.write_text(yaml.safe_dump({'metrics': metrics}))
    args = ['quality', '-opt', str(opt), '--model', 'bicubic', '--dataset', f'toy={hr_folder}', '--scale', '2']
    assert benchmark.main([*args, '--out', str(tmp_path / 'out')]) == 1
    assert capsys.readouterr().err.strip() == f'error: {message}'


def test_quality_benchmark_rejects_an_unknown_metric_flag(capsys):
    with pytest.raises(SystemExit) as stop:
        benchmark.main(['quality', '--metric', 'fid'])
    assert stop.value.code == 2
    assert "argument --metric: invalid choice: 'fid'" in capsys.readouterr().err
