"""The ``make demo`` study: SAN, RCAN and DRLN of equal size trained on photographs bundled with scikit-image and
tested on held-out ones, by the study runner (``san_plugin.study.runner``) like any ``tools/compare.py`` study.

The study is built here, in code, so the installed package needs nothing from the repository.
"""

from pathlib import Path

import cv2
import numpy as np
import skimage.data

from san_plugin.data.prepare import write_png
from san_plugin.study.options import parse_study

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
HELD_OUT_NAME = 'demo_held_out'
# The networks of options/compare/san_ablation_x2.yml: equal size (52-57 k parameters), small enough to take 1200
# steps each in a few CPU minutes; a bigger SAN trained for fewer steps in the same time ends lower.
NETWORKS = {
    'SAN': {'type': 'SAN', 'num_feat': 16, 'num_group': 2, 'num_block': 4, 'squeeze_factor': 4},
    'RCAN': {
        'type': 'RCAN',
        'num_in_ch': 3,
        'num_out_ch': 3,
        'num_feat': 16,
        'num_group': 2,
        'num_block': 4,
        'squeeze_factor': 4,
    },
    # The shipped studies' equal-size DRLN: one 11-feature block, the mean in 0-255 units, no ReLU after the upsampler.
    'DRLN': {
        'type': 'DRLN',
        'num_feat': 11,
        'squeeze_factor': 4,
        'cascade_sizes': [1],
        'rgb_mean': [114.44, 111.46, 103.02],
        'upsample_relu': False,
    },
}
TRAIN = {
    'crop_size': 144,
    'step': 96,
    'gt_size': 48,
    'batch_size': 16,
    'total_iter': 1200,
    'lr': 2e-3,
    'eta_min': 1e-6,
    'val_freq': 300,
    'print_freq': 25,
    'save_checkpoint_freq': 300,
}


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


def demo_study(scale=2, out='results/demo', data_root='datasets', iters=None, threads=1):
    """Write the demo photographs and return the demo study.

    Args:
        scale (int): Upscaling factor. Default: 2.
        out (str | Path): Report folder. Default: 'results/demo'.
        data_root (str | Path): Where the photographs and the prepared data go. Default: 'datasets'.
        iters (int | None): Training iterations instead of the demo's 1200 (validation and checkpoints follow).
            Default: None.
        threads (int | None): CPU threads of each process (training, evaluation); None: torch's default. One is
            the fastest on a 2-core machine that runs anything else: threads that outnumber the free cores make
            PyTorch's parallel loops wait for each other. Default: 1.

    Returns:
        Study: The checked study.
    """
    photos = Path(data_root) / 'demo_photos'
    train = dict(TRAIN)
    if iters is not None:
        print_freq = TRAIN['print_freq'] if iters % TRAIN['print_freq'] == 0 else iters
        train.update(total_iter=iters, val_freq=iters, print_freq=print_freq, save_checkpoint_freq=iters)
    options = {
        'name': f'demo_x{scale}',
        'out': str(out),
        'data_root': str(data_root),
        'scales': [scale],
        'seeds': [0],
        'networks': NETWORKS,
        'train': {**train, 'data': str(write_photographs(TRAIN_IMAGES, photos / 'train'))},
        'test': {'datasets': {HELD_OUT_NAME: {'images': str(write_photographs(HELD_OUT_IMAGES, photos / 'held_out'))}}},
    }
    if threads is not None:
        options['threads'] = threads
    return parse_study(options, source='demo study')
