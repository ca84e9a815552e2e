"""Distributed set-up that also works on CPU-only machines (Gloo)."""

import torch
import torch.distributed as dist
from basicsr.utils.dist_util import init_dist as basicsr_init_dist


def default_backend():
    """NCCL where CUDA is available, Gloo otherwise."""
    return 'nccl' if torch.cuda.is_available() else 'gloo'


def init_dist(launcher, backend=None, **kwargs):
    """Replacement for ``basicsr.utils.dist_util.init_dist`` (BasicSR 1.4.2) that also runs without CUDA.

    BasicSR's version defaults to NCCL and calls ``torch.cuda.set_device``, so ``--launcher pytorch`` fails on a CPU
    machine. With CUDA this calls BasicSR's version unchanged, with NCCL unless a backend is given (e.g.
    ``dist_params.backend`` for Slurm). Without CUDA, ``--launcher pytorch`` (``torchrun``) joins the process group
    with Gloo from the ``torchrun`` environment; ``--launcher slurm`` stays GPU-only, as BasicSR maps each Slurm task
    to a GPU.

    Args:
        launcher (str): ``'pytorch'`` or ``'slurm'``.
        backend (str | None): Process-group backend; None picks :func:`default_backend`. Default: None.
        **kwargs: Passed on to ``init_process_group`` (``pytorch``) or as ``port`` (``slurm``), as in BasicSR.
    """
    backend = backend or default_backend()
    if torch.cuda.is_available():
        basicsr_init_dist(launcher, backend, **kwargs)
    elif launcher == 'pytorch':
        dist.init_process_group(backend=backend, **kwargs)
    elif launcher == 'slurm':
        raise RuntimeError(
            '--launcher slurm needs CUDA GPUs (BasicSR gives each Slurm task one GPU); on CPU-only nodes start '
            '`torchrun` on each node and use --launcher pytorch'
        )
    else:
        raise ValueError(f'Invalid launcher type: {launcher}')
