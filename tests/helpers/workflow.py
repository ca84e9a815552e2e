"""Tiny paired data sets, option files and subprocess runs for the end-to-end workflow tests."""

import glob
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
# Tiny networks on a shared 2-core machine: thread pools cost more than they give.
OMP_ONE_THREAD = {'OMP_NUM_THREADS': '1'}
SCALE = 2
TINY_SAN = {
    'type': 'SAN',
    'num_in_ch': 3,
    'num_out_ch': 3,
    'num_feat': 16,
    'num_group': 2,
    'num_block': 1,
    'squeeze_factor': 4,
    'upscale': SCALE,
    'img_range': 255.0,
    'rgb_mean': [0.4488, 0.4371, 0.4040],
}
# BasicSR's own SRResNet, for runs of BasicSR's SRModel.
TINY_MSRRESNET = {'type': 'MSRResNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'upscale': 2}


def make_pairs(root, num=8, gt_size=32, scale=SCALE, seed=0):
    """Write ``num`` smooth colour images ``root/gt/NNNN.png`` and their bicubic downscales ``root/lq/NNNN.png``.

    Returns:
        tuple[Path, Path]: The GT and LQ folders.
    """
    gt_dir, lq_dir = Path(root, 'gt'), Path(root, 'lq')
    gt_dir.mkdir(parents=True, exist_ok=True)
    lq_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index in range(num):
        coarse = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
        gt = cv2.resize(coarse, (gt_size, gt_size), interpolation=cv2.INTER_CUBIC)
        lq = cv2.resize(gt, (gt_size // scale, gt_size // scale), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(gt_dir / f'{index:04d}.png'), gt)
        cv2.imwrite(str(lq_dir / f'{index:04d}.png'), lq)
    return gt_dir, lq_dir


def _paired_set(name, gt_dir, lq_dir):
    return {
        'name': name,
        'type': 'PairedImageDataset',
        'dataroot_gt': str(gt_dir),
        'dataroot_lq': str(lq_dir),
        'filename_tmpl': '{}',
        'io_backend': {'type': 'disk'},
    }


def train_options(name, gt_dir, lq_dir, total_iter=4, network=None, validate=True):
    """Options of a tiny CPU training run: checkpoints (and validation) every 2 iterations, log every iteration."""
    train_set = _paired_set('tiny_train', gt_dir, lq_dir)
    train_set.update(
        gt_size=32,
        use_hflip=True,
        use_rot=True,
        num_worker_per_gpu=0,
        batch_size_per_gpu=2,
        dataset_enlarge_ratio=1,
        prefetch_mode=None,
    )
    opt = {
        'name': name,
        'model_type': 'SANModel',
        'scale': SCALE,
        'num_gpu': 0,
        'manual_seed': 0,
        'datasets': {'train': train_set},
        'network_g': dict(network or TINY_SAN),
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'ema_decay': 0.9,
            'optim_g': {'type': 'Adam', 'lr': 1e-3, 'weight_decay': 0, 'betas': [0.9, 0.99]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [1000], 'gamma': 0.5},
            'total_iter': total_iter,
            'warmup_iter': -1,
            'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'},
        },
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False},
    }
    if validate:
        opt['datasets']['val'] = _paired_set('tiny_val', gt_dir, lq_dir)
        opt['val'] = {'val_freq': 2, 'save_img': False, 'metrics': _metrics()}
    return opt


def _metrics():
    return {
        'psnr': {'type': 'calculate_psnr', 'crop_border': SCALE, 'test_y_channel': True},
        'ssim': {'type': 'calculate_ssim', 'crop_border': SCALE, 'test_y_channel': True},
    }


def eval_options(name, gt_dir, lq_dir, weights, network=None):
    """Options of a test run on the tiny set with ``weights``, saving images and computing PSNR/SSIM on Y."""
    return {
        'name': name,
        'model_type': 'SANModel',
        'scale': SCALE,
        'num_gpu': 0,
        'manual_seed': 0,
        'datasets': {'test_1': _paired_set('tiny_test', gt_dir, lq_dir)},
        'network_g': dict(network or TINY_SAN),
        'path': {'pretrain_network_g': str(weights), 'strict_load_g': True, 'param_key_g': 'params'},
        'val': {'save_img': True, 'suffix': None, 'metrics': _metrics()},
    }


def write_options(path, opt):
    """Write ``opt`` as a YAML option file and return its path."""
    Path(path).write_text(yaml.safe_dump(opt, sort_keys=False))
    return Path(path)


def run_python(args, cwd, timeout=600, env=None):
    """Run ``python <args>`` with this interpreter in ``cwd``, one thread per process (tiny networks on a shared
    machine); return the completed process (text output)."""
    full_env = dict(os.environ, **OMP_ONE_THREAD, **(env or {}))
    return subprocess.run(
        [sys.executable, *map(str, args)], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def free_port():
    """A TCP port of 127.0.0.1 that was free a moment ago (for a process group's master)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def describe(proc):
    """Exit status and output of a completed process, for assertion messages."""
    return f'exit {proc.returncode}\n--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}'


def read_log(folder, prefix):
    """Content of the one ``<prefix>*.log`` file in ``folder``."""
    logs = glob.glob(os.path.join(folder, f'{prefix}*.log'))
    assert len(logs) == 1, f'expected one {prefix}*.log in {folder}, found {logs}'
    return Path(logs[0]).read_text()


def truncate(path, keep=0.5):
    """Cut the file at ``path`` to ``keep`` of its length, as a process killed while writing it leaves it."""
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * keep)])


def wait_for(path, proc, timeout=300):
    """Wait until ``path`` exists while ``proc`` runs; fail if the process ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f'training ended (exit {proc.returncode}) before {path} appeared'
        assert time.monotonic() < deadline, f'{path} did not appear within {timeout} s'
        time.sleep(0.05)


def complete_iterations(experiment, networks=('net_g',)):
    """Iterations of the run folder ``experiment`` with a training state and a file of each of ``networks``."""
    states = {int(p.stem) for p in (Path(experiment) / 'training_states').glob('*.state')}
    models = Path(experiment) / 'models'
    return sorted(i for i in states if all((models / f'{net}_{i}.pth').exists() for net in networks))


def kill_training_at(iteration, cwd, experiment, env=None, options='train.yml'):
    """Run ``python -m basicsr.train -opt <options>`` in ``cwd`` and kill it (SIGKILL) once the training state of
    ``iteration`` exists in the run folder ``experiment``; its output goes to ``cwd/first.out``.

    Returns:
        int: The killed process's id (the id in the names of the temporary files its saves left).
    """
    with open(Path(cwd) / 'first.out', 'w') as out:
        proc = subprocess.Popen(
            [sys.executable, '-m', 'basicsr.train', '-opt', options],
            cwd=cwd,
            env=dict(os.environ, **OMP_ONE_THREAD, **(env or {})),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(Path(experiment) / 'training_states' / f'{iteration}.state', proc)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    return proc.pid
