"""Resuming a BasicSR training run on any device, from its newest checkpoint that is complete."""

import collections
import functools
import logging
import os
import pickle
from os import path as osp

import torch
import torch.distributed as dist
from basicsr.utils import check_resume, get_time_str

from san_plugin.compat.paths import output_root
from san_plugin.utils.atomic_save import remove_temporaries

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


class ResumeError(RuntimeError):
    """``--auto_resume`` found checkpoints of the run but none that can be resumed from."""


class ResumeReport:
    """What ``--auto_resume`` rejected, kept until the run's log file exists and then written into it.

    BasicSR loads the resume state before it creates the run's logger (its log file is named after the moment it is
    created), so the plugin's ``parse_options`` fix gives BasicSR's training script a :meth:`wrap_get_root_logger`
    that writes the rejections as soon as the logger is made.
    """

    def __init__(self):
        self.messages = []

    def reject(self, path, error):
        """Record and print (to the ``san_plugin.compat.resume`` logger) that ``path`` was not resumed from."""
        message = f'Not resuming from {path}: {type(error).__name__}: {error}'
        logger.warning(message)
        self.messages.append(message)

    def wrap_get_root_logger(self, get_root_logger):
        """Wrap BasicSR's ``get_root_logger`` so that its first call also logs the recorded rejections."""

        @functools.wraps(get_root_logger)
        def get_root_logger_with_report(*args, **kwargs):
            root_logger = get_root_logger(*args, **kwargs)
            while self.messages:
                root_logger.warning(self.messages.pop(0))
            return root_logger

        return get_root_logger_with_report


def find_resume_state(opt, map_location='cpu', report=None):
    """Find the newest training state that loads and whose network files exist and load.

    The network files are one per ``network_*`` section (:func:`resume_network_paths`): ``net_g_<iter>.pth``, and
    also ``net_d_<iter>.pth`` for a GAN run (``SANGANModel``, ``ESRGANModel``, ``RealESRGANModel``), whose
    discriminator BasicSR's ``check_resume`` loads too.

    A run killed while writing a checkpoint (by anything that does not write atomically) can leave a truncated
    ``.state`` or ``.pth``; such iterations are skipped, each with a warning naming the file and the reason. If the
    run has training states and none of them is usable, the run must not silently start again from iteration 0
    (BasicSR would then archive the run folder): :class:`ResumeError` lists each candidate and why it was rejected.

    Args:
        opt (dict): Parsed training options (``opt['path']['training_states']`` and ``opt['path']['models']``).
        map_location (str | torch.device): Where to put the state's tensors. Default: ``'cpu'``.
        report (ResumeReport | None): Collects the rejections for the run's log file. Default: None.

    Returns:
        tuple[str, dict] | None: Path and content of the state, or None if the run has no training state at all.
    """
    report = report or ResumeReport()
    folder = opt['path']['training_states']
    if not osp.isdir(folder):
        return None
    iterations = _state_iterations(folder)
    for current_iter in iterations:
        path = osp.join(folder, f'{current_iter}.state')
        try:
            return path, _check_resume_candidate(opt, path, current_iter, map_location)
        except (OSError, ValueError) as error:  # what the two functions above raise for unusable files
            report.reject(path, error)
    if not iterations:
        return None
    listed = '\n'.join(f'  {message}' for message in report.messages)
    raise ResumeError(
        f'--auto_resume: the run has training states in {folder} but none can be resumed from, so it stops instead '
        f'of starting again from iteration 0:\n{listed}\nMove the files away to start from scratch, or name one '
        'with path.resume_state.'
    )


def _write_run_log(opt, message):
    """Write ``message`` into a new log file of the run, named as BasicSR names its training logs."""
    log_file = osp.join(opt['path']['log'], f'train_{opt["name"]}_{get_time_str()}.log')
    with open(log_file, 'a', encoding='utf-8') as f:
        f.write(f'{get_time_str()} ERROR: {message}\n')


