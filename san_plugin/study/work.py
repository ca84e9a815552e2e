"""The work of one run: turn a planned run (:class:`RunTask`) into one :class:`RunOutcome`, wherever an executor puts
it (a thread of the dispatcher, a SLURM job).

:func:`produce_outcome` writes the run's BasicSR options, trains it (``python -m basicsr.train --auto_resume``, its
output appended to ``<out>/logs/<run>.log``), evaluates it with the quality benchmark's code and writes its record
(:class:`~san_plugin.study.records.RecordStore`). A run that fails gives an outcome with a :class:`RunFailed` (the
reason, the log file and its last lines), never an exception, so one broken run does not stop the others.

A GAN run (the GAN stage of :mod:`san_plugin.study.gan`) is a :class:`RunTask` like any other: its options start
from its PSNR run's weights (``path.pretrain_network_g``), are written and trained the same way (resuming with
``--auto_resume``), and it is evaluated with its EMA generator (``params_ema``) when it has one; the runner only
submits it once its PSNR run has a record.
"""

import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import yaml

from san_plugin.study.gan import final_weights
from san_plugin.study.logs import read_training_logs
from san_plugin.study.measure import evaluate_run
from san_plugin.study.processes import stream_process, thread_env
from san_plugin.study.records import RecordStore
from san_plugin.utils.atomic_save import write_atomic

FAILURE_TAIL = 15


class RunFailed(RuntimeError):
    """A run that did not produce its record; the message names the run, its log file and the log's last lines."""

    def __init__(self, run_name, reason, log_path=None, tail=()):
        self.run_name, self.reason, self.log_path, self.tail = run_name, reason, log_path, list(tail)
        text = f'run {run_name} failed: {reason}'
        if log_path is not None:
            text += f'\n  log: {log_path}'
        if self.tail:
            text += '\n  last lines:\n' + '\n'.join(f'    {line}' for line in self.tail)
        super().__init__(text)

    def __reduce__(self):
        return RunFailed, (self.run_name, self.reason, self.log_path, self.tail)


class TrainingStopped(BaseException):
    """Raised in a SLURM job that is being stopped (a signal: time-out, preemption, ``scancel``, a node's OOM
    killer): the job then leaves no result (submitit records only ``Exception``s), and the dispatcher submits the run
    again (see :mod:`san_plugin.study.slurm`)."""


@dataclass
class RunTask:
    """One planned run and everything its work needs, wherever it runs (it travels pickled to a SLURM job).

    Attributes:
        study (Study): The study.
        run (Run): The run.
        options (dict): Its BasicSR training options.
        digest (str): Their fingerprint (see :func:`san_plugin.study.plan.options_digest`).
        datasets (list[DatasetSpec]): The test sets.
        cwd (str): The study's working directory (BasicSR's ``experiments/`` and relative paths).
        metrics (StudyMetrics | None): The perceptual metrics it is evaluated with, and those left out (see
            :mod:`san_plugin.study.metrics`); None: PSNR and SSIM only.
    """

    study: object
    run: object
    options: dict
    digest: str
    datasets: list
    cwd: str
    metrics: object = None

    @property
    def total_iter(self):
        return self.options['train']['total_iter']

    @property
    def options_path(self):
        return Path(self.cwd) / self.study.out / 'options' / f'{self.run.name}.yml'

    @property
    def log_path(self):
        """Everything its training processes printed, every attempt appended."""
        return Path(self.cwd) / self.study.out / 'logs' / f'{self.run.name}.log'

    @property
    def experiment_dir(self):
        return Path(self.cwd) / 'experiments' / self.run.name


@dataclass(frozen=True)
class Placement:
    """Where an executor puts one run's work.

    Attributes:
        env (dict | None): Variables of its training process (e.g. ``CUDA_VISIBLE_DEVICES``).
        device (str | None): Where it is evaluated (default: the GPU when there is one).
        threads (int | None): CPU threads of its training and evaluation (default: the study's ``threads``).
        launcher (str | None): BasicSR's ``--launcher`` (``slurm``: DDP over the tasks of a SLURM job).
        in_job (bool): It runs in a SLURM job: a training killed by a signal raises :class:`TrainingStopped`.
        evaluate (bool): Evaluate the run there once trained (False: the dispatcher does, SLURM's
            ``evaluate: local``).
    """

    env: dict | None = None
    device: str | None = None
    threads: int | None = None
    launcher: str | None = None
    in_job: bool = False
    evaluate: bool = True


@dataclass
class RunOutcome:
    """What the work of one run gave: its record (finished) or a failure; neither when it trained and its evaluation
    is left to another process (the dispatcher with ``evaluate: local``, the first task of a DDP job).

    Attributes:
        run_name (str): The run.
        record (dict | None): Its record, already written to the study's records.
        failure (RunFailed | None): Why it did not finish.
        wall_s (float | None): Seconds of its work (None for a failure).
    """

    run_name: str
    record: dict | None = None
    failure: RunFailed | None = None
    wall_s: float | None = None

    @property
    def trained_only(self):
        return self.record is None and self.failure is None


