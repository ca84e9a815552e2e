"""Executors of a study: where the runs that lack a record turn into outcomes, and how many at once.

Both executors have submitit's shape: ``submit(work, task)`` hands over one planned run and the function that does
its work (:func:`san_plugin.study.work.produce_outcome`), then ``outcomes()`` yields ``(task, RunOutcome)`` for every
submitted run as it ends, each a record or a failure (runs submitted while it yields included: a GAN run once its
PSNR run is recorded). ``max_parallel`` is how many runs they hold at once (None: no
cap), ``processes_per_run`` how many training processes share one run (DDP), ``describe`` a line for the console.
:func:`san_plugin.study.runner.run_study` holds no branch per executor.

- :class:`LocalExecutor` (``executor: local``, here): a ``concurrent.futures`` thread pool of ``max_parallel``
  workers on this machine; each run is its own ``python -m basicsr.train`` process with its own GPUs
  (``CUDA_VISIBLE_DEVICES``) or its own ``threads`` CPU threads, evaluated in its worker.
- :class:`~san_plugin.study.slurm.SlurmExecutor` (``executor: slurm``): one SLURM job per run, submitted with
  submitit, the dispatcher its one retry layer (see :mod:`san_plugin.study.slurm`).
"""

import concurrent.futures
import os
import queue

import torch

from san_plugin.study.options import Execution, StudyError
from san_plugin.study.slurm import SlurmExecutor
from san_plugin.study.work import Placement


def cpu_count():
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1


class LocalExecutor:
    """Runs on this machine, ``max_parallel`` at once, each in a worker thread with its own slot of GPUs or CPU
    threads (see the module docstring).

    Args:
        max_parallel (int): Runs at once.
        slots (list[Placement]): One placement per concurrent run.
    """

    def __init__(self, max_parallel, slots):
        self.max_parallel = max_parallel
        self.slots = slots
        self.describe = f'local, {max_parallel} run(s) at once'
        self.processes_per_run = 1
        self._free = queue.Queue()
        for slot in slots:
            self._free.put(slot)
        self._pool = None
        self._futures = {}

    def submit(self, work, task):
        """Queue ``work(task, placement)`` for the next free slot."""
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(self.max_parallel, thread_name_prefix='study-run')
        self._futures[self._pool.submit(self._placed, work, task)] = task

    def _placed(self, work, task):
        slot = self._free.get()
        try:
            return work(task, slot)
        finally:
            self._free.put(slot)

    def outcomes(self):
        """Yield ``(task, RunOutcome)`` for each submitted run as it ends, runs submitted meanwhile included."""
        try:
            while self._futures:
                done, _ = concurrent.futures.wait(self._futures, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    yield self._futures.pop(future), future.result()
        finally:
            # On a stop the runner terminates the training processes; the workers then end on their own.
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool, self._futures = None, {}


def visible_gpus():
    """Number of GPUs this process sees."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def local_executor(study, execution, gpus=None, cores=None):
    """A :class:`LocalExecutor` for the study, its keys checked against this machine.

    Args:
        study (Study): The study (``threads`` and ``source``).
        execution (Execution): Its executor keys.
        gpus (int | None): Visible GPUs (default: torch's count).
        cores (int | None): CPU cores (default: this process's).

    Returns:
        LocalExecutor: The executor.
    """
    gpus = visible_gpus() if gpus is None else gpus
    cores = cpu_count() if cores is None else cores
    source = study.source
    per_run = execution.gpus_per_run
    if per_run is None:
        per_run = 1 if gpus else 0
    if per_run > gpus:
        raise StudyError(f'{source}: gpus_per_run: {per_run} GPU(s) per run, but this machine shows {gpus}')
    if per_run:
        visible = os.environ.get('CUDA_VISIBLE_DEVICES')
        ids = visible.split(',') if visible else [str(i) for i in range(gpus)]
        groups = [ids[i : i + per_run] for i in range(0, gpus - per_run + 1, per_run)]
        slots = [
            Placement(env={'CUDA_VISIBLE_DEVICES': ','.join(group)}, device=f'cuda:{ids.index(group[0])}')
            for _ in range(execution.runs_per_gpu)
            for group in groups
        ]
        limit = f'{len(groups)} group(s) of gpus_per_run {per_run} GPU(s) x runs_per_gpu {execution.runs_per_gpu}'
    else:
        threads = study.threads or max(cores // (execution.max_parallel or 1), 1)
        slots = [Placement(env={'CUDA_VISIBLE_DEVICES': ''}, device='cpu', threads=threads)]
        slots *= max(cores // threads, 1) if execution.max_parallel is None else execution.max_parallel
        limit = None
    max_parallel = execution.max_parallel or len(slots)
    if limit is not None and max_parallel > len(slots):
        raise StudyError(
            f'{source}: max_parallel: {max_parallel} runs at once need more GPUs than {limit} (= {len(slots)}); '
            'raise runs_per_gpu to share GPUs'
        )
    return LocalExecutor(max_parallel, slots[:max_parallel])


def make_executor(study):
    """The executor that the study's keys ask for, checked against this machine before anything is trained.

    Args:
        study (Study): The study.

    Returns:
        LocalExecutor | SlurmExecutor: The executor.
    """
    execution = study.execution or Execution()
    if execution.executor == 'local':
        return local_executor(study, execution)
    return SlurmExecutor(study, execution.slurm)