def _state_device(opt):
    """Device for the tensors of a training state: the current GPU when training on GPUs, else the CPU."""
    if opt['num_gpu'] != 0 and torch.cuda.is_available():
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def _on_rank_zero(choose):
    """Run ``choose()`` on rank 0 only and give its result (or its :class:`ResumeError`) to every rank."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return choose()
    box = [None]
    if dist.get_rank() == 0:
        try:
            box[0] = ('chosen', choose())
        except ResumeError as error:
            box[0] = ('error', str(error))
    dist.broadcast_object_list(box, src=0)
    outcome, value = box[0]
    if outcome == 'error':
        raise ResumeError(value)
    return value


def choose_resume_path(opt, report=None):
    """The training state that ``--auto_resume`` resumes from, chosen on rank 0 for every rank.

    Rank 0 first removes the temporary files that a killed save left in the run's ``models`` and
    ``training_states`` folders, then looks for the newest complete checkpoint (:func:`find_resume_state`). Every
    rank of a distributed run resumes from rank 0's choice, so ranks never start from different iterations (a file
    written or removed between their looks could otherwise make them disagree). When no checkpoint is usable, rank 0
    also writes the reasons into a log file of the run.

    Args:
        opt (dict): Parsed training options.
        report (ResumeReport | None): Collects the rejections for the run's log file. Default: None.

    Returns:
        str | None: Path of the ``.state`` file, or None to start from scratch.
    """

    def choose():
        for folder in (opt['path']['models'], opt['path']['training_states']):
            remove_temporaries(folder)
        try:
            found = find_resume_state(opt, 'cpu', report)
        except ResumeError as error:
            _write_run_log(opt, str(error))
            raise
        return None if found is None else found[0]

    return _on_rank_zero(choose)


def load_resume_state(opt, report=None):
    """Replacement for ``basicsr.train.load_resume_state`` (BasicSR 1.4.2), with the same contract.

    Why it replaces BasicSR's:

    - BasicSR calls ``torch.cuda.current_device()`` and maps the state to CUDA, so a CPU run (``num_gpu: 0``) cannot
      resume. Here the state goes to the current GPU only when the run uses GPUs.
    - BasicSR's ``torch.load`` uses torch's default, ``weights_only=True`` from torch 2.6 on, which rejects the
      scheduler's ``collections.Counter`` in the versions that do not allow it by default. Here it loads with
      ``weights_only=True`` and allows exactly :data:`TRAINING_STATE_GLOBALS`, never ``weights_only=False``.
    - ``--auto_resume`` took the highest-numbered ``.state`` under ``./experiments`` of the current working directory,
      even where the run wrote elsewhere, and even if that file or its networks were truncated. Here it looks in the
      run's own ``training_states`` folder and takes the newest complete checkpoint, chosen by rank 0 for every rank
      (:func:`choose_resume_path`); with states present and none usable it raises :class:`ResumeError` instead of
      starting again from iteration 0.
    - ``train_pipeline`` sets ``opt['root_path']`` (used for ``tb_logger/``) right before calling this function, to
      ``site-packages`` for an installed BasicSR; it is redirected as in :func:`san_plugin.compat.paths.output_root`.

    Args:
        opt (dict): Parsed training options; ``opt['path']['resume_state']`` is set when auto-resuming.
        report (ResumeReport | None): Collects rejected checkpoints for the run's log file. Default: None.

    Returns:
        dict | None: The training state to resume from, or None to start from scratch.
    """
    if 'root_path' in opt:
        opt['root_path'] = output_root(opt['root_path'])
    if opt['auto_resume']:
        path = choose_resume_path(opt, report)
        if path is None:
            return None
        opt['path']['resume_state'] = path
    elif not opt['path'].get('resume_state'):
        return None
    state = load_training_state(opt['path']['resume_state'], _state_device(opt))
    check_resume(opt, state['iter'])
    return state
