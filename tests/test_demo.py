"""The `make demo` job end to end, with a few training iterations instead of the real budget."""

import json
import subprocess
import sys

import pytest
import yaml
from conftest import REPO_ROOT

from san_plugin.demo import scaled_options

ROWS_KEYS = {'model', 'dataset', 'scale', 'psnr', 'ssim', 'params', 'flops', 'latency_ms', 'peak_mem_mb', 'per_image'}


@pytest.mark.parametrize('arch', ['SAN', 'RCAN'])
def test_demo_options_follow_the_scale(arch, tmp_path):
    lmdbs = {1: tmp_path / 'hr.lmdb', 4: tmp_path / 'x4.lmdb'}
    opt = scaled_options(REPO_ROOT / 'options' / 'demo' / f'train_{arch}_demo.yml', 4, lmdbs, iters=7)
    assert opt['scale'] == opt['network_g']['upscale'] == 4
    assert opt['name'] == f'demo_{arch}_x4'
    assert opt['datasets']['train']['gt_size'] == 4 * 32
    assert opt['datasets']['train']['dataroot_lq'] == str(lmdbs[4])
    assert opt['train']['total_iter'] == 7 and opt['train']['scheduler']['periods'] == [7]


def test_demo_templates_differ_only_in_the_network():
    san, rcan = (
        yaml.safe_load((REPO_ROOT / 'options' / 'demo' / f'train_{a}_demo.yml').read_text()) for a in 'SAN RCAN'.split()
    )
    assert {k: v for k, v in san.items() if k not in ('name', 'network_g')} == {
        k: v for k, v in rcan.items() if k not in ('name', 'network_g')
    }


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    process = subprocess.run(
        [sys.executable, str(REPO_ROOT / 'tools' / 'demo.py'), '--iters', '3', '--out', 'report'],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    rows = json.loads((tmp_path / 'report' / 'results.json').read_text())
    assert [row['model'] for row in rows] == ['bicubic', 'SAN', 'RCAN']
    assert all(ROWS_KEYS <= set(row) for row in rows)
    assert all(len(row['per_image']) == 3 for row in rows)
    for name in ('results.csv', 'results.md'):
        assert (tmp_path / 'report' / name).is_file()
    assert list((tmp_path / 'report').glob('*.png')), 'no plot or crop grid written'
    assert 'SAN gains' in process.stdout and 'report: report/results.md' in process.stdout
    assert (tmp_path / 'experiments' / 'demo_SAN_x2' / 'models' / 'net_g_latest.pth').is_file()
