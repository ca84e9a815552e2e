"""Executors of a study: where the runs that lack a record are turned into records, and how many at once.

:func:`san_plugin.study.runner.run_study` hands an executor one function, ``produce_record(task, **placement)``
(train one planned run, then evaluate it), and the tasks whose records are missing; the executor yields
``(task, record or RunFailed)`` as runs end. The runner's loop is the same for every executor.

- :class:`LocalExecutor` (``executor: local``): a ``concurrent.futures`` thread pool of ``max_parallel`` workers on
  this machine; each run is its own ``python -m basicsr.train`` process with its own GPUs (``CUDA_VISIBLE_DEVICES``)
  or its own ``threads`` CPU threads.
- :class:`SlurmExecutor` (``executor: slurm``): one SLURM job per run, submitted with submitit. Each job's id is
  recorded in ``<out>/runs/<run>.job.json``; a dispatcher started again re-attaches to its queued and running jobs
  instead of submitting them twice. A job that ends without a result (time-out, preemption, ``scancel``, node
  failure) is submitted again, at most ``slurm.max_retries`` times, and resumes from its last checkpoint.
"""

import concurrent.futures
import getpass
import json
import os
import queue
import shutil
import subprocess
import time
from pathlib import Path

import submitit
import torch
from submitit.helpers import Checkpointable

from san_plugin.benchmark.report import write_json
from san_plugin.study.options import Execution, StudyError


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
    """Raised in a SLURM job whose training was killed by a signal (``scancel``, a node's OOM killer): the job then
    leaves no result (submitit records only ``Exception``s), so the dispatcher submits it again."""


class RecordJob(Checkpointable):
    """The job of one run: calls the produce function; on a time-out or preemption, submitit requeues the same call
    under the same job id (``checkpoint``), and the training resumes from its last checkpoint.

    Args:
        produce (callable): ``produce_record``.
    """

    def __init__(self, produce):
        self.produce = produce

    def __call__(self, *args, **kwargs):
        return self.produce(*args, **kwargs)


def cpu_count():
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1


