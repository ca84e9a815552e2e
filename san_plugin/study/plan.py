"""Plan a study: the networks it builds (checked, with their parameter counts), its runs (a PSNR run per network,
scale and seed, then with a ``gan`` block a GAN run of each) and their BasicSR options."""

import copy
import hashlib
import json
from dataclasses import dataclass

from basicsr.archs import build_network

from san_plugin.benchmark.flops import count_params
from san_plugin.study.gan import check_discriminator, gan_options
from san_plugin.study.options import StudyError


@dataclass(frozen=True)
class Run:
    """One training run: a network of the study at one scale with one seed, in one stage.

    Attributes:
        network (str): The network's name in the study.
        scale (int): Its scale.
        seed (int): Its seed.
        name (str): Its BasicSR experiment name.
        stage (str): 'psnr' (L1 from scratch) or 'gan' (the GAN stage, from ``starts_from``'s weights).
        starts_from (str | None): The run whose final weights it starts from (a GAN run's PSNR run).
    """

    network: str
    scale: int
    seed: int
    name: str
    stage: str = 'psnr'
    starts_from: str | None = None

    @property
    def label(self):
        """How the console names it: ``SAN x2 seed 0`` (``SAN x2 seed 0 GAN`` in the GAN stage)."""
        return f'{self.network} x{self.scale} seed {self.seed}' + (' GAN' if self.stage == 'gan' else '')


def network_opt(study, network, scale):
    """``network_g`` options of ``network`` at ``scale``."""
    return {**copy.deepcopy(study.networks[network]), 'upscale': scale}


def check_networks(study):
    """Build every network at every scale (and the GAN stage's discriminator), so that a bad value stops the study
    before any training.

    Args:
        study (Study): The study.

    Returns:
        dict[tuple[str, int], int]: Parameter count by (network, scale).
    """
    params = {}
    for scale in study.scales:
        for network in study.networks:
            try:
                net = build_network(network_opt(study, network, scale))
            except (KeyError, TypeError, ValueError, RuntimeError) as error:
                raise StudyError(f'{study.source}: networks.{network}: cannot build it at x{scale}: {error}') from error
            params[network, scale] = count_params(net)
        if study.param_tolerance is not None:
            reference = next(iter(study.networks))
            base = params[reference, scale]
            for network in study.networks:
                ratio = params[network, scale] / base
                if abs(ratio - 1) > study.param_tolerance:
                    raise StudyError(
                        f'{study.source}: networks.{network}: {params[network, scale]:,} parameters at x{scale}, '
                        f"{ratio:.3f} times {reference}'s {base:,}, outside param_tolerance {study.param_tolerance}"
                    )
    if study.gan is not None:
        check_discriminator(study)
    return params


def plan_runs(study):
    """Every run of the study, networks in file order, then scales, then seeds; with a ``gan`` block, then the GAN run
    of each, in the same order."""
    runs = [
        Run(network, scale, seed, study.run_name(network, scale, seed))
        for network in study.networks
        for scale in study.scales
        for seed in study.seeds
    ]
    if study.gan is None:
        return runs
    gan_runs = [
        Run(r.network, r.scale, r.seed, study.run_name(r.network, r.scale, r.seed, 'gan'), 'gan', r.name) for r in runs
    ]
    return runs + gan_runs


def training_options(study, run, train_lmdbs, val_set):
    """BasicSR options of one run (:func:`psnr_options`, and :func:`~san_plugin.study.gan.gan_options` for a GAN
    run).

    Args:
        study (Study): The study.
        run (Run): The run.
        train_lmdbs (dict[int, Path]): ``prepare_train``'s result (key 1 the HR LMDB, key ``scale`` the LR one).
        val_set (DatasetSpec): The validation data set (``{scale}`` in its folders).

    Returns:
        dict: Options for ``python -m basicsr.train``.
    """
    options = psnr_options(study, run, train_lmdbs, val_set)
    return options if run.stage == 'psnr' else gan_options(study, run, options)


def psnr_options(study, run, train_lmdbs, val_set):
    """BasicSR options of one PSNR-stage run, with :func:`training_options`' arguments: the same data, patches,
    batch, schedule and validation for every network."""
    train = study.train
    hr_dir, lr_dir = (folder.format(scale=run.scale) for folder in (val_set.hr_dir, val_set.lr_dir))
    return {
        'name': run.name,
        'model_type': 'SANModel',
        'scale': run.scale,
        'num_gpu': 'auto',
        'manual_seed': run.seed,
        'datasets': {
            'train': {
                'name': f'{study.name}_train',
                'type': 'CheckedPairedImageDataset',
                'dataroot_gt': str(train_lmdbs[1]),
                'dataroot_lq': str(train_lmdbs[run.scale]),
                'filename_tmpl': '{}',
                'io_backend': {'type': 'lmdb'},
                'gt_size': train['gt_size'],
                'use_hflip': True,
                'use_rot': True,
                'num_worker_per_gpu': 1,
                'batch_size_per_gpu': train['batch_size'],
                'dataset_enlarge_ratio': 100,
                'prefetch_mode': None,
            },
            'val': {
                'name': val_set.name,
                'type': 'CheckedPairedImageDataset',
                'dataroot_gt': hr_dir,
                'dataroot_lq': lr_dir,
                'filename_tmpl': '{}',
                'io_backend': {'type': 'disk'},
            },
        },
        'network_g': network_opt(study, run.network, run.scale),
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'ema_decay': 0,
            'optim_g': {'type': 'Adam', 'lr': train['lr'], 'weight_decay': 0, 'betas': [0.9, 0.99]},
            'scheduler': {
                'type': 'CosineAnnealingRestartLR',
                'periods': [train['total_iter']],
                'restart_weights': [1],
                'eta_min': train['eta_min'],
            },
            'total_iter': train['total_iter'],
            'warmup_iter': -1,
            'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'},
        },
        'val': {
            'val_freq': train['val_freq'],
            'save_img': False,
            'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': run.scale, 'test_y_channel': True}},
        },
        'logger': {
            'print_freq': train['print_freq'],
            'save_checkpoint_freq': train['save_checkpoint_freq'],
            'use_tb_logger': False,
            'wandb': {'project': None, 'resume_id': None},
        },
    }


def options_digest(options, starts_from=None):
    """A short fingerprint of a run's options, recorded with its results to detect a changed study.

    Args:
        options (dict): The run's BasicSR options.
        starts_from (str | None): The fingerprint of the run it starts from (a GAN run's PSNR run), so that a run
            trained again changes the fingerprints of the runs that start from it. Default: None.

    Returns:
        str: 16 hexadecimal digits.
    """
    content = options if starts_from is None else {'options': options, 'starts_from': starts_from}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]