def train(task, placement):
    """Train one run: ``python -m basicsr.train -opt OPTIONS --auto_resume``, its output appended to its log file.

    Args:
        task (RunTask): The run.
        placement (Placement): Where it trains.

    Raises:
        RunFailed: The training failed; names the log file and holds its last lines.
        TrainingStopped: In a SLURM job, a signal killed the training (the job is being stopped).
    """
    command = [sys.executable, '-m', 'basicsr.train', '-opt', str(task.options_path), '--auto_resume']
    env = {**thread_env(placement.threads or task.study.threads), 'PYTHONUNBUFFERED': '1', **(placement.env or {})}
    if placement.launcher:
        command += ['--launcher', placement.launcher]
        if 'SLURM_JOB_ID' in os.environ:  # every task of the job picks the same port, other jobs on the node others
            env.setdefault('MASTER_PORT', str(20000 + int(os.environ['SLURM_JOB_ID']) % 20000))
    task.log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(task.log_path, 'a', encoding='utf-8') as log:
        log.write(f'==== {time.strftime("%Y-%m-%d %H:%M:%S")} {" ".join(command)}\n')
        log.flush()

        def write(line):
            log.write(line + '\n')
            log.flush()

        returncode, tail = stream_process(command, env, write)
    if returncode < 0 and placement.in_job:
        raise TrainingStopped(f'training of {task.run.name} killed by signal {-returncode}')
    if returncode != 0:
        raise RunFailed(task.run.name, f'training exited with code {returncode}', task.log_path, tail[-FAILURE_TAIL:])


def trained_run_record(task, device=None, threads=None):
    """The record of a trained run: its evaluation on every test set and its training logs (not written yet)."""
    weights = Path(task.cwd) / final_weights(task.run.name)
    param_key = 'params_ema' if task.options['train'].get('ema_decay', 0) > 0 else 'params'
    specs, skipped = (task.metrics.specs, task.metrics.skipped) if task.metrics else ([], {})
    rows = evaluate_run(task.study, task.run, weights, task.datasets, device, threads, specs, param_key)
    return {
        'network': task.run.network,
        'scale': task.run.scale,
        'seed': task.run.seed,
        'name': task.run.name,
        'stage': task.run.stage,
        'starts_from': task.run.starts_from,
        'options_digest': task.digest,
        'weights': str(final_weights(task.run.name)),
        'param_key': param_key,
        'rows': rows,
        'skipped_metrics': skipped,
        'training': read_training_logs(task.experiment_dir),
    }


def produce_outcome(task, placement=Placement()):
    """Turn one planned run into its outcome: train it (resuming), then evaluate it and write its record.

    Every task of a DDP job calls it; the first one evaluates.

    Args:
        task (RunTask): The run.
        placement (Placement): Where it runs. Default: this process, the study's threads, the GPU if any.

    Returns:
        RunOutcome: Its record or its failure; neither when it trained only (``placement.evaluate`` False, or
        not the first task of its DDP job).

    Raises:
        TrainingStopped: In a SLURM job that is being stopped.
    """
    started = time.time()
    if os.getcwd() != task.cwd:  # a SLURM job: relative paths are the dispatcher's
        os.chdir(task.cwd)
    try:
        write_atomic(task.options_path, yaml.safe_dump(task.options, sort_keys=False))
        train(task, placement)
        first = not placement.launcher or int(os.environ.get('SLURM_PROCID', '0')) == 0
        if not (placement.evaluate and first):
            return RunOutcome(task.run.name, wall_s=time.time() - started)
        record = trained_run_record(task, placement.device, placement.threads)
    except RunFailed as error:
        return RunOutcome(task.run.name, failure=error)
    except Exception as error:  # noqa: BLE001  (one broken run must not stop the others)
        return _crashed(task, f'{type(error).__name__}: {error}')
    return _finished(task, record, time.time() - started)


def evaluate_here(task, trained):
    """``evaluate: local``: evaluate on this machine a run that a job trained, and write its record.

    Args:
        task (RunTask): The run.
        trained (RunOutcome): The outcome of its training (``trained_only``).

    Returns:
        RunOutcome: Its record or the evaluation's failure.
    """
    try:
        record = trained_run_record(task)
    except Exception as error:  # noqa: BLE001
        return _crashed(task, f'evaluation failed: {type(error).__name__}: {error}')
    return _finished(task, record, trained.wall_s)


def _crashed(task, reason):
    """The outcome of a run whose work raised (called in the ``except`` block: the traceback's tail is kept)."""
    lines = traceback.format_exc().splitlines()[-FAILURE_TAIL:]
    return RunOutcome(task.run.name, failure=RunFailed(task.run.name, reason, task.log_path, lines))


def _finished(task, record, wall_s):
    record['wall_s'] = wall_s
    RecordStore(task.study).write_run(task.run.name, record)
    return RunOutcome(task.run.name, record=record, wall_s=wall_s)
