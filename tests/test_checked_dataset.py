"""CheckedPairedImageDataset: the samples of BasicSR's PairedImageDataset, and errors that name the file at fault."""

import random
import re

import cv2
import numpy as np
import pytest
import torch
from basicsr.data import build_dataset
from helpers.bad_images import huge_header_png
from helpers.workflow import make_pairs

import san_plugin  # noqa: F401  (registers CheckedPairedImageDataset)
from san_plugin.data.prepare import write_lmdb


def options(gt_dir, lq_dir, phase='train', **overrides):
    opt = {
        'name': 'pairs',
        'type': 'CheckedPairedImageDataset',
        'dataroot_gt': str(gt_dir),
        'dataroot_lq': str(lq_dir),
        'io_backend': {'type': 'disk'},
        'gt_size': 16,
        'use_hflip': True,
        'use_rot': True,
        'scale': 2,
        'phase': phase,
    }
    return {**opt, **overrides}


def pack_lmdb(folder, lmdb_path):
    """Pack a folder of PNGs into an LMDB as tools/prepare_data.py does."""
    files = sorted(folder.glob('*.png'))
    keys = [file.stem for file in files]
    shapes = [cv2.imread(str(file)).shape for file in files]
    meta = [f'{key}.png ({h},{w},{c}) 1' for key, (h, w, c) in zip(keys, shapes)]
    write_lmdb(lmdb_path, files, keys, meta)
    return lmdb_path


@pytest.fixture
def pairs(tmp_path):
    return make_pairs(tmp_path, num=3, gt_size=32, scale=2)


@pytest.mark.parametrize('phase', ['train', 'val'])
@pytest.mark.parametrize('backend', ['disk', 'lmdb'])
def test_same_samples_as_paired_image_dataset(pairs, tmp_path, phase, backend):
    gt_dir, lq_dir = pairs
    extra = {}
    if backend == 'lmdb':
        gt_dir, lq_dir = pack_lmdb(gt_dir, tmp_path / 'gt.lmdb'), pack_lmdb(lq_dir, tmp_path / 'lq.lmdb')
        extra = {'io_backend': {'type': 'lmdb'}}
    samples = {}
    for dataset_type in ('PairedImageDataset', 'CheckedPairedImageDataset'):
        dataset = build_dataset(options(gt_dir, lq_dir, phase, type=dataset_type, **extra))
        random.seed(0)
        samples[dataset_type] = [dataset[index] for index in range(len(dataset))]
        del dataset  # an LMDB environment may be open only once per process
    for plain, checked in zip(samples['PairedImageDataset'], samples['CheckedPairedImageDataset']):
        assert plain['gt_path'] == checked['gt_path'] and plain['lq_path'] == checked['lq_path']
        assert torch.equal(plain['gt'], checked['gt']) and torch.equal(plain['lq'], checked['lq'])
    assert len(samples['PairedImageDataset']) == 3


@pytest.mark.parametrize('key', ['dataroot_gt', 'dataroot_lq'])
def test_missing_dataroot_names_key_dataset_and_path(pairs, tmp_path, key):
    missing = tmp_path / 'nowhere'
    with pytest.raises(FileNotFoundError) as error:
        build_dataset(options(*pairs, **{key: str(missing)}))
    assert key in str(error.value) and "'pairs'" in str(error.value) and str(missing) in str(error.value)


def test_lmdb_backend_on_a_plain_folder_is_refused(pairs):
    with pytest.raises(ValueError, match=r'dataroot_gt .* must be an LMDB folder ending with \.lmdb'):
        build_dataset(options(*pairs, io_backend={'type': 'lmdb'}))


def test_incomplete_lmdb_is_refused(pairs, tmp_path):
    gt_db, lq_db = pack_lmdb(pairs[0], tmp_path / 'gt.lmdb'), pack_lmdb(pairs[1], tmp_path / 'lq.lmdb')
    (lq_db / 'meta_info.txt').unlink()
    with pytest.raises(FileNotFoundError, match=r"dataroot_lq '.*lq\.lmdb' has no meta_info\.txt"):
        build_dataset(options(gt_db, lq_db, io_backend={'type': 'lmdb'}))


def test_empty_folders(tmp_path):
    (tmp_path / 'gt').mkdir()
    (tmp_path / 'lq').mkdir()
    with pytest.raises(ValueError, match=r"'pairs': no images found in dataroot_gt '.*gt'"):
        build_dataset(options(tmp_path / 'gt', tmp_path / 'lq'))


