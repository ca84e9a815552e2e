"""Distributed set-up that also works on CPU-only machines (Gloo), under ``torchrun`` and under SLURM's ``srun``."""

import os
import subprocess

import torch
import torch.distributed as dist
from basicsr.utils.dist_util import init_dist as basicsr_init_dist

DEFAULT_MASTER_PORT = 29500  # torch.distributed's, as in BasicSR


def default_backend():
    """NCCL where CUDA is available, Gloo otherwise."""
    return 'nccl' if torch.cuda.is_available() else 'gloo'


def init_dist(launcher, backend=None, **kwargs):
    """Replacement for ``basicsr.utils.dist_util.init_dist`` (BasicSR 1.4.2) that also runs without CUDA.

    BasicSR's version defaults to NCCL and calls ``torch.cuda.set_device``, so neither launcher starts on a CPU
    machine. With CUDA this calls BasicSR's version unchanged, with NCCL unless a backend is given (e.g.
    ``dist_params.backend`` for SLURM). Without CUDA, both launchers join the process group with Gloo (a ``nccl``
    backend from the options is replaced, as NCCL needs CUDA): ``--launcher pytorch`` from the ``torchrun``
    environment, ``--launcher slurm`` from SLURM's (see :func:`init_dist_slurm_cpu`).

    Args:
        launcher (str): ``'pytorch'`` or ``'slurm'``.
        backend (str | None): Process-group backend; None picks :func:`default_backend`. Default: None.
        **kwargs: Passed on to ``init_process_group`` (``pytorch``) or as ``port`` (``slurm``), as in BasicSR.
    """
    if torch.cuda.is_available():
        basicsr_init_dist(launcher, backend or default_backend(), **kwargs)
        return
    backend = default_backend() if backend in (None, 'nccl') else backend
    if launcher == 'pytorch':
        dist.init_process_group(backend=backend, **kwargs)
    elif launcher == 'slurm':
        init_dist_slurm_cpu(backend, **kwargs)
    else:
        raise ValueError(f'Invalid launcher type: {launcher}')


def first_slurm_host(node_list):
    """Return the first host name of a SLURM node list such as ``node[01-04]`` (``scontrol show hostnames``).

    Args:
        node_list (str): The job's node list (``$SLURM_NODELIST``).

    Returns:
        str: The first host, where rank 0 runs.
    """
    try:
        proc = subprocess.run(['scontrol', 'show', 'hostnames', node_list], capture_output=True, text=True, timeout=60)
    except FileNotFoundError as error:
        raise RuntimeError('--launcher slurm needs `scontrol` on PATH to read $SLURM_NODELIST') from error
    hosts = proc.stdout.split()
    if proc.returncode != 0 or not hosts:
        raise RuntimeError(f'scontrol show hostnames {node_list!r} failed: {proc.stderr.strip()}')
    return hosts[0]


def init_dist_slurm_cpu(backend='gloo', port=None):
    """Join the process group of a SLURM job step without CUDA, with the environment BasicSR sets up with CUDA.

    One process per SLURM task (``srun --ntasks=N``): rank ``$SLURM_PROCID``, world size ``$SLURM_NTASKS``, master
    the first host of ``$SLURM_NODELIST``. The port is ``port`` (BasicSR passes ``dist_params.port`` of the
    options), else ``$MASTER_PORT``, else 29500. Sets ``MASTER_ADDR``, ``MASTER_PORT``, ``WORLD_SIZE``, ``RANK`` and
    ``LOCAL_RANK`` (``$SLURM_LOCALID``, the task's index on its node) as BasicSR does, then initialises from them.

    Args:
        backend (str): Process-group backend. Default: ``'gloo'``.
        port (int | None): Master port. Default: None.
    """
    missing = [name for name in ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST') if name not in os.environ]
    if missing:
        raise RuntimeError(f'--launcher slurm outside a SLURM job step (no ${", $".join(missing)}); start it with srun')
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    else:
        os.environ.setdefault('MASTER_PORT', str(DEFAULT_MASTER_PORT))
    os.environ['MASTER_ADDR'] = first_slurm_host(os.environ['SLURM_NODELIST'])
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['RANK'] = os.environ['SLURM_PROCID']
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
    dist.init_process_group(backend=backend)