class LocalExecutor:
    """Runs on this machine, ``max_parallel`` at once, each with its own slot of GPUs or CPU threads.

    Args:
        max_parallel (int): Runs at once.
        slots (list[dict]): One placement per concurrent run, passed to the produce function as keyword arguments
            (``env``: variables of its training process, ``device``: where it is evaluated).
    """

    def __init__(self, max_parallel, slots):
        self.max_parallel = max_parallel
        self.slots = slots
        self.describe = f'local, {max_parallel} run(s) at once'
        self.processes_per_run = 1

    def records(self, produce, tasks):
        """Yield ``(task, record or RunFailed)`` for each task as its run ends (see the module docstring)."""
        free = queue.Queue()
        for slot in self.slots:
            free.put(slot)

        def placed(task):
            slot = free.get()
            try:
                return produce(task, **slot)
            finally:
                free.put(slot)

        pool = concurrent.futures.ThreadPoolExecutor(self.max_parallel, thread_name_prefix='study-run')
        try:
            futures = {pool.submit(placed, task): task for task in tasks}
            for future in concurrent.futures.as_completed(futures):
                yield futures[future], future.result()
        finally:
            # On a stop the runner terminates the training processes; the workers then end on their own.
            pool.shutdown(wait=False, cancel_futures=True)


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
            {'env': {'CUDA_VISIBLE_DEVICES': ','.join(group)}, 'device': f'cuda:{ids.index(group[0])}'}
            for _ in range(execution.runs_per_gpu)
            for group in groups
        ]
        limit = f'{len(groups)} group(s) of gpus_per_run {per_run} GPU(s) x runs_per_gpu {execution.runs_per_gpu}'
    else:
        threads = study.threads or max(cores // (execution.max_parallel or 1), 1)
        slots = [{'env': {'CUDA_VISIBLE_DEVICES': ''}, 'device': 'cpu', 'threads': threads}]
        slots *= max(cores // threads, 1) if execution.max_parallel is None else execution.max_parallel
        limit = None
    max_parallel = execution.max_parallel or len(slots)
    if limit is not None and max_parallel > len(slots):
        raise StudyError(
            f'{source}: max_parallel: {max_parallel} runs at once need more GPUs than {limit} (= {len(slots)}); '
            'raise runs_per_gpu to share GPUs'
        )
    return LocalExecutor(max_parallel, slots[:max_parallel])


def make_executor(study, log=print):
    """The executor that the study's keys ask for, checked against this machine before anything is trained.

    Args:
        study (Study): The study.
        log (callable): Called with progress lines (SLURM job submissions). Default: print.

    Returns:
        LocalExecutor | SlurmExecutor: The executor.
    """
    execution = study.execution or Execution()
    if execution.executor == 'local':
        return local_executor(study, execution)
    return SlurmExecutor(study, execution.slurm, log=log)


# SLURM

# Parameters of the slurm block and the submitit.SlurmExecutor parameter each sets (None: not passed to sbatch).
SLURM_PARAMETERS = {'partition': 'partition', 'account': 'account', 'qos': 'qos', 'time': 'time',
                    'cpus_per_run': 'cpus_per_task', 'gpus_per_run': 'gpus_per_node',
                    'tasks_per_run': 'ntasks_per_node'}  # fmt: skip
# Words of an sbatch error and the key of the slurm block that set the value it complains about.
SLURM_ERROR_KEYS = (('account', 'slurm.account'), ('qos', 'slurm.qos'), ('partition', 'slurm.partition'),
                    ('time limit', 'slurm.time'), ('gres', 'slurm.gpus_per_run'), ('gpu', 'slurm.gpus_per_run'),
                    ('memory', 'slurm.mem'), ('cpu', 'slurm.cpus_per_run'), ('task', 'slurm.tasks_per_run'),
                    ('node', 'slurm.sbatch'))  # fmt: skip


def slurm_error_key(message):
    """The ``slurm`` key that most likely set the value an sbatch error message complains about."""
    lowered = message.lower()
    return next((key for word, key in SLURM_ERROR_KEYS if word in lowered), 'slurm')


# States of a job that has ended for good (PREEMPTED is not one: a preempted job may be requeued under its id).
ENDED = ('COMPLETED', 'CANCELLED', 'FAILED', 'TIMEOUT', 'NODE_FAIL', 'BOOT_FAIL', 'DEADLINE', 'OUT_OF_MEMORY')


def squeue(*args):
    """Lines of ``squeue -h ARGS``, or None when squeue failed otherwise than for an unknown job id."""
    try:
        out = subprocess.run(['squeue', '-h', *args], capture_output=True, text=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return [] if 'invalid job id' in out.stderr.lower() else None
    return out.stdout.split()


def job_state(job_id):
    """'active' while SLURM holds a job, 'ended' once it is gone or ended, 'unknown' when squeue failed."""
    lines = squeue('-j', str(job_id), '-o', '%T')
    if lines is None:
        return 'unknown'
    return 'ended' if not lines or lines[0] in ENDED else 'active'


class SlurmExecutor:
    """One SLURM job per run through submitit; see the module docstring.

    Args:
        study (Study): The study (``out``, ``threads``, ``source``).
        slurm (dict): The checked ``slurm`` block.
        log (callable): Called with submission and retry lines. Default: print.
    """

    def __init__(self, study, slurm, log=print):
        for command in ('sbatch', 'srun', 'squeue'):
            if shutil.which(command) is None:
                raise StudyError(
                    f"{study.source}: executor: slurm needs SLURM's {command} on PATH, and this machine has none "
                    '(use executor: local, or run tools/compare.py on a SLURM login node)'
                )
        self.study, self.slurm, self.log, self.poll_s = study, slurm, log, slurm['poll_s']
        self.folder = Path(slurm['folder'] or study.out / 'slurm').resolve()
        self.max_retries = slurm['max_retries']
        self.cap = slurm['max_parallel']
        self.executor = submitit.SlurmExecutor(folder=self.folder, max_num_timeout=slurm['max_retries'])
        parameters = {'additional_parameters': dict(slurm['sbatch'])}
        if slurm['mem'] is not None:  # sbatch's own notation ('32G'), which submitit's mem (in GB) would reject
            parameters['additional_parameters']['mem'] = str(slurm['mem'])
        for key, name in SLURM_PARAMETERS.items():
            if slurm[key] is not None:
                parameters[name] = slurm[key]
        if not slurm['gpus_per_run']:
            parameters.pop('gpus_per_node', None)
        tasks = slurm['tasks_per_run'] or max(slurm['gpus_per_run'], 1)
        batch = study.train['batch_size']
        if batch % tasks:
            key = 'slurm.tasks_per_run' if slurm['tasks_per_run'] else 'slurm.gpus_per_run'
            raise StudyError(
                f'{study.source}: {key}: {tasks} DDP processes per run cannot share train.batch_size {batch} evenly'
            )
        self.processes_per_run = tasks
        parameters['ntasks_per_node'] = tasks
        if slurm['cpus_per_run'] is None and study.threads:
            parameters['cpus_per_task'] = study.threads
        try:
            self.executor.update_parameters(**parameters)
        except ValueError as error:
            raise StudyError(f'{study.source}: slurm.sbatch: {error}') from error
        self.placement = {'launcher': 'slurm' if tasks > 1 else None, 'threads': parameters.get('cpus_per_task'),
                          'in_job': True}  # fmt: skip
        self.describe = f'slurm, {tasks} task(s) per job, ' + (f'{self.cap} job(s) at once' if self.cap else 'no cap')

    def _job_file(self, task):
        return self.study.out / 'runs' / f'{task.run.name}.job.json'

    def _submit(self, produce, task, history):
        self.executor.update_parameters(job_name=task.run.name)
        try:
            job = self.executor.submit(RecordJob(produce), task, **self.placement)
        except Exception as error:  # submitit raises FailedJobError or CalledProcessError with sbatch's message
            message = str(getattr(error, 'stderr', None) or error).strip()
            key = slurm_error_key(message)
            raise StudyError(
                f'{self.study.source}: {key}: SLURM refused the job of {task.run.name}: {message}'
            ) from error
        job = submitit.SlurmJob(folder=self.folder, job_id=str(job.job_id))  # task 0: the one that evaluates
        history = [*history, str(job.job_id)]
        write_json(self._job_file(task), {'run': task.run.name, 'digest': task.digest, 'folder': str(self.folder),
                                          'job_ids': history})  # fmt: skip
        self.log(f'{task.run.name}: submitted as SLURM job {job.job_id} (attempt {len(history)})')
        return job, history

    def _history(self, task):
        """Job ids of the task's earlier attempts, from ``<out>/runs/<run>.job.json`` (empty for changed options)."""
        path = self._job_file(task)
        if not path.is_file():
            return []
        info = json.loads(path.read_text(encoding='utf-8'))
        return [str(i) for i in info.get('job_ids', [])] if info.get('digest') == task.digest else []

    def _attach(self, task, history):
        """The task's last job if it is still queued or running or has a record to give, else None.

        A job submitted by a dispatcher killed before it recorded the id is found by its name (the run's).
        """
        mine = squeue('-u', getpass.getuser(), '-n', task.run.name, '-o', '%i') or []
        queued = [i for i in mine if i not in history]
        history += queued
        if not history:
            return None
        job = submitit.SlurmJob(folder=self.folder, job_id=history[-1])
        if job.paths.result_pickle.exists():
            try:
                job.result()
            except Exception:  # noqa: BLE001  (it failed: the same command again submits the run again)
                return None
        elif job_state(job.job_id) == 'ended':
            return None
        self.log(f'{task.run.name}: re-attached to SLURM job {job.job_id}')
        return job

    def _outcome(self, job, task):
        """None while the job is queued or running; else its record or a RunFailed, or 'retry' when it was killed."""
        if job.paths.result_pickle.exists():
            try:
                return job.result()
            except Exception as error:  # noqa: BLE001  (submitit's FailedJobError: the job raised)
                lines = str(error).splitlines()[-20:]
                return RunFailed(task.run.name, f'SLURM job {job.job_id} raised', job.paths.stderr, lines)
        if job_state(job.job_id) != 'ended':
            return None
        if task.record_path.is_file():  # the job wrote the record, then ended before its result file
            return json.loads(task.record_path.read_text(encoding='utf-8'))
        time.sleep(1)  # a result file written by another node may take a moment to show
        return None if job.paths.result_pickle.exists() else 'retry'

    def records(self, produce, tasks):
        """Yield ``(task, record or RunFailed)`` for each task as its job ends (see the module docstring)."""
        waiting, active = [], {}  # active: run name -> [task, job, job ids so far, resubmissions in this session]
        for task in tasks:
            history = self._history(task)
            job = self._attach(task, history)
            if job is None:
                waiting.append((task, history))
            else:
                active[task.run.name] = [task, job, history, 0]
        while waiting or active:
            while waiting and (self.cap is None or len(active) < self.cap):
                task, history = waiting.pop(0)
                active[task.run.name] = [task, *self._submit(produce, task, history), 0]
            for name, (task, job, history, retries) in list(active.items()):
                outcome = self._outcome(job, task)
                if outcome is None:
                    continue
                if outcome == 'retry' and retries < self.max_retries:
                    self.log(
                        f'{name}: SLURM job {job.job_id} ended without a result (time-out, preemption or '
                        f'scancel); submitting it again ({retries + 1} of slurm.max_retries {self.max_retries})'
                    )
                    active[name] = [task, *self._submit(produce, task, history), retries + 1]
                    continue
                if outcome == 'retry':
                    outcome = RunFailed(
                        name, f'SLURM job {job.job_id} ended without a result (time-out, preemption or scancel) '
                        f'after slurm.max_retries {self.max_retries} resubmission(s); SLURM output: '
                        f'{job.paths.stderr}', task.log_path, _tail(task.log_path))  # fmt: skip
                del active[name]
                yield task, outcome
            if active:
                time.sleep(self.poll_s)


def _tail(path, lines=20):
    path = Path(path)
    if not path.is_file():
        return []
    return path.read_text(encoding='utf-8', errors='replace').splitlines()[-lines:]
