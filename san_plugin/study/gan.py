"""The GAN stage of a study (a ``gan`` block): each GAN run's BasicSR options, and the discriminator every network of
a seed starts from.

A GAN run is the PSNR run's network trained on with ``SANGANModel`` (BasicSR's ``ESRGANModel`` step: pixel,
perceptual and relativistic average GAN losses, ``net_d_iters``/``net_d_init_iters``, EMA) from the PSNR run's final
weights (``path.pretrain_network_g``), with the sections of BasicSR's ``options/train/ESRGAN/train_ESRGAN_x4.yml``:
the same data, validation and logging as the PSNR runs, the ``gan`` block's losses, learning rates and budget, and
ESRGAN's schedule scaled to the budget (both rates halved at 1/8, 1/4, 1/2 and 3/4 of ``total_iter``).

The same discriminator initialisation for every network: BasicSR builds ``net_d`` after the generator (and its EMA
copy), so under one seed its random initialisation would depend on how many random numbers the generator's
construction drew. Instead, the discriminator of seed ``s`` is built once under ``torch.manual_seed(s)`` alone and
saved (:func:`write_discriminator_inits`); every GAN run of that seed loads it (``path.pretrain_network_d``).
"""

import copy
import hashlib
import json
from pathlib import Path

import torch
from basicsr.archs import build_network

from san_plugin.convert.network_config import RECORD_KEY, network_record
from san_plugin.study.options import StudyError
from san_plugin.utils.atomic_save import atomic_torch_save

# ESRGAN's MultiStepLR milestones (50k, 100k, 200k, 300k of 400k iterations) as shares of the budget.
MILESTONE_SHARES = (1 / 8, 1 / 4, 1 / 2, 3 / 4)


def check_discriminator(study):
    """Build the discriminator and run it on one GT patch of ``gan.gt_size``, so that a value it refuses stops the
    study before any training.

    Args:
        study (Study): A study with a ``gan`` block.

    Raises:
        StudyError: Naming ``gan.network_d`` (or ``gan.gt_size``) and the discriminator's own message.
    """
    gan = study.gan
    try:
        net_d = build_network(copy.deepcopy(gan['network_d']))
    except (AssertionError, KeyError, TypeError, ValueError, RuntimeError) as error:
        raise StudyError(f'{study.source}: gan.network_d: cannot build it: {error}') from error
    size = gan['gt_size']
    try:
        with torch.no_grad():
            net_d(torch.zeros(1, gan['network_d'].get('num_in_ch', 3), size, size))
    except (AssertionError, RuntimeError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise StudyError(
            f'{study.source}: gan.gt_size: {gan["network_d"]["type"]} cannot take {size}x{size} patches: {first}'
        ) from error


def discriminator_init_path(study, seed):
    """``<out>/discriminators/net_d_init_s<seed>_<fingerprint of network_d>.pth``: the discriminator the GAN runs of
    ``seed`` start from."""
    options = json.dumps(study.gan['network_d'], sort_keys=True).encode()
    return Path(study.out) / 'discriminators' / f'net_d_init_s{seed}_{hashlib.sha256(options).hexdigest()[:8]}.pth'


def discriminator_init(network_d, seed):
    """The discriminator built under ``torch.manual_seed(seed)`` alone (the global random state is left as it was).

    Args:
        network_d (dict): Its options.
        seed (int): The seed.

    Returns:
        nn.Module: The discriminator.
    """
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_network(copy.deepcopy(network_d))


def write_discriminator_inits(study):
    """Write the discriminator of every seed that has none yet (:func:`discriminator_init_path`, atomically, as a
    BasicSR ``.pth`` with ``params`` and the plugin's ``network_config`` record).

    Args:
        study (Study): A study with a ``gan`` block.
    """
    network_d = study.gan['network_d']
    for seed in study.seeds:
        path = discriminator_init_path(study, seed)
        if path.is_file():
            continue
        state = {'params': discriminator_init(network_d, seed).state_dict()}
        state[RECORD_KEY] = network_record(network_d, 'gan.network_d')
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_torch_save(state, path)


def final_weights(run_name):
    """Where BasicSR leaves the final weights of a study's run, relative to the study's working folder (a GAN run
    starts from its PSNR run's; a run's record names its own).

    Args:
        run_name (str): The run's BasicSR experiment name.

    Returns:
        Path: ``experiments/<run_name>/models/net_g_latest.pth``.
    """
    return Path('experiments') / run_name / 'models' / 'net_g_latest.pth'


def gan_options(study, run, psnr_options):
    """BasicSR options of one GAN run, made from the options its PSNR run would have (see the module docstring).

    Args:
        study (Study): The study (its ``gan`` block).
        run (Run): The GAN run (``starts_from``: its PSNR run).
        psnr_options (dict): The options of a PSNR run of the same network, scale and seed, with the GAN run's name.

    Returns:
        dict: Options for ``python -m basicsr.train`` (``model_type: SANGANModel``).
    """
    gan = study.gan
    options = copy.deepcopy(psnr_options)
    options['model_type'] = 'SANGANModel'
    options['datasets']['train'].update(gt_size=gan['gt_size'], batch_size_per_gpu=gan['batch_size'])
    options['network_d'] = copy.deepcopy(gan['network_d'])
    options['path'] = {
        'pretrain_network_g': str(final_weights(run.starts_from)),
        'param_key_g': 'params',
        'strict_load_g': True,
        'pretrain_network_d': str(discriminator_init_path(study, run.seed)),
        'param_key_d': 'params',
        'strict_load_d': True,
        'resume_state': None,
    }
    total_iter = gan['total_iter']
    adam = {'type': 'Adam', 'weight_decay': 0, 'betas': [0.9, 0.99]}
    options['train'] = {
        'ema_decay': gan['ema_decay'],
        'optim_g': {**adam, 'lr': gan['lr_g']},
        'optim_d': {**adam, 'lr': gan['lr_d']},
        'scheduler': {
            'type': 'MultiStepLR',
            'milestones': sorted({max(round(total_iter * share), 1) for share in MILESTONE_SHARES}),
            'gamma': 0.5,
        },
        'total_iter': total_iter,
        'warmup_iter': -1,
        'pixel_opt': (
            {'type': 'L1Loss', 'loss_weight': gan['pixel_weight'], 'reduction': 'mean'} if gan['pixel_weight'] else None
        ),
        'perceptual_opt': (
            {
                'type': 'PerceptualLoss',
                'layer_weights': dict(gan['perceptual_layers']),
                'vgg_type': 'vgg19',
                'use_input_norm': True,
                'range_norm': False,
                'perceptual_weight': gan['perceptual_weight'],
                'style_weight': 0,
                'criterion': 'l1',
            }  # fmt: skip
            if gan['perceptual_weight']
            else None
        ),
        'gan_opt': {
            'type': 'GANLoss',
            'gan_type': gan['gan_type'],
            'real_label_val': 1.0,
            'fake_label_val': 0.0,
            'loss_weight': gan['gan_weight'],
        },  # fmt: skip
        'net_d_iters': gan['net_d_iters'],
        'net_d_init_iters': gan['net_d_init_iters'],
    }
    return options
