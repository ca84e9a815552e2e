"""User errors stop a run with a non-zero exit and a message naming the option key or the file at fault."""

import re

import cv2
import numpy as np
import pytest
from helpers.workflow import describe, make_pairs, run_python, train_options, write_options

from san_plugin.compat.paths import check_path_options


@pytest.mark.slow
def test_an_arch_that_is_never_registered_fails_in_basicsr(tmp_path):
    opt = train_options('tiny_unregistered', *make_pairs(tmp_path / 'pairs'), validate=False)
    opt['network_g'] = {'type': 'NoSuchNet'}
    write_options(tmp_path / 'train.yml', opt)
    proc = run_python(['-m', 'basicsr.train', '-opt', 'train.yml'], cwd=tmp_path)
    assert proc.returncode != 0, describe(proc)
    assert "No object named 'NoSuchNet' found in 'arch' registry!" in proc.stderr.strip().splitlines()[-1]


def unknown_network_key(opt, gt_dir, lq_dir):
    opt['network_g']['squeeze'] = 4
    return ["train.yml: network_g.squeeze: SAN has no option 'squeeze'"]


def missing_dataset(opt, gt_dir, lq_dir):
    opt['datasets']['train']['dataroot_gt'] = str(gt_dir.parent / 'no_such_folder')
    return ['dataroot_gt', str(gt_dir.parent / 'no_such_folder'), 'does not exist']


def corrupt_image(opt, gt_dir, lq_dir):
    (gt_dir / '0005.png').write_bytes(b'\x89PNG\r\n\x1a\n' + bytes(100))
    return [str(gt_dir / '0005.png'), 'is not a readable image']


def size_mismatch(opt, gt_dir, lq_dir):
    cv2.imwrite(str(lq_dir / '0003.png'), np.zeros((15, 16, 3), np.uint8))
    return [str(lq_dir / '0003.png'), 'is 16x15', 'must be 32x30']


@pytest.mark.slow
@pytest.mark.parametrize(
    'break_run', [unknown_network_key, missing_dataset, corrupt_image, size_mismatch], ids=lambda f: f.__name__
)
def test_training_stops_with_a_clear_message(break_run, tmp_path):
    gt_dir, lq_dir = make_pairs(tmp_path / 'pairs')
    opt = train_options('tiny_error', gt_dir, lq_dir, validate=False)
    opt['datasets']['train']['type'] = 'CheckedPairedImageDataset'
    expected = break_run(opt, gt_dir, lq_dir)
    write_options(tmp_path / 'train.yml', opt)
    proc = run_python(['-m', 'basicsr.train', '-opt', 'train.yml'], cwd=tmp_path)
    assert proc.returncode != 0, describe(proc)
    last_line = proc.stderr.strip().splitlines()[-1]
    for part in expected:
        assert part in last_line, describe(proc)


@pytest.mark.parametrize(
    'path_opt, message',
    [
        (
            {'allow_scale_change_g': True},
            'path.allow_scale_change_g: BasicSR creates a folder for every path value, '
            'got True; this setting is train.allow_scale_change_g',
        ),
        ({'my_folder': None}, 'path.my_folder: BasicSR creates a folder for every path value, got None'),
    ],
)
def test_path_values_basicsr_cannot_make_folders_of_are_named(path_opt, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        check_path_options({'path': {'pretrain_network_g': None, 'strict_load_g': True, **path_opt}})


def test_path_values_basicsr_skips_or_makes_folders_of_pass():
    check_path_options(
        {
            'path': {
                'pretrain_network_g': None,
                'strict_load_g': True,
                'resume_state': None,
                'param_key_g': 'params',
                'visualization': 'results/x',
            }
        }
    )


@pytest.mark.slow
def test_a_path_value_basicsr_cannot_make_a_folder_of_stops_before_anything_is_written(tmp_path):
    opt = train_options('tiny_bad_path', *make_pairs(tmp_path / 'pairs'), validate=False)
    opt['path']['allow_scale_change_g'] = True
    write_options(tmp_path / 'train.yml', opt)
    proc = run_python(['-m', 'basicsr.train', '-opt', 'train.yml'], cwd=tmp_path)
    assert proc.returncode != 0, describe(proc)
    assert 'path.allow_scale_change_g: ' in proc.stderr.strip().splitlines()[-1], describe(proc)
    assert not (tmp_path / 'experiments').exists()
