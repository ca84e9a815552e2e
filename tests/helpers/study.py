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
# A tiny GAN stage: a 4-feature U-Net discriminator, four iterations, every loss of the ESRGAN recipe (the perceptual
# loss on VGG19's conv1_2 only: BasicSR's VGG stops at the deepest layer asked for).
TINY_GAN = {'network_d': {'type': 'UNetDiscriminatorSN', 'num_in_ch': 3, 'num_feat': 4}, 'total_iter': 4,
            'perceptual_layers': {'conv1_2': 1.0}}  # fmt: skip
# Test images large enough for NIQE at x2 (two 96x96 blocks once 2 pixels are cropped from each edge).
NIQE_SIZE = (100, 196)


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


def record(network, seed, psnr_by_image, dataset='Set5', scale=2, stage='psnr', **metrics):
    """A run record as the runner writes it, with one quality row whose means are those of ``psnr_by_image`` and of
    the perceptual ``metrics`` (name -> one value per image)."""
    per_image = [
        {'image': name, 'psnr': value, 'ssim': 0.8 + value / 1000, 'latency_ms': 1.0,
         **{metric: values[i] for metric, values in metrics.items()}}
        for i, (name, value) in enumerate(zip(IMAGES, psnr_by_image))
    ]  # fmt: skip
    means = {key: sum(p[key] for p in per_image) / len(per_image) for key in ('psnr', 'ssim', *metrics)}
    row = {'dataset': dataset, **means, 'flops': 1.0, 'flops_input': '1x3x8x8', 'latency_ms': 1.0, 'device': 'cpu',
           'per_image': per_image}  # fmt: skip
    name = f'{network}_s{seed}' + ('_gan' if stage == 'gan' else '')
    return {'network': network, 'scale': scale, 'seed': seed, 'name': name, 'stage': stage,
            'starts_from': f'{network}_s{seed}' if stage == 'gan' else None, 'rows': [row],
            'training': {'seconds_per_iter': 0.1, 'validations': []}}  # fmt: skip


def gan_study_options(folder):
    """The tiny study (SAN and RCAN at x2, seed 0) with :data:`TINY_GAN` as its GAN stage, test images large enough
    for NIQE, made in ``folder``; its outputs (``report``, ``datasets``) relative to the working directory."""
    return {**study_options(folder, 'report', 'datasets', test_size=NIQE_SIZE), 'gan': copy.deepcopy(TINY_GAN)}


def run_gan_study(folder, torch_home, memory_records):
    """Run the tiny GAN study (:func:`gan_study_options`) in ``folder`` as ``tools/compare.py -opt study.yml`` would,
    with ``TORCH_HOME`` = ``torch_home`` (random ImageNet backbones: the perceptual loss, LPIPS and DISTS run) and the
    peak-memory records copied in by ``memory_records``; the runner's console lines go to ``folder/console.log``.

    Args:
        folder (Path): An empty folder, the study's working directory.
        torch_home (Path): A ``TORCH_HOME`` with the backbones (``conftest.random_torch_home``).
        memory_records (callable): Copies peak-memory records into a study's ``out`` (``conftest.tiny_memory_records``).
    """
    import logging
    import os

    import yaml

    from san_plugin.study.options import read_study
    from san_plugin.study.runner import run_study

    options = gan_study_options(folder)
    (folder / 'study.yml').write_text(yaml.safe_dump(options, sort_keys=False))
    memory_records(folder / 'report')
    handler = logging.FileHandler(folder / 'console.log')
    study_logger = logging.getLogger('san_plugin.study')
    level, cwd, home = study_logger.level, os.getcwd(), os.environ.get('TORCH_HOME')
    study_logger.addHandler(handler)
    study_logger.setLevel(logging.INFO)
    os.environ['TORCH_HOME'] = str(torch_home)
    try:
        os.chdir(folder)
        run_study(read_study('study.yml'))
    finally:
        os.chdir(cwd)
        study_logger.removeHandler(handler)
        study_logger.setLevel(level)
        handler.close()
        if home is None:
            os.environ.pop('TORCH_HOME')
        else:
            os.environ['TORCH_HOME'] = home
