"""tools/prepare_data.py: MATLAB-bicubic LR, sub-image LMDBs that BasicSR reads, benchmark sets, safe re-runs."""

import logging
import subprocess
import sys

import cv2
import lmdb
import numpy as np
import pytest
from basicsr.data import build_dataset
from basicsr.data.transforms import mod_crop
from basicsr.utils.matlab_functions import imresize
from conftest import REPO_ROOT, load_tool, require_shared

import san_plugin  # noqa: F401  (registers CheckedPairedImageDataset)
from san_plugin.data.prepare import (
    PrepareDataError,
    exclusive_output,
    lmdb_is_complete,
    prepare_benchmark,
    prepare_train,
)
from san_plugin.utils.atomic_save import is_temporary

CLI = REPO_ROOT / 'tools' / 'prepare_data.py'
SMALL = {'scales': [2, 4], 'crop_size': 48, 'step': 24}  # 96x80 images: 2 x 3 sub-images each


def write_images(folder, sizes, seed=0):
    """Write smooth colour PNGs ``0000.png``, ``0001.png``, ... of the given (width, height) sizes."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index, size in enumerate(sizes):
        coarse = rng.integers(0, 256, size=(6, 7, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f'{index:04d}.png'), cv2.resize(coarse, size, interpolation=cv2.INTER_CUBIC))
    return folder


def matlab_bicubic(hr, scale):
    """The reference: BasicSR's MATLAB imresize of the modcropped image, as floats saturated to [0, 255]."""
    return np.clip(imresize(mod_crop(hr, scale).astype(np.float32) / 255.0, 1 / scale) * 255.0, 0, 255)


def read_lmdb(path, key):
    env = lmdb.open(str(path), readonly=True, lock=False)
    with env.begin() as txn:
        content = txn.get(key.encode('ascii'))
    env.close()
    return cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_COLOR)


@pytest.fixture
def hr_folder(tmp_path):
    return write_images(tmp_path / 'HR', [(96, 80)] * 6)


@pytest.mark.slow  # two pools of two spawned workers, each importing torch and BasicSR
def test_train_writes_basicsr_layout_and_keys(hr_folder, tmp_path):
    paths = prepare_train(hr_folder, name='Tiny', output_root=tmp_path / 'datasets', workers=2, **SMALL)
    root = tmp_path / 'datasets' / 'Tiny'
    assert paths == {
        1: root / 'Tiny_train_HR_sub.lmdb',
        2: root / 'Tiny_train_LR_bicubic_X2_sub.lmdb',
        4: root / 'Tiny_train_LR_bicubic_X4_sub.lmdb',
    }
    for scale, path in paths.items():
        assert sorted(p.name for p in path.iterdir()) == ['data.mdb', 'lock.mdb', 'meta_info.txt']
        lines = (path / 'meta_info.txt').read_text().splitlines()
        size = 48 // scale
        assert len(lines) == 36
        assert lines[0] == f'0000_y0000_x0000.png ({size},{size},3) 1'
        assert lmdb_is_complete(path, lines)
        if scale > 1:
            assert (root / 'Tiny_train_LR_bicubic' / f'X{scale}' / '0000.png').is_file()
    hr_keys = (paths[1] / 'meta_info.txt').read_text().splitlines()
    assert [line.split(' ')[0] for line in hr_keys[:6]] == [
        f'0000_y{top:04d}_x{left:04d}.png' for top in (0, 24) for left in (0, 24, 48)
    ]
    assert not [path for path in tmp_path.rglob('*') if is_temporary(path.name)]


