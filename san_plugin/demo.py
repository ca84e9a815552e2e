"""The ``make demo`` job: data from scikit-image's photographs, SAN and RCAN trained through BasicSR, a benchmark.

Every step is the tool a user would run: ``san_plugin.data.prepare`` (``tools/prepare_data.py``) for the LMDBs,
``python -m basicsr.train`` for training, ``tools/benchmark.py quality`` for the table.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import skimage.data
import yaml

from san_plugin.data.prepare import prepare_benchmark, prepare_train, write_png

# Photographs bundled with scikit-image (no download). Grey ones become three equal channels. The large but mostly
# flat ones (retina, hubble_deep_field) are left out: as sub-images they would make half of the training set.
TRAIN_IMAGES = (
    'astronaut',
    'coffee',
    'rocket',
    'immunohistochemistry',
    'moon',
    'grass',
    'gravel',
    'brick',
    'page',
    'text',
    'cell',
)
HELD_OUT_IMAGES = ('chelsea', 'camera', 'coins')
ARCHS = ('SAN', 'RCAN')
REPO_ROOT = Path(__file__).resolve().parents[1]


def write_photographs(names, folder):
    """Write scikit-image photographs as BGR PNGs (``<name>.png``); existing files are kept.

    Args:
        names (Sequence[str]): ``skimage.data`` function names.
        folder (Path): Output folder.

    Returns:
        Path: ``folder``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = folder / f'{name}.png'
        if path.is_file():
            continue
        img = np.asarray(getattr(skimage.data, name)())
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        write_png(path, cv2.cvtColor(img[..., :3], cv2.COLOR_RGB2BGR))
    return folder


def scaled_options(template, scale, lmdbs, iters=None):
    """Fill a demo options template with the values that depend on the scale (and the budget, if given).

    Args:
        template (Path): ``options/demo/train_<ARCH>_demo.yml``.
        scale (int): Upscaling factor.
        lmdbs (dict[int, Path]): ``prepare_train``'s result: key 1 the HR LMDB, key ``scale`` the LR one.
        iters (int | None): Training iterations instead of the template's (the cosine period follows).

    Returns:
        dict: The options.
    """
    opt = yaml.safe_load(template.read_text())
    if iters is not None:
        opt['train']['total_iter'] = iters
        opt['train']['scheduler']['periods'] = [iters]
    lr_patch = opt['datasets']['train']['gt_size'] // opt['scale']
    opt['name'] = f'{opt["name"]}_x{scale}'
    opt['scale'] = scale
    opt['network_g']['upscale'] = scale
    train = opt['datasets']['train']
    train['dataroot_gt'], train['dataroot_lq'] = str(lmdbs[1]), str(lmdbs[scale])
    train['gt_size'] = lr_patch * scale
    return opt


def run(command, log):
    """Run a command, its output into ``log`` too; raise naming the log if it fails."""
    print('$', ' '.join(str(c) for c in command), flush=True)
    with open(log, 'w') as handle:
        process = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, cwd=Path.cwd())
    if process.returncode != 0:
        raise RuntimeError(f'{command[1:4]} failed (exit code {process.returncode}); see {log}')


def train(arch, scale, lmdbs, out, iters=None):
    """Train one demo network through ``python -m basicsr.train``; return its final weights."""
    opt = scaled_options(REPO_ROOT / 'options' / 'demo' / f'train_{arch}_demo.yml', scale, lmdbs, iters)
    opt_path = out / 'options' / f'train_{arch}_demo_x{scale}.yml'
    opt_path.parent.mkdir(parents=True, exist_ok=True)
    opt_path.write_text(yaml.safe_dump(opt, sort_keys=False))
    run([sys.executable, '-m', 'basicsr.train', '-opt', opt_path], out / f'train_{arch}_x{scale}.log')
    return Path('experiments') / opt['name'] / 'models' / 'net_g_latest.pth'


def run_demo(scale=2, out='results/demo', data_root='datasets', iters=None):
    """The whole demo; returns the rows of ``results.json``.

    Args:
        scale (int): Upscaling factor. Default: 2.
        out (str): Report folder. Default: 'results/demo'.
        data_root (str): Where the demo data sets go. Default: 'datasets'.
        iters (int | None): Training iterations of each network; None keeps the options' budget.
    """
    out, data_root = Path(out), Path(data_root)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    photos = data_root / 'demo_photos'
    train_dir = write_photographs(TRAIN_IMAGES, photos / 'train')
    test_dir = write_photographs(HELD_OUT_IMAGES, photos / 'held_out')
    lmdbs = prepare_train(train_dir, name='demo', output_root=data_root, scales=(scale,), crop_size=144, step=96)
    prepare_benchmark(test_dir, name='demo_held_out', output_root=data_root, scales=(scale,))
    print(f'data ready in {time.time() - started:.0f} s', flush=True)
    weights = {}
    for arch in ARCHS:
        t0 = time.time()
        weights[arch] = train(arch, scale, lmdbs, out, iters)
        print(f'{arch} trained in {time.time() - t0:.0f} s', flush=True)
    held_out = data_root / 'demo_held_out'
    command = [sys.executable, REPO_ROOT / 'tools' / 'benchmark.py', 'quality', '--model', 'bicubic']
    command += [arg for arch in ARCHS for arg in ('--model', f'{arch}={weights[arch]}')]
    command += ['--dataset', f'demo={held_out}/HR/x{{scale}}:{held_out}/LR_bicubic/x{{scale}}']
    command += ['--scale', str(scale), '--out', out, '--no-progress']
    run(command, out / 'benchmark.log')
    print(f'demo finished in {time.time() - started:.0f} s', flush=True)
    return json.loads((out / 'results.json').read_text())
