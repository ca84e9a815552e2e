"""Builders of the study tests: tiny networks, images, a valid tiny study mapping, and run records as the runner
writes them."""

import copy

import cv2
import numpy as np

TINY_SAN = {'type': 'SAN', 'num_feat': 8, 'num_group': 1, 'num_block': 1, 'squeeze_factor': 4,
            'nonlocal_reduction': 2}  # fmt: skip
TINY_RCAN = {'type': 'RCAN', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_group': 1, 'num_block': 1,
             'squeeze_factor': 4}  # fmt: skip
IMAGES = ('im0', 'im1', 'im2', 'im3', 'im4', 'im5')


def write_images(folder, count, size, seed):
    """Smooth random colour images (noise blurred), so that bicubic and the networks have something to learn."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        img = cv2.GaussianBlur(rng.integers(0, 256, (size[0], size[1], 3), dtype=np.uint8), (0, 0), 3)
        cv2.imwrite(str(folder / f'img{i}.png'), img)
    return folder


def study_options(tmp_path, out, data_root, test_size=(40, 48), **train):
    """A valid tiny study mapping: SAN and RCAN, one seed, four iterations (``train`` keys change them), training and
    test images made in ``tmp_path``; ``out`` and ``data_root`` as the study file gives them."""
    return {
        'name': 'tiny',
        'out': out,
        'data_root': data_root,
        'scales': [2],
        'seeds': [0],
        'threads': 1,
        'networks': {'SAN': dict(TINY_SAN), 'RCAN': dict(TINY_RCAN)},
        'train': {
            'data': str(write_images(tmp_path / 'train_hr', 2, (96, 96), 0)),
            'crop_size': 48,
            'step': 48,
            'gt_size': 32,
            'batch_size': 2,
            'total_iter': 4,
            'val_freq': 2,
            'print_freq': 2,
            'save_checkpoint_freq': 2,
            **train,
        },
        'test': {
            'datasets': {'Tiny': {'images': str(write_images(tmp_path / 'test_hr', 2, test_size, 1))}},
            'flops_input': [16, 16],
            'memory_input': 16,
        },
    }


def changed(study, path, value):
    """A copy of ``study`` with the key at ``path`` (a tuple) set to ``value`` (or removed when value is ...)."""
    study = copy.deepcopy(study)
    node = study
    for key in path[:-1]:
        node = node[key]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return study


def record(network, seed, psnr_by_image, dataset='Set5', scale=2):
    """A run record as the runner writes it, with one quality row whose means are those of ``psnr_by_image``."""
    per_image = [
        {'image': name, 'psnr': value, 'ssim': 0.8 + value / 1000, 'latency_ms': 1.0}
        for name, value in zip(IMAGES, psnr_by_image)
    ]
    row = {'dataset': dataset, 'psnr': sum(psnr_by_image) / len(psnr_by_image),
           'ssim': sum(p['ssim'] for p in per_image) / len(per_image), 'flops': 1.0, 'flops_input': '1x3x8x8',
           'latency_ms': 1.0, 'device': 'cpu', 'per_image': per_image}  # fmt: skip
    return {'network': network, 'scale': scale, 'seed': seed, 'rows': [row],
            'training': {'seconds_per_iter': 0.1, 'validations': []}}  # fmt: skip