@pytest.mark.parametrize('dataset_type', ['PairedImageDataset', 'CheckedPairedImageDataset'])
@pytest.mark.parametrize('scale', [2, 4])
def test_lmdbs_load_through_basicsr(hr_folder, tmp_path, dataset_type, scale):
    paths = prepare_train(hr_folder, output_root=tmp_path, **SMALL)
    opt = {
        'name': 'tiny',
        'type': dataset_type,
        'dataroot_gt': str(paths[1]),
        'dataroot_lq': str(paths[scale]),
        'io_backend': {'type': 'lmdb'},
        'gt_size': 24,
        'use_hflip': True,
        'use_rot': True,
        'scale': scale,
        'phase': 'train',
    }
    dataset = build_dataset(opt)
    assert len(dataset) == 36
    sample = dataset[5]
    assert sample['gt'].shape == (3, 24, 24)
    assert sample['lq'].shape == (3, 24 // scale, 24 // scale)
    for image in (sample['gt'], sample['lq']):
        assert 0 <= image.min() and image.max() <= 1 and image.std() > 0.01
    del dataset  # closes its LMDB environments: one process may open an environment only once
    val = build_dataset({**opt, 'phase': 'val'})[0]
    assert val['gt'].shape == (3, 48, 48) and val['lq'].shape == (3, 48 // scale, 48 // scale)


@pytest.mark.parametrize('scale', [2, 4])
def test_lr_sub_images_are_crops_of_matlab_bicubic(hr_folder, tmp_path, scale):
    paths = prepare_train(hr_folder, output_root=tmp_path, **SMALL)
    hr = cv2.imread(str(hr_folder / '0003.png'))
    expected = matlab_bicubic(hr, scale)
    whole = cv2.imread(str(tmp_path / 'DIV2K' / 'DIV2K_train_LR_bicubic' / f'X{scale}' / '0003.png'))
    assert whole.shape == expected.shape
    assert np.abs(whole - expected).max() <= 0.5 + 1e-3  # uint8 rounding of the same values
    top, left, low = 24 // scale, 48 // scale, 48 // scale
    sub = read_lmdb(paths[scale], '0003_y0024_x0048')
    assert np.array_equal(sub, whole[top : top + low, left : left + low])
    assert np.array_equal(read_lmdb(paths[1], '0003_y0024_x0048'), hr[24:72, 48:96])


def test_rerun_skips_complete_lmdbs_and_adds_a_new_scale(hr_folder, tmp_path, caplog):
    paths = prepare_train(hr_folder, output_root=tmp_path, **SMALL)
    stamps = {scale: (path / 'data.mdb').stat().st_mtime_ns for scale, path in paths.items()}
    caplog.set_level(logging.INFO, logger='san_plugin.data.prepare')
    paths = prepare_train(hr_folder, output_root=tmp_path, **{**SMALL, 'scales': [2, 4, 8]})
    for scale in (1, 2, 4):
        assert (paths[scale] / 'data.mdb').stat().st_mtime_ns == stamps[scale]
        assert f'Skipped {paths[scale]}: already complete' in caplog.text
    assert f'Wrote {paths[8]}' in caplog.text
    assert read_lmdb(paths[8], '0000_y0000_x0000').shape == (6, 6, 3)


def test_stale_partial_outputs_are_replaced(hr_folder, tmp_path):
    root = tmp_path / 'DIV2K'
    stale_db = root / '.DIV2K_train_HR_sub.lmdb.4242-0123456789ab.tmp'  # left by a killed run
    stale_db.mkdir(parents=True)
    (stale_db / 'data.mdb').write_bytes(b'killed mid-write')
    broken_db = root / 'DIV2K_train_LR_bicubic_X2_sub.lmdb'  # a final name without a complete database
    broken_db.mkdir()
    (broken_db / 'data.mdb').write_bytes(b'junk')
    sub = root / 'DIV2K_train_LR_bicubic' / 'X4_sub'
    sub.mkdir(parents=True)
    (sub / '.0000_y0000_x0000.png.4242-0123456789ab.tmp').write_bytes(b'half a png')
    (sub / '0000_y0024_x0024.png').write_bytes(b'\x89PNG\r\n\x1a\n truncated')

    paths = prepare_train(hr_folder, output_root=tmp_path, **SMALL)
    assert not [path for path in tmp_path.rglob('*') if is_temporary(path.name)]
    for path in paths.values():
        assert lmdb_is_complete(path, (path / 'meta_info.txt').read_text().splitlines())
    assert read_lmdb(paths[2], '0005_y0024_x0048').shape == (24, 24, 3)
    assert cv2.imread(str(sub / '0000_y0024_x0024.png')).shape == (12, 12, 3)


def test_truncated_input_stops_before_writing_anything(hr_folder, tmp_path, capsys):
    bad = hr_folder / '0002.png'
    bad.write_bytes(bad.read_bytes()[:300])
    out = tmp_path / 'datasets'
    with pytest.raises(SystemExit) as exit_info:
        load_tool('prepare_data').main(
            ['train', '--input', str(hr_folder), '--output-root', str(out), '--workers', '1']
        )
    assert exit_info.value.code == 1
    assert str(bad) in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_cli_subprocess_truncated_input_exits_non_zero(hr_folder, tmp_path):
    bad = hr_folder / '0004.png'
    bad.write_bytes(bad.read_bytes()[:-40])
    out = tmp_path / 'datasets'
    args = ['train', '--input', str(hr_folder), '--output-root', str(out), '--scales', '2', '--crop-size', '48']
    result = subprocess.run([sys.executable, str(CLI), *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert str(bad) in result.stderr and 'not a readable image' in result.stderr
    assert not list(tmp_path.rglob('*.lmdb'))


@pytest.mark.parametrize(
    ('args', 'expected'),
    [
        (['--input', '{tmp}/missing'], ['missing', '--input', 'does not exist']),
        (['--input', '{tmp}/empty'], ['empty', 'no images']),
        (['--input', '{tmp}/HR', '--scales', '2', '5'], ['5', '--scales', '2, 3, 4, 8']),
        (['--input', '{tmp}/HR', '--crop-size', '50'], ['--crop-size 50', 'multiple of 24']),
        (['--input', '{tmp}/HR', '--step', '30'], ['--step 30', 'multiple of 24']),
        (['--input', '{tmp}/HR', '--crop-size', '120'], ['at least 120x120', '--crop-size']),
    ],
)
def test_cli_errors_name_the_flag_or_path(hr_folder, tmp_path, capsys, args, expected):
    (tmp_path / 'empty').mkdir()
    args = [arg.format(tmp=tmp_path) for arg in args]
    with pytest.raises(SystemExit) as exit_info:
        load_tool('prepare_data').main(['train', *args, '--output-root', str(tmp_path / 'out'), '--workers', '1'])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    for text in expected:
        assert text in err
    assert not (tmp_path / 'out').exists()


def test_file_names_that_cannot_be_lmdb_keys_are_refused(tmp_path, capsys):
    folder = write_images(tmp_path / 'HR', [(48, 48)])
    (folder / '0000.png').rename(folder / 'my photo.png')
    with pytest.raises(SystemExit):
        load_tool('prepare_data').main(
            ['train', '--input', str(folder), '--output-root', str(tmp_path / 'out'), '--crop-size', '48']
        )
    assert 'my photo.png' in capsys.readouterr().err


def test_benchmark_crops_hr_and_matches_names(tmp_path, caplog):
    sizes = [(97, 83), (64, 100), (51, 75)]
    folder = write_images(tmp_path / 'originals', sizes)
    root = prepare_benchmark(folder, name='Tiny', output_root=tmp_path, scales=[2, 3, 4])
    assert root == tmp_path / 'Tiny'
    for scale in (2, 3, 4):
        hr_names = sorted(p.name for p in (root / 'HR' / f'x{scale}').iterdir())
        assert hr_names == sorted(p.name for p in (root / 'LR_bicubic' / f'x{scale}').iterdir())
        assert hr_names == ['0000.png', '0001.png', '0002.png']
        for name, (width, height) in zip(hr_names, sizes):
            original = cv2.imread(str(folder / name))
            hr = cv2.imread(str(root / 'HR' / f'x{scale}' / name))
            lr = cv2.imread(str(root / 'LR_bicubic' / f'x{scale}' / name))
            assert hr.shape == (height - height % scale, width - width % scale, 3)
            assert np.array_equal(hr, original[: hr.shape[0], : hr.shape[1]])
            assert lr.shape == (hr.shape[0] // scale, hr.shape[1] // scale, 3)
            assert np.abs(lr - matlab_bicubic(original, scale)).max() <= 0.5 + 1e-3

    stamp = (root / 'LR_bicubic' / 'x3' / '0001.png').stat().st_mtime_ns
    caplog.set_level(logging.INFO, logger='san_plugin.data.prepare')
    prepare_benchmark(folder, name='Tiny', output_root=tmp_path, scales=[2, 3, 4])
    assert 'wrote 0 images, skipped 18' in caplog.text
    assert (root / 'LR_bicubic' / 'x3' / '0001.png').stat().st_mtime_ns == stamp

    dataset = build_dataset(
        {
            'name': 'Tiny',
            'type': 'CheckedPairedImageDataset',
            'dataroot_gt': str(root / 'HR' / 'x3'),
            'dataroot_lq': str(root / 'LR_bicubic' / 'x3'),
            'io_backend': {'type': 'disk'},
            'scale': 3,
            'phase': 'val',
        }
    )
    sample = next(sample for sample in dataset if sample['gt_path'].endswith('0002.png'))  # BasicSR keeps scandir order
    assert sample['gt'].shape == (3, 75, 51) and sample['lq'].shape == (3, 25, 17)


def test_benchmark_lr_is_close_to_the_authors_matlab_lr(tmp_path):
    """Set5 x4 made from the authors' HR is within MATLAB's own rounding noise of the authors' LR (PSNR > 50 dB)."""
    shared = require_shared('datasets', 'Set5')
    root = prepare_benchmark(shared / 'HR' / 'x4', name='Set5', output_root=tmp_path, scales=[4])
    for name in ('baby.png', 'woman.png'):
        ours = cv2.imread(str(root / 'LR_bicubic' / 'x4' / name)).astype(np.float64)
        theirs = cv2.imread(str(shared / 'LR_bicubic' / 'x4' / name)).astype(np.float64)
        assert ours.shape == theirs.shape
        assert 10 * np.log10(255**2 / np.mean((ours - theirs) ** 2)) > 50
        assert np.array_equal(cv2.imread(str(root / 'HR' / 'x4' / name)), cv2.imread(str(shared / 'HR' / 'x4' / name)))


def test_a_second_run_on_a_held_output_stops_and_leaves_it_alone(hr_folder, tmp_path):
    root = tmp_path / 'datasets' / 'DIV2K'
    with exclusive_output(root):
        with pytest.raises(PrepareDataError, match=f'another prepare_data run is writing {root}'):
            prepare_train(hr_folder, output_root=tmp_path / 'datasets', **SMALL)
        with pytest.raises(PrepareDataError, match='another prepare_data run is writing'):
            prepare_benchmark(hr_folder, 'DIV2K', output_root=tmp_path / 'datasets', scales=[2])
        assert sorted(path.name for path in root.iterdir()) == ['.prepare_data.lock']


@pytest.mark.slow
def test_two_concurrent_runs_never_corrupt_each_other(tmp_path):
    hr = write_images(tmp_path / 'HR', [(240, 192)] * 12)
    command = [sys.executable, str(CLI), 'train', '--input', str(hr), '--output-root', str(tmp_path / 'out')]
    command += ['--scales', '2', '4', '--crop-size', '48', '--step', '24']
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(run.wait(timeout=300), run.stderr.read()) for run in runs]
    for code, stderr in results:
        assert code == 0 or (code == 1 and 'another prepare_data run is writing' in stderr), stderr
    assert any(code == 0 for code, _ in results)
    if all(code == 0 for code, _ in results):  # the second started after the first had finished: it skipped
        assert any('Skipped' in stderr for _, stderr in results)
    root = tmp_path / 'out' / 'DIV2K'
    for name in ('DIV2K_train_HR_sub.lmdb', 'DIV2K_train_LR_bicubic_X2_sub.lmdb', 'DIV2K_train_LR_bicubic_X4_sub.lmdb'):
        lmdb_path = root / name
        assert lmdb_is_complete(lmdb_path, (lmdb_path / 'meta_info.txt').read_text().splitlines())
    assert read_lmdb(root / 'DIV2K_train_LR_bicubic_X2_sub.lmdb', '0011_y0144_x0192').shape == (24, 24, 3)
    assert not [path for path in tmp_path.rglob('*') if is_temporary(path.name)]
