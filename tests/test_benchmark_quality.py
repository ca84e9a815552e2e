"""Quality benchmark end to end on a tiny generated data set, its inputs, outputs and errors."""

import argparse
import csv
import json
from unittest import mock

import cv2
import numpy as np
import pytest
import torch
import yaml
from conftest import load_tool

from san_plugin.archs.san_arch import SAN
from san_plugin.benchmark import quality
from san_plugin.benchmark.datasets import load_dataset, parse_dataset_spec
from san_plugin.benchmark.models import parse_model_spec
from san_plugin.benchmark.quality_options import read_options_file
from san_plugin.benchmark.report import markdown_table
from san_plugin.data.images import bicubic_resize

benchmark = load_tool('benchmark')

TINY = {'num_feat': 16, 'num_group': 1, 'num_block': 1, 'squeeze_factor': 4}
ROW_KEYS = {'model', 'dataset', 'scale', 'psnr', 'ssim', 'params', 'flops', 'flops_input', 'latency_ms', 'device',
            'per_image'}  # fmt: skip


def smooth_image(rng, h, w):
    return cv2.resize((rng.random((6, 6, 3)) * 255).astype(np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)


@pytest.fixture
def toy(tmp_path):
    """HR folder of three images (one not a multiple of the scale), an x2 LR folder, tiny SAN x2 weights."""
    rng = np.random.default_rng(0)
    hr, lr = tmp_path / 'hr', tmp_path / 'lr'
    hr.mkdir()
    lr.mkdir()
    for i, (h, w) in enumerate([(32, 40), (33, 24), (24, 24)]):
        img = smooth_image(rng, h, w)
        cv2.imwrite(str(hr / f'im{i}.png'), img)
        cv2.imwrite(str(lr / f'im{i}x2.png'), bicubic_resize(img[: h // 2 * 2, : w // 2 * 2], 0.5))
    weights = tmp_path / 'tiny_x2.pth'
    torch.save({'params': SAN(upscale=2, **TINY).state_dict()}, weights)
    return tmp_path, hr, lr, weights


def run_cli(*args):
    return benchmark.main(['quality', '--no-progress', *map(str, args)])


@pytest.mark.slow
def test_quality_writes_every_output(toy, capsys):
    root, hr, lr, weights = toy
    out = root / 'out'
    code = run_cli(
        '--model', 'bicubic', '--model', f'san={weights}', '--dataset', f'toy={hr}:{lr}', '--dataset', f'gen={hr}',
        '--scale', 2, '--out', out, '--flops-input', 8, 8, '--crops', 'im1:4,6,8',
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    rows = json.loads((out / 'results.json').read_text())
    assert [(r['model'], r['dataset']) for r in rows] == [('bicubic', 'toy'), ('bicubic', 'gen'), ('san', 'toy'),
                                                         ('san', 'gen')]  # fmt: skip
    for row in rows:
        assert set(row) == ROW_KEYS  # no in-process peak memory: see tools/benchmark.py speed
        assert row['scale'] == 2 and len(row['per_image']) == 3
        assert row['psnr'] == pytest.approx(np.mean([p['psnr'] for p in row['per_image']]))
    bicubic, san = rows[0], rows[2]
    assert bicubic['params'] is None and bicubic['latency_ms'] is None
    assert san['params'] == sum(p.numel() for p in SAN(upscale=2, **TINY).parameters())
    assert san['flops'] > 0 and san['latency_ms'] > 0 and san['flops_input'] == '8x8'
    # The LR folder holds bicubic LR of the same HR, so both data sets give the same bicubic figures.
    assert rows[0]['psnr'] == pytest.approx(rows[1]['psnr'], abs=1e-6)
    with open(out / 'results.csv', newline='') as f:
        table = list(csv.DictReader(f))
    assert not any('mem' in column for column in table[0])
    assert [(r['model'], r['dataset'], r['num_images']) for r in table] == [
        (r['model'], r['dataset'], '3') for r in rows
    ]
    md = (out / 'results.md').read_text()
    # The untrained network is far worse than bicubic: bicubic's PSNR / SSIM are bold, the network's are not.
    assert f'**{bicubic["psnr"]:.2f}** / **{bicubic["ssim"]:.4f}**' in md
    assert f'| {san["psnr"]:.2f} / {san["ssim"]:.4f} |' in md
    for name in ('psnr_latency_toy_x2.png', 'psnr_latency_gen_x2.png', 'crops_toy_x2_im1.png', 'crops_gen_x2_im1.png'):
        img = cv2.imread(str(out / name))
        assert img is not None and img.shape[0] > 100, name
    assert not list(out.glob('.*.tmp'))


def test_markdown_bolds_best_per_column():
    base = {'dataset': 'd', 'scale': 4, 'device': 'cpu', 'flops_input': '8x8'}
    rows = [
        {**base, 'model': 'a', 'psnr': 30.0, 'ssim': 0.9, 'params': 2e6, 'flops': 3e9, 'latency_ms': 5.0},
        {**base, 'model': 'b', 'psnr': 31.0, 'ssim': 0.8, 'params': 1e6, 'flops': 4e9, 'latency_ms': 6.0},
    ]
    md = markdown_table(rows)
    assert '| a | 2.00 | **3.00** | 30.00 / **0.9000** | **5.0** |' in md
    assert '| b | **1.00** | 4.00 | **31.00** / 0.8000 | 6.0 |' in md


def test_options_file_form(toy, tmp_path):
    root, hr, _, weights = toy
    network_g = {'type': 'SAN', 'upscale': 2, **TINY}
    net_opt = tmp_path / 'net.yml'
    net_opt.write_text(yaml.safe_dump({'network_g': network_g, 'path': {'pretrain_network_g': str(weights)}}))
    opt = tmp_path / 'bench.yml'
    opt.write_text(yaml.safe_dump({
        'models': {'bicubic': 'bicubic', 'from_yml': str(net_opt), 'inline': {**network_g, 'weights': str(weights)}},
        'datasets': {'toy': {'hr': str(hr)}},
        'scales': [2, 3],
        'out': str(root / 'opt_out'),
        'flops_input': [8, 8],
    }))  # fmt: skip
    assert benchmark.main(['quality', '--no-progress', '-opt', str(opt)]) == 0
    rows = json.loads((root / 'opt_out' / 'results.json').read_text())
    # The networks are x2 only: at x3 only bicubic runs.
    assert [(r['model'], r['scale']) for r in rows] == [('bicubic', 2), ('bicubic', 3), ('from_yml', 2), ('inline', 2)]
    assert rows[2]['psnr'] == rows[3]['psnr']


def test_untrained_inline_network_takes_each_scale(toy):
    root, hr, _, _ = toy
    code = run_cli('--model', 'n=type:SAN,num_feat:16,num_group:1,num_block:1,squeeze_factor:4', '--dataset',
                   f'toy={hr}', '--scale', 2, '--scale', 4, '--out', root / 'o', '--flops-input', 8, 8)  # fmt: skip
    assert code == 0
    assert [r['scale'] for r in json.loads((root / 'o' / 'results.json').read_text())] == [2, 4]


def test_dataset_pairs_modcrop_and_bicubic_lr(toy):
    _, hr, lr, _ = toy
    from_folder = load_dataset(parse_dataset_spec(f'toy={hr}:{lr}'), 2)
    generated = load_dataset(parse_dataset_spec(f'toy={hr}'), 2)
    assert [p.name for p in from_folder] == ['im0', 'im1', 'im2']
    assert from_folder[1].hr.shape == (32, 24, 3)  # 33 rows cropped to a multiple of 2
    for a, b in zip(from_folder, generated):
        np.testing.assert_array_equal(a.lr, b.lr)
        assert a.lr.shape[:2] == (a.hr.shape[0] // 2, a.hr.shape[1] // 2)


def test_scale_placeholder_in_folders(tmp_path):
    (tmp_path / 'x3').mkdir()
    cv2.imwrite(str(tmp_path / 'x3' / 'a.png'), np.zeros((9, 9, 3), np.uint8))
    pairs = load_dataset(parse_dataset_spec(f'd={tmp_path}/x{{scale}}'), 3)
    assert pairs[0].lr.shape == (3, 3, 3)


@pytest.mark.parametrize(
    'args, message',
    [
        (['--model', 'bicubic', '--dataset', 'toy=/nonexistent/hr'], '--dataset toy: HR folder /nonexistent/hr'),
        (['--model', 'bicubic', '--dataset', 'toy={hr}:/nonexistent/lr'], 'LR folder /nonexistent/lr does not exist'),
        (['--model', 'san=/nonexistent.pth', '--dataset', 'toy={hr}'], '--model san: /nonexistent.pth does not exist'),
        (['--model', 'whatever', '--dataset', 'toy={hr}'], "--model 'whatever': expected bicubic, NAME=WEIGHTS"),
        (['--model', 'n=type:NoSuchNet', '--dataset', 'toy={hr}'], "--model n type: unknown network type 'NoSuchNet'"),
        (['--model', 'bicubic', '--dataset', 'toy'], "--dataset 'toy': expected NAME=HR_DIR"),
        (['--model', 'bicubic', '--dataset', 'toy={hr}', '--crops', 'nope'], "--crops: images ['nope']"),
        (['--model', 'bicubic', '--dataset', 'toy={hr}:{hr}'], 'is 40x32 but'),
        (['--model', 'bicubic', '--dataset', 'toy={hr}:{bad_lr}'], 'LR/HR name mismatch'),
        (['--model', 'bicubic', '--dataset', 'toy={hr}:{corrupt}'], 'im0.png is not a readable image'),
        (['--model', 'san={weights}', '--dataset', 'toy={hr}', '--scale', '3'], 'no model supports the scales [3]'),
        (['--dataset', 'toy={hr}'], 'no models: give --model'),
    ],
)
def test_bad_inputs_name_the_flag_or_path(toy, capsys, args, message):
    root, hr, lr, weights = toy
    bad_lr, corrupt = root / 'bad_lr', root / 'corrupt'
    bad_lr.mkdir()
    corrupt.mkdir()
    for i in range(3):
        cv2.imwrite(str(bad_lr / f'other{i}.png'), np.zeros((16, 20, 3), np.uint8))
        (corrupt / f'im{i}.png').write_bytes(b'not a png')
    fill = {'hr': hr, 'lr': lr, 'weights': weights, 'bad_lr': bad_lr, 'corrupt': corrupt}
    args = [a.format(**fill) for a in args]
    scale = [] if '--scale' in args else ['--scale', '2']
    assert run_cli(*args, *scale, '--out', root / 'never') == 1
    assert message in capsys.readouterr().err
    assert not (root / 'never').exists()


def test_options_file_errors_name_the_key(tmp_path):
    opt = tmp_path / 'bad.yml'
    opt.write_text('models: [bicubic]\nscale: [4]\n')
    with pytest.raises(ValueError, match="unknown key 'scale'"):
        read_options_file(opt)
    with pytest.raises(ValueError, match='datasets.toy: unknown key .hr_dir.'):
        opt.write_text('datasets: {toy: {hr_dir: x}}\n')
        benchmark.quality_config(read_options_file(opt), benchmark_flags())
    with pytest.raises(ValueError, match=r'models: n.type: missing \(the arch name'):
        opt.write_text(yaml.safe_dump({'models': {'n': {'num_feat': 4}}}))
        benchmark.quality_config(read_options_file(opt), benchmark_flags())


def benchmark_flags():
    return argparse.Namespace(model=None, dataset=None, scale=None, crops=None)


def test_model_spec_forms():
    assert parse_model_spec('bicubic').is_bicubic
    spec = parse_model_spec('n=type:SAN,num_feat:16,upscale:2,rgb_mean:[0.5, 0.5,0.5]')
    assert spec.network_opt == {'type': 'SAN', 'num_feat': 16, 'upscale': 2, 'rgb_mean': [0.5, 0.5, 0.5]}
    assert spec.supports(2) and not spec.supports(4)


def test_test_time_options_reach_test_forward(toy, monkeypatch):
    root, hr, _, weights = toy
    seen = []

    def spy(net, lq, scale, **kwargs):
        seen.append((scale, kwargs))
        return torch.nn.functional.interpolate(lq, scale_factor=scale)

    monkeypatch.setattr(quality, 'test_forward', spy)
    args = ['--tile', 8, '--tile-pad', 2, '--self-ensemble', '--flops-input', 8, 8, '--warmup', 0]
    assert run_cli('--model', f'san={weights}', '--dataset', f'toy={hr}', '--scale', 2, '--out', root / 'o', *args) == 0
    assert seen == [(2, {'chop': False, 'tile': 8, 'tile_pad': 2, 'self_ensemble': True})] * 3


def test_chop_and_tile_together_is_an_error(toy, capsys):
    root, hr, _, weights = toy
    args = ['--model', f'san={weights}', '--dataset', f'toy={hr}', '--scale', 2, '--chop', '--tile', 8]
    assert run_cli(*args, '--flops-input', 8, 8, '--out', root / 'o') == 1
    assert 'chop and tile cannot be combined' in capsys.readouterr().err


def test_threads_option_leaves_the_callers_thread_count_alone(toy):
    # The study runner evaluates networks in its own process: a benchmark must not change what runs after it.
    root, hr, _, _ = toy
    before = torch.get_num_threads()
    model = 'n=type:SAN,num_feat:16,num_group:1,num_block:1,squeeze_factor:4'
    with mock.patch.object(torch, 'set_num_threads', wraps=torch.set_num_threads) as set_threads:
        code = run_cli('--model', model, '--dataset', f'toy={hr}', '--scale', 2, '--out', root / 'o', '--threads',
                       before + 1, '--flops-input', 8, 8)  # fmt: skip
        seen = [call.args[0] for call in set_threads.call_args_list]
    assert code == 0
    assert seen == [before + 1, before] and torch.get_num_threads() == before
