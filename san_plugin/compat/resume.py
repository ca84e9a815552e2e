"""Resuming a BasicSR training run on any device, from its newest checkpoint that is complete."""

import collections
import logging
import os
import pickle
from os import path as osp

import torch
from basicsr.utils import check_resume

from san_plugin.compat.paths import output_root

logger = logging.getLogger(__name__)

# Types beyond tensors and plain containers found in BasicSR's ``.state`` files: MultiStepRestartLR keeps its
# milestones in a Counter. They are allowed while loading with ``weights_only=True``, nothing else.
TRAINING_STATE_GLOBALS = (collections.Counter,)
TRAINING_STATE_KEYS = ('epoch', 'iter', 'optimizers', 'schedulers')


def load_training_state(path, map_location='cpu'):
    """Load one BasicSR training state (``<iter>.state``) without running any pickled code.

    Args:
        path (str): The ``.state`` file.
        map_location (str | torch.device): Where to put its tensors. Default: ``'cpu'``.

    Returns:
        dict: The state, with keys ``epoch``, ``iter``, ``optimizers`` and ``schedulers``.
    """
    try:
        with torch.serialization.safe_globals(list(TRAINING_STATE_GLOBALS)):
            state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError) as error:
        raise ValueError(f'Cannot load the training state {path}: {error}') from error
    if not isinstance(state, dict) or any(key not in state for key in TRAINING_STATE_KEYS):
        raise ValueError(f'{path} is not a BasicSR training state: it needs the keys {list(TRAINING_STATE_KEYS)}')
    return state


def resume_network_paths(opt, current_iter):
    """The network files that BasicSR's ``check_resume`` will load for a resume at ``current_iter``.

    Args:
        opt (dict): Parsed options.
        current_iter (int): Iteration of the training state.

    Returns:
        list[str]: ``<models>/net_<name>_<iter>.pth`` for every ``network_<name>`` option not in
        ``path.ignore_resume_networks``.
    """
    ignored = opt['path'].get('ignore_resume_networks') or []
    networks = [key for key in opt if key.startswith('network_') and key not in ignored]
    return [osp.join(opt['path']['models'], f'net_{key[len("network_") :]}_{current_iter}.pth') for key in networks]


def _state_iterations(folder):
    """Iterations of the ``<iter>.state`` files in ``folder``, newest first."""
    stems = (name[: -len('.state')] for name in os.listdir(folder) if name.endswith('.state'))
    return sorted((int(stem) for stem in stems if stem.isdigit()), reverse=True)


def _check_resume_candidate(opt, path, current_iter, map_location):
    """Load the training state at ``path`` and the networks saved with it; raise if any of them is unusable."""
    state = load_training_state(path, map_location)
    if state['iter'] != current_iter:
        raise ValueError(f'it holds iteration {state["iter"]}, not {current_iter}')
    for net_path in resume_network_paths(opt, current_iter):
        if not osp.isfile(net_path):
            raise FileNotFoundError(f'{net_path} is missing')
        try:
            torch.load(net_path, map_location='cpu', weights_only=True)
        except (RuntimeError, EOFError, pickle.UnpicklingError) as error:
            raise ValueError(f'Cannot load the network {net_path}: {error}') from error
    return state


def find_resume_state(opt, map_location='cpu'):
    """Find the newest training state that loads and whose network files exist and load.

    A run killed while writing a checkpoint (by anything that does not write atomically) can leave a truncated
    ``.state`` or ``.pth``; such iterations are skipped with a warning naming the file and the reason.

    Args:
        opt (dict): Parsed training options (``opt['path']['training_states']`` and ``opt['path']['models']``).
        map_location (str | torch.device): Where to put the state's tensors. Default: ``'cpu'``.

    Returns:
        tuple[str, dict] | None: Path and content of the state, or None if there is no usable one.
    """
    folder = opt['path']['training_states']
    if not osp.isdir(folder):
        return None
    for current_iter in _state_iterations(folder):
        path = osp.join(folder, f'{current_iter}.state')
        try:
            return path, _check_resume_candidate(opt, path, current_iter, map_location)
        except (OSError, ValueError) as error:  # what the two functions above raise for unusable files
            logger.warning(f'Not resuming from {path}: {type(error).__name__}: {error}')
    return None


def _state_device(opt):
    """Device for the tensors of a training state: the current GPU when training on GPUs, else the CPU."""
    if opt['num_gpu'] != 0 and torch.cuda.is_available():
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def load_resume_state(opt):
    """Replacement for ``basicsr.train.load_resume_state`` (BasicSR 1.4.2), with the same contract.

    Why it replaces BasicSR's:

    - BasicSR calls ``torch.cuda.current_device()`` and maps the state to CUDA, so a CPU run (``num_gpu: 0``) cannot
      resume. Here the state goes to the current GPU only when the run uses GPUs.
    - BasicSR's ``torch.load`` uses torch's default, ``weights_only=True`` from torch 2.6 on, which rejects the
      scheduler's ``collections.Counter`` in the versions that do not allow it by default. Here it loads with
      ``weights_only=True`` and allows exactly :data:`TRAINING_STATE_GLOBALS`, never ``weights_only=False``.
    - ``--auto_resume`` took the highest-numbered ``.state`` under ``./experiments`` of the current working directory,
      even where the run wrote elsewhere, and even if that file or its networks were truncated. Here it looks in the
      run's own ``training_states`` folder and takes the newest complete checkpoint (:func:`find_resume_state`).
    - ``train_pipeline`` sets ``opt['root_path']`` (used for ``tb_logger/``) right before calling this function, to
      ``site-packages`` for an installed BasicSR; it is redirected as in :func:`san_plugin.compat.paths.output_root`.

    Args:
        opt (dict): Parsed training options; ``opt['path']['resume_state']`` is set when auto-resuming.

    Returns:
        dict | None: The training state to resume from, or None to start from scratch.
    """
    if 'root_path' in opt:
        opt['root_path'] = output_root(opt['root_path'])
    map_location = _state_device(opt)
    if opt['auto_resume']:
        found = find_resume_state(opt, map_location)
        if found is None:
            return None
        opt['path']['resume_state'], state = found
    elif opt['path'].get('resume_state'):
        state = load_training_state(opt['path']['resume_state'], map_location)
    else:
        return None
    check_resume(opt, state['iter'])
    return state
