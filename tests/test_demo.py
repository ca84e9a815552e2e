"""The `make demo` study: built in code (nothing read from the repository), equal-size networks, and end to end with
a few training iterations instead of the real budget."""

import json
import subprocess
import sys

import pytest
from basicsr.archs import build_network
from conftest import REPO_ROOT

import san_plugin  # noqa: F401  (registers the archs)
from san_plugin.benchmark.flops import count_params
from san_plugin.study.demo import HELD_OUT_IMAGES, HELD_OUT_NAME, TRAIN_IMAGES, demo_study


def test_demo_study_is_built_in_code_with_the_photographs(tmp_path):
    study = demo_study(scale=4, out=tmp_path / 'report', data_root=tmp_path / 'data', iters=7)
    assert list(study.networks) == ['SAN', 'RCAN', 'DRLN'] and study.scales == [4] and study.seeds == [0]
    assert sorted(p.stem for p in (tmp_path / 'data' / 'demo_photos' / 'train').iterdir()) == sorted(TRAIN_IMAGES)
    held_out = tmp_path / 'data' / 'demo_photos' / 'held_out'
    assert sorted(p.stem for p in held_out.iterdir()) == sorted(HELD_OUT_IMAGES)
    assert [t.images for t in study.test_sets] == [str(held_out)] and study.val_dataset == HELD_OUT_NAME
    assert study.train['total_iter'] == study.train['val_freq'] == study.train['save_checkpoint_freq'] == 7
    assert study.train['gt_size'] % 4 == 0 and study.run_name('SAN', 4, 0) == 'demo_x4_SAN_x4_s0'


def test_demo_networks_have_equal_size_within_ten_percent(tmp_path):
    study = demo_study(data_root=tmp_path)
    params = {name: count_params(build_network({**opt, 'upscale': 2})) for name, opt in study.networks.items()}
    assert all(abs(count / params['SAN'] - 1) <= 0.1 for count in params.values()), params


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    process = subprocess.run(
        [sys.executable, str(REPO_ROOT / 'tools' / 'demo.py'), '--iters', '2', '--out', 'report', '--threads', '1'],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    report = json.loads((tmp_path / 'report' / 'report.json').read_text())
    assert [(r['network'], r['dataset']) for r in report['summary']] == [
        ('SAN', HELD_OUT_NAME),
        ('RCAN', HELD_OUT_NAME),
        ('DRLN', HELD_OUT_NAME),
    ]
    assert all(len(row['per_image']) == 3 for run in report['runs'] for row in run['rows'])
    assert 'SAN x2 seed 0: iter 2/2, l_pix' in process.stdout
    assert 'SAN gains' in process.stdout and 'report: report/report.md' in process.stdout
    for name in ('report.csv', 'report.md', 'convergence_iter_x2.png', 'convergence_time_x2.png'):
        assert (tmp_path / 'report' / name).is_file(), name
    assert (tmp_path / 'experiments' / 'demo_x2_SAN_x2_s0' / 'models' / 'net_g_latest.pth').is_file()