def test_extra_lq_file_is_named(pairs):
    gt_dir, lq_dir = pairs
    cv2.imwrite(str(lq_dir / 'zz_extra.png'), np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(
        ValueError, match=r"'zz_extra\.png' in dataroot_lq .* has no partner in dataroot_gt .*3 GT, 4 LQ"
    ):
        build_dataset(options(gt_dir, lq_dir))


def test_gt_without_lq_partner_is_named(pairs):
    gt_dir, lq_dir = pairs
    (lq_dir / '0001.png').rename(lq_dir / '0001x2.png')
    with pytest.raises(ValueError, match=r"'0000\.png' in dataroot_gt .* has no partner '0000x2\.png' in dataroot_lq"):
        build_dataset(options(gt_dir, lq_dir, filename_tmpl='{}x2'))
    with pytest.raises(ValueError, match=r"'0001\.png' in dataroot_gt .* has no partner '0001\.png'"):
        build_dataset(options(gt_dir, lq_dir))


def test_lmdb_key_sets_differ(pairs, tmp_path):
    gt_dir, lq_dir = pairs
    (lq_dir / '0002.png').unlink()
    gt_db, lq_db = pack_lmdb(gt_dir, tmp_path / 'gt.lmdb'), pack_lmdb(lq_dir, tmp_path / 'lq.lmdb')
    with pytest.raises(ValueError, match=r"'0002' in dataroot_gt .*gt\.lmdb' has no partner '0002' in dataroot_lq"):
        build_dataset(options(gt_db, lq_db, io_backend={'type': 'lmdb'}))


@pytest.mark.parametrize(
    'damage, message',
    [
        (lambda content: content[:60], 'is not a readable image (truncated, corrupt'),
        (lambda content: huge_header_png(), 'its header claims more pixels than OpenCV decodes'),
    ],
    ids=['truncated', 'huge header'],
)
@pytest.mark.parametrize('phase', ['train', 'val'])
def test_corrupt_image_is_named(pairs, phase, damage, message):
    gt_dir, lq_dir = pairs
    bad = gt_dir / '0001.png'
    bad.write_bytes(damage(bad.read_bytes()))
    dataset = build_dataset(options(gt_dir, lq_dir, phase))
    index = next(i for i, paths in enumerate(dataset.paths) if paths['gt_path'] == str(bad))
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        dataset[index]
    assert str(bad) in str(error.value) and 'dataroot_gt' in str(error.value)


def test_lmdb_key_missing_from_data_is_named(pairs, tmp_path):
    gt_db, lq_db = pack_lmdb(pairs[0], tmp_path / 'gt.lmdb'), pack_lmdb(pairs[1], tmp_path / 'lq.lmdb')
    meta = gt_db / 'meta_info.txt'
    meta.write_text(meta.read_text() + '0003.png (32,32,3) 1\n')
    (lq_db / 'meta_info.txt').write_text(meta.read_text())
    dataset = build_dataset(options(gt_db, lq_db, io_backend={'type': 'lmdb'}))
    with pytest.raises(ValueError, match=r"key '0003' is in the meta_info\.txt of dataroot_gt '.*gt\.lmdb'"):
        dataset[3]


def test_scale_mismatch_names_both_files_and_sizes(pairs):
    gt_dir, lq_dir = pairs
    cv2.imwrite(str(lq_dir / '0002.png'), np.zeros((16, 15, 3), np.uint8))
    dataset = build_dataset(options(gt_dir, lq_dir))
    index = next(i for i, paths in enumerate(dataset.paths) if paths['lq_path'].endswith('0002.png'))
    with pytest.raises(ValueError) as error:
        dataset[index]
    message = str(error.value)
    for text in (str(gt_dir / '0002.png'), str(lq_dir / '0002.png'), '32x32', '15x16', 'scale 2', '30x32'):
        assert text in message


def test_val_accepts_uncropped_gt_but_not_a_wrong_scale(pairs):
    gt_dir, lq_dir = pairs
    cv2.imwrite(str(gt_dir / '0000.png'), np.zeros((33, 33, 3), np.uint8))  # not modcropped: BasicSR crops it
    dataset = build_dataset(options(gt_dir, lq_dir, 'val'))
    assert all(sample['gt'].shape == (3, 32, 32) for sample in dataset)
    with pytest.raises(ValueError, match=r'is \d+x\d+ but LQ .* is 16x16; with scale 4 the GT must be 64x64'):
        build_dataset(options(gt_dir, lq_dir, 'val', scale=4))[1]


def test_lq_smaller_than_patch_names_gt_size(pairs):
    with pytest.raises(ValueError, match=r'LQ .* is 16x16, smaller than gt_size 48 / scale 2 = 24'):
        build_dataset(options(*pairs, gt_size=48))[0]
