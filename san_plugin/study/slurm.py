"""The SLURM executor of a study (``executor: slurm``): one SLURM job per run, submitted with submitit from the
machine that runs ``tools/compare.py`` (the dispatcher), with the local executor's interface (see
:mod:`san_plugin.study.execution`).

Each job's id is recorded (:meth:`~san_plugin.study.records.RecordStore.write_job_ids`); a dispatcher started again
re-attaches to its queued and running jobs instead of submitting them twice. The dispatcher is the one retry layer: a
job that ends without a result (time-out, preemption, ``scancel``, node failure) is submitted again and resumes from
its last checkpoint, at most ``slurm.max_retries`` times per run; submitit itself requeues nothing (a job stops on its
time-out signal, :class:`RunJob`). A job that SLURM requeues itself (a preemption with ``PreemptMode=REQUEUE``,
``scontrol requeue``) keeps its id, and the dispatcher waits for it. With ``evaluate: local`` the jobs only train and
the executor evaluates each trained run on this machine before yielding its outcome.
"""

import getpass
import logging
import shutil
import signal
import subprocess
import time
from pathlib import Path

import submitit

from san_plugin.study.options import StudyError
from san_plugin.study.processes import raise_on_signal
from san_plugin.study.records import RecordStore
from san_plugin.study.work import Placement, RunFailed, RunOutcome, TrainingStopped, evaluate_here

logger = logging.getLogger(__name__)


def _stopped(signum):
    return TrainingStopped(f'the job got signal {signal.Signals(signum).name} (time-out or preemption)')


class RunJob:
    """The SLURM job of one run: calls the work function, and stops when SLURM announces its end (submitit's
    time-out or preemption signal, ``--signal=USR2@90``): the training is terminated and the job leaves no result,
    so that the dispatcher submits it again (submitit's own requeue would be a second retry layer).

    Args:
        work (callable): ``produce_outcome``.
    """

    def __init__(self, work):
        self.work = work

    def __call__(self, task, placement):
        raise_on_signal(getattr(signal, f'SIG{submitit.JobEnvironment.USR_SIG}'), _stopped)
        return self.work(task, placement)


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
        study (Study): The study (``out``, ``threads``, ``source``, ``train.batch_size``).
        slurm (dict): The checked ``slurm`` block.
    """

    def __init__(self, study, slurm):
        for command in ('sbatch', 'srun', 'squeue'):
            if shutil.which(command) is None:
                raise StudyError(
                    f"{study.source}: executor: slurm needs SLURM's {command} on PATH, and this machine has none "
                    '(use executor: local, or run tools/compare.py on a SLURM login node)'
                )
        self.study, self.slurm, self.poll_s = study, slurm, slurm['poll_s']
        self.store = RecordStore(study)
        self.folder = Path(slurm['folder'] or study.out / 'slurm').resolve()
        self.max_retries = slurm['max_retries']
        self.max_parallel = slurm['max_parallel']
        self.executor = submitit.SlurmExecutor(folder=self.folder, max_num_timeout=0)
        parameters = {'additional_parameters': dict(slurm['sbatch'])}
        if slurm['mem'] is not None:  # sbatch's own notation ('32G'), which submitit's mem (in GB) would reject
            parameters['additional_parameters']['mem'] = str(slurm['mem'])
        for key, name in SLURM_PARAMETERS.items():
            if slurm[key] is not None:
                parameters[name] = slurm[key]
        if not slurm['gpus_per_run']:
            parameters.pop('gpus_per_node', None)
        tasks = slurm['tasks_per_run'] or max(slurm['gpus_per_run'], 1)
        batches = {'train.batch_size': study.train['batch_size']}
        if study.gan is not None:
            batches['gan.batch_size'] = study.gan['batch_size']
        for batch_key, batch in batches.items():
            if batch % tasks:
                key = 'slurm.tasks_per_run' if slurm['tasks_per_run'] else 'slurm.gpus_per_run'
                raise StudyError(
                    f'{study.source}: {key}: {tasks} DDP processes per run cannot share {batch_key} {batch} evenly'
                )
        self.processes_per_run = tasks
        parameters['ntasks_per_node'] = tasks
        if slurm['cpus_per_run'] is None and study.threads:
            parameters['cpus_per_task'] = study.threads
        try:
            self.executor.update_parameters(**parameters)
        except ValueError as error:
            raise StudyError(f'{study.source}: slurm.sbatch: {error}') from error
        self.placement = Placement(launcher='slurm' if tasks > 1 else None, threads=parameters.get('cpus_per_task'),
                                   in_job=True, evaluate=study.execution.evaluate == 'job')  # fmt: skip
        cap = f'{self.max_parallel} job(s) at once' if self.max_parallel else 'no cap'
        self.describe = f'slurm, {tasks} task(s) per job, {cap}'
        self._waiting = []  # (work, task, job ids so far)
        self._active = {}  # run name: [work, task, job, job ids so far, resubmissions by this dispatcher]

    def submit(self, work, task):
        """Re-attach to the run's job if it is still queued or running, else queue the run for submission."""
        history = self.store.job_ids(task.run.name, task.digest)
        job = self._attach(task, history)
        if job is None:
            self._waiting.append((work, task, history))
        else:
            self._active[task.run.name] = [work, task, job, history, 0]

    def outcomes(self):
        """Yield ``(task, RunOutcome)`` for each submitted run as its job ends (runs submitted meanwhile included),
        submitting the queued runs as the cap allows and each run that ended without a result again (see the module
        docstring)."""
        while self._waiting or self._active:
            while self._waiting and (self.max_parallel is None or len(self._active) < self.max_parallel):
                work, task, history = self._waiting.pop(0)
                self._active[task.run.name] = [work, task, *self._sbatch(work, task, history), 0]
            for name, (work, task, job, history, retries) in list(self._active.items()):
                outcome = self._outcome(job, task)
                if outcome is None:
                    continue
                if outcome == 'retry' and retries < self.max_retries:
                    logger.info(
                        f'{name}: SLURM job {job.job_id} ended without a result (time-out, preemption or '
                        f'scancel); submitting it again ({retries + 1} of slurm.max_retries {self.max_retries})'
                    )
                    self._active[name] = [work, task, *self._sbatch(work, task, history), retries + 1]
                    continue
                if outcome == 'retry':
                    failure = RunFailed(
                        name, f'SLURM job {job.job_id} ended without a result (time-out, preemption or scancel) '
                        f'after slurm.max_retries {self.max_retries} resubmission(s); SLURM output: '
                        f'{job.paths.stderr}', task.log_path, _tail(task.log_path))  # fmt: skip
                    outcome = RunOutcome(name, failure=failure)
                elif outcome.trained_only:
                    outcome = evaluate_here(task, outcome)
                del self._active[name]
                yield task, outcome
            if self._active:
                time.sleep(self.poll_s)

    def _sbatch(self, work, task, history):
        self.executor.update_parameters(job_name=task.run.name)
        try:
            job = self.executor.submit(RunJob(work), task, self.placement)
        except Exception as error:  # submitit raises FailedJobError or CalledProcessError with sbatch's message
            message = str(getattr(error, 'stderr', None) or error).strip()
            key = slurm_error_key(message)
            raise StudyError(
                f'{self.study.source}: {key}: SLURM refused the job of {task.run.name}: {message}'
            ) from error
        job = submitit.SlurmJob(folder=self.folder, job_id=str(job.job_id))  # task 0: the one that evaluates
        history = [*history, str(job.job_id)]
        self.store.write_job_ids(task.run.name, task.digest, self.folder, history)
        logger.info(f'{task.run.name}: submitted as SLURM job {job.job_id} (attempt {len(history)})')
        return job, history

    def _attach(self, task, history):
        """The task's last job if it is still queued or running or has a result to give, else None.

        A job submitted by a dispatcher killed before it recorded the id is found by its name (the run's).
        """
        mine = squeue('-u', getpass.getuser(), '-n', task.run.name, '-o', '%i') or []
        history += [i for i in mine if i not in history]
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
        logger.info(f'{task.run.name}: re-attached to SLURM job {job.job_id}')
        return job

    def _outcome(self, job, task):
        """None while the job is queued or running; else its RunOutcome, or 'retry' when it ended without one."""
        if job.paths.result_pickle.exists():
            try:
                return job.result()
            except Exception as error:  # noqa: BLE001  (submitit's FailedJobError: the job raised)
                lines = str(error).splitlines()[-20:]
                failure = RunFailed(task.run.name, f'SLURM job {job.job_id} raised', job.paths.stderr, lines)
                return RunOutcome(task.run.name, failure=failure)
        if job_state(job.job_id) != 'ended':
            return None
        record = self.store.read_run(task.run.name, task.digest)
        if record is not None:  # the job wrote the record, then ended before its result file
            return RunOutcome(task.run.name, record=record, wall_s=record.get('wall_s'))
        time.sleep(1)  # a result file written by another node may take a moment to show
        return None if job.paths.result_pickle.exists() else 'retry'


def _tail(path, lines=20):
    path = Path(path)
    if not path.is_file():
        return []
    return path.read_text(encoding='utf-8', errors='replace').splitlines()[-lines:]
