"""Run a study: prepare the data, train every run through ``python -m basicsr.train --auto_resume``, evaluate it with
the quality benchmark's code, measure each network's peak memory in fresh processes, and write the report.

Each finished run leaves a record, ``<out>/runs/<run>.json`` (its evaluation, training times and validation curve,
and the fingerprint of its options); a study started again skips the runs that have one and resumes the others from
their last checkpoint (BasicSR's ``--auto_resume``), so a killed study never retrains a finished run.

:func:`produce_record` turns one planned run into its record (train, then evaluate); :func:`run_study` asks the
study's executor (:mod:`san_plugin.study.execution`: local processes or SLURM jobs) for the records it lacks. A run
that fails does not stop the others; the study ends with :class:`StudyFailed` naming each failed run, its log file
and its last lines. Peak memory is measured after every run has been trained and evaluated, one process at a time.
"""

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import yaml

from san_plugin.benchmark.datasets import DatasetSpec
from san_plugin.benchmark.models import ModelSpec
from san_plugin.benchmark.quality import QualityConfig, run_quality
from san_plugin.benchmark.report import write_atomic, write_json
from san_plugin.benchmark.speed import Variant, run_in_subprocess
from san_plugin.data.prepare import prepare_benchmark, prepare_train
from san_plugin.study.execution import RunFailed, TrainingStopped, make_executor
from san_plugin.study.logs import read_training_logs
from san_plugin.study.options import StudyError
from san_plugin.study.plan import Run, check_networks, network_opt, options_digest, plan_runs, training_options
from san_plugin.study.progress import Progress, clock
from san_plugin.study.report import write_report
from san_plugin.utils.threads import torch_threads

OUTPUT_TAIL = 40
FAILURE_TAIL = 15
# Training processes started by this process, so that a stopped study stops all of them (see stop_children).
_CHILDREN = set()
_CHILDREN_LOCK = threading.Lock()
_STOPPING = threading.Event()


class StudyFailed(RuntimeError):
    """Some runs failed; the others finished. The message names each failed run, its log file and last lines."""


def prepare_data(study, log=print):
    """Training LMDBs from ``train.data`` and the test sets given as ``images`` folders, with ``prepare_data``'s code.

    Returns:
        tuple[dict[int, Path], list[DatasetSpec]]: The training LMDBs (key 1 HR, key s the LR of scale s) and the
        test sets as benchmark data set specs (``{scale}`` in their folders).
    """
    train = study.train
    log(f'preparing training data from {train["data"]} under {study.data_root}')
    lmdbs = prepare_train(
        train['data'],
        name=Path(train['data']).resolve().name,
        output_root=study.data_root,
        scales=study.scales,
        crop_size=train['crop_size'],
        step=train['step'],
    )
    specs = []
    for test_set in study.test_sets:
        origin = f'{study.source}: test.datasets:'
        if test_set.images is None:
            specs.append(DatasetSpec(test_set.name, test_set.hr, test_set.lr, origin))
            continue
        root = prepare_benchmark(test_set.images, test_set.name, study.data_root, scales=study.scales)
        specs.append(DatasetSpec(test_set.name, f'{root}/HR/x{{scale}}', f'{root}/LR_bicubic/x{{scale}}', origin))
    return lmdbs, specs


def eval_device():
    """Where the trained networks are evaluated: the GPU when there is one, as ``num_gpu: auto`` trains."""
    return 'cuda' if torch.cuda.is_available() else 'cpu'


@dataclass
class RunTask:
    """Everything a worker (a thread here or a SLURM job) needs to turn one planned run into its record.

    Attributes:
        study (Study): The study.
        run (Run): The run.
        options (dict): Its BasicSR options.
        digest (str): Their fingerprint (see :func:`san_plugin.study.plan.options_digest`).
        datasets (list[DatasetSpec]): The test sets.
        cwd (str): The study's working directory (BasicSR's ``experiments/`` and relative paths).
        evaluate (bool): Evaluate where it trained (else the dispatcher does, see ``evaluate: local``).
    """

    study: object
    run: Run
    options: dict
    digest: str
    datasets: list
    cwd: str
    evaluate: bool = True

    @property
    def record_path(self):
        return Path(self.cwd) / self.study.out / 'runs' / f'{self.run.name}.json'

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


def thread_env(threads):
    """Environment of a subprocess limited to ``threads`` CPU threads (unchanged for None)."""
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def stream_process(command, env, on_line):
    """Run ``command``, calling ``on_line`` with each line of its output; return its exit code and last lines.

    If anything stops the caller meanwhile (an error in ``on_line``, Ctrl-C, or SIGTERM after
    :func:`stop_on_sigterm`), the child is terminated before the exception goes on: a stopped study leaves no training
    running behind it (the run resumes from its last checkpoint next time).

    Args:
        command (list[str]): The command.
        env (dict): Its environment.
        on_line (callable): Called with each output line (stdout and stderr), without its line break.

    Returns:
        tuple[int, list[str]]: Exit code and the last ``OUTPUT_TAIL`` lines.
    """
    tail = collections.deque(maxlen=OUTPUT_TAIL)
    with _CHILDREN_LOCK:
        if _STOPPING.is_set() and threading.current_thread() is not threading.main_thread():
            raise RuntimeError('the study is stopping')  # a worker of a stopped study starts nothing new
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        _CHILDREN.add(process)
    with process:
        try:
            for line in process.stdout:
                tail.append(line.rstrip())
                on_line(line.rstrip())
        except BaseException:
            process.terminate()
            raise
        finally:
            with _CHILDREN_LOCK:
                _CHILDREN.discard(process)
    return process.returncode, list(tail)


def stop_children():
    """Terminate every training process this process started (a stopped study; each resumes next time)."""
    with _CHILDREN_LOCK:
        _STOPPING.set()
        for process in _CHILDREN:
            process.terminate()


def stop_on_sigterm():
    """Turn SIGTERM into ``SystemExit`` in this process, so that :func:`stream_process` stops its child too."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def train(task, env=None, threads=None, launcher=None, in_job=False):
    """Train one run: ``python -m basicsr.train -opt OPTIONS --auto_resume``, its output appended to its log file.

    Args:
        task (RunTask): The run.
        env (dict | None): Variables for the training process (its GPUs). Default: None.
        threads (int | None): Its CPU threads (default: the study's ``threads``).
        launcher (str | None): BasicSR's ``--launcher`` (``slurm`` for DDP inside a SLURM job). Default: None.
        in_job (bool): It runs in a SLURM job. Default: False.

    Raises:
        RunFailed: The training failed; names the log file and holds its last lines.
        TrainingStopped: In a SLURM job, a signal killed the training (the job is being cancelled).
    """
    command = [sys.executable, '-m', 'basicsr.train', '-opt', str(task.options_path), '--auto_resume']
    env = {**thread_env(threads or task.study.threads), 'PYTHONUNBUFFERED': '1', **(env or {})}
    if launcher:
        command += ['--launcher', launcher]
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
    if returncode < 0 and in_job:
        raise TrainingStopped(f'training of {task.run.name} killed by signal {-returncode}')
    if returncode != 0:
        raise RunFailed(task.run.name, f'training exited with code {returncode}', task.log_path, tail[-FAILURE_TAIL:])


def evaluate(task, device=None, threads=None):
    """The record of a trained run: its evaluation on every test set and its training logs (not written yet)."""
    weights = task.experiment_dir / 'models' / 'net_g_latest.pth'
    study = task.study
    rows = evaluate_run(study, task.run, weights, task.datasets, device, threads)
    record = {
        **asdict(task.run),
        'options_digest': task.digest,
        'weights': str(Path('experiments') / task.run.name / 'models' / 'net_g_latest.pth'),
        'rows': rows,
        'training': read_training_logs(task.experiment_dir),
    }
    return record


def produce_record(task, env=None, device=None, threads=None, launcher=None, in_job=False):
    """Turn one planned run into its record: train it (resuming), then evaluate it and write its record file.

    Runs where the executor puts it: in a thread of this process or in a SLURM job (every task of a DDP job calls
    it; the first one evaluates).

    Args:
        task (RunTask): The run.
        env (dict | None): Variables for the training process (e.g. ``CUDA_VISIBLE_DEVICES``). Default: None.
        device (str | None): Where to evaluate (default: the GPU when there is one).
        threads (int | None): CPU threads of training and evaluation (default: the study's ``threads``).
        launcher (str | None): BasicSR's ``--launcher`` for DDP. Default: None.
        in_job (bool): It runs in a SLURM job (a training killed by a signal then leaves no result, see
            :class:`san_plugin.study.execution.TrainingStopped`). Default: False.

    Returns:
        dict | RunFailed | None: The record (without ``rows`` when ``task.evaluate`` is False); a RunFailed when
        training or evaluation failed; None in the other tasks of a DDP job.
    """
    started = time.time()
    if os.getcwd() != task.cwd:  # a SLURM job: relative paths are the dispatcher's
        os.chdir(task.cwd)
    try:
        options = yaml.safe_dump(task.options, sort_keys=False)
        write_atomic(task.options_path, options)
        train(task, env, threads, launcher, in_job)
        if int(os.environ.get('SLURM_PROCID', '0')) != 0 and launcher:
            return None
        if not task.evaluate:
            return {'wall_s': time.time() - started}
        record = evaluate(task, device, threads)
    except RunFailed as error:
        return error
    except Exception as error:  # noqa: BLE001  (one broken run must not stop the others)
        lines = traceback.format_exc().splitlines()[-FAILURE_TAIL:]
        return RunFailed(task.run.name, f'{type(error).__name__}: {error}', task.log_path, lines)
    record['wall_s'] = time.time() - started
    write_json(task.record_path, record)
    return record


def evaluate_run(study, run, weights, datasets, device=None, threads=None):
    """PSNR/SSIM, parameters, FLOPs and latency of a trained run on every test set (the quality benchmark's code)."""
    spec = ModelSpec(run.network, network_opt(study, run.network, run.scale), str(weights), f'networks.{run.network}')
    config = QualityConfig(
        models=[spec],
        datasets=datasets,
        scales=[run.scale],
        out=str(study.out),
        device=device or eval_device(),
        threads=threads or study.threads,
        flops_input=study.flops_input,
    )
    rows, _ = run_quality(config, show_progress=False)
    return rows


def evaluate_bicubic(study, scale, datasets):
    """PSNR/SSIM of bicubic upscaling on every test set at ``scale`` (the quality benchmark's code)."""
    config = QualityConfig(
        models=[ModelSpec('bicubic')], datasets=datasets, scales=[scale], out=str(study.out), threads=study.threads
    )
    rows, _ = run_quality(config, show_progress=False)
    return rows


def measure_memory(study, network, scale):
    """Peak memory of one network in fresh processes: full-image inference at ``test.memory_input`` and one training
    step of the study's batch, as ``tools/benchmark.py speed`` measures it.

    Returns:
        dict: ``infer_peak_mb``, ``train_peak_mb`` (None where a measurement failed), ``errors`` and the inputs.
    """
    base = {'network_opt': network_opt(study, network, scale), 'device': eval_device(), 'threads': study.threads}
    base['variant'] = asdict(Variant())
    lr_patch = study.train['gt_size'] // scale
    jobs = {
        'infer_peak_mb': {'batch': 1, 'size': study.memory_input, 'train': False},
        'train_peak_mb': {'batch': study.train['batch_size'], 'size': lr_patch, 'train': True},
    }
    result = {'errors': {}}
    for key, job in jobs.items():
        value, error = run_in_subprocess({**base, **job})
        result[key] = value
        if error:
            result['errors'][key] = error
    result['infer_input'] = f'1x3x{study.memory_input}x{study.memory_input}'
    result['train_input'] = f'{study.train["batch_size"]}x3x{lr_patch}x{lr_patch}'
    return result


def recorded_memory(study, records_dir, network, scale):
    """:func:`measure_memory`'s result kept in ``records_dir``: measured once for the network's options, the inference
    input and the training batch, then read back (a study run again, or another study with the same values).

    Args:
        study (Study): The study.
        records_dir (Path): Folder of the study's records (``<out>/runs``).
        network (str): Network name of the study.
        scale (int): Upscaling factor.

    Returns:
        dict: See :func:`measure_memory`.
    """
    key = {'network_g': network_opt(study, network, scale), 'memory_input': study.memory_input,
           'batch_size': study.train['batch_size'], 'gt_size': study.train['gt_size']}  # fmt: skip
    path = records_dir / f'memory_{network}_x{scale}.json'
    return cached(path, key, lambda: measure_memory(study, network, scale))


def read_record(path, digest, run_name, source):
    """The record of a finished run, or None; raises if it was trained with other options."""
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding='utf-8'))
    if record.get('options_digest') != digest:
        raise StudyError(
            f'{source}: run {run_name} was trained with other options than the study now gives; to retrain it, '
            f'remove {path} and experiments/{run_name}/ (or give the study another name)'
        )
    return record


def cached(path, key, compute):
    """The value stored in ``path`` (JSON) for ``key``, else compute it, store it with ``key`` and return it."""
    if path.is_file():
        stored = json.loads(path.read_text(encoding='utf-8'))
        if stored.get('key') == key:
            return stored['value']
    value = compute()
    write_json(path, {'key': key, 'value': value})
    return value


def run_study(study, log=print):
    """Run a checked study (see :func:`san_plugin.study.options.read_study`) and write its report.

    Args:
        study (Study): The study.
        log (callable): Called with each progress line. Default: print.

    Returns:
        dict: The report (see :func:`san_plugin.study.report.build_report`).

    Raises:
        StudyError: A key of the study is wrong (checked before any training).
        StudyFailed: Some runs failed; every other run was trained and recorded (the same command again retries
            the failed ones only).
    """
    started = time.time()
    params = check_networks(study)
    executor = make_executor(study, log)
    runs = plan_runs(study)
    lmdbs, datasets = prepare_data(study, log)
    val_set = next(d for d in datasets if d.name == study.val_dataset)
    records_dir = study.out / 'runs'
    evaluate_in_job = study.execution is None or study.execution.evaluate == 'job'
    records, tasks = {}, []
    for run in runs:
        options = training_options(study, run, lmdbs, val_set)
        if executor.processes_per_run > 1:  # DDP: the same total batch as one process would train
            train_set = options['datasets']['train']
            train_set['batch_size_per_gpu'] = study.train['batch_size'] // executor.processes_per_run
        task = RunTask(study, run, options, options_digest(options), datasets, os.getcwd(), evaluate_in_job)
        record = read_record(records_dir / f'{run.name}.json', task.digest, run.name, study.source)
        if record is None:
            tasks.append(task)
        else:
            log(f'[{len(records) + 1}/{len(runs)}] {run.name}: finished before, skipped')
            records[run.name] = record
    failures = []
    if tasks:
        log(f'training {len(tasks)} run(s): {executor.describe}')
    _STOPPING.clear()
    progress = Progress(tasks, len(runs), len(records), study.train['total_iter'], _parallel(executor, tasks), log)
    try:
        # Runs evaluated in this process at once (one per concurrent run) share torch's process-wide thread count:
        # set it to the study's for the whole loop, so that each evaluation's own setting changes nothing.
        with progress, torch_threads(study.threads):
            for task, outcome in executor.records(produce_record, tasks):
                if isinstance(outcome, dict) and 'rows' not in outcome:  # evaluate: local
                    outcome = _evaluate_here(task, outcome)
                progress.finished(task, outcome.get('wall_s') if isinstance(outcome, dict) else None)
                if isinstance(outcome, RunFailed):
                    log(f'{outcome}')
                    failures.append(outcome)
                else:
                    records[task.run.name] = outcome
    except BaseException:
        stop_children()
        raise
    if failures:
        raise StudyFailed(
            f'{study.source}: {len(failures)} of {len(runs)} run(s) failed; the others are recorded. Run the same '
            'command again to retry the failed ones (finished runs are kept).\n' + '\n'.join(map(str, failures))
        )
    records = [records[run.name] for run in runs]
    memory = {}
    for network in study.networks:
        for scale in study.scales:
            log(f'peak memory of {network} x{scale} (fresh processes, one at a time)')
            memory[network, scale] = recorded_memory(study, records_dir, network, scale)
    bicubic = []
    for scale in study.scales:
        path = records_dir / f'bicubic_x{scale}.json'
        key = [asdict(d) for d in datasets]
        bicubic += cached(path, key, lambda s=scale: evaluate_bicubic(study, s, datasets))
    report = write_report(study, records, bicubic, memory, params)
    log(f'study {study.name} finished in {clock(time.time() - started)}; report in {study.out}')
    return report


def _parallel(executor, tasks):
    cap = getattr(executor, 'max_parallel', None) or getattr(executor, 'cap', None) or len(tasks)
    return max(min(cap, len(tasks)), 1)


def _evaluate_here(task, trained):
    """``evaluate: local``: evaluate on this machine a run that a job trained, and write its record."""
    try:
        record = evaluate(task)
    except Exception as error:  # noqa: BLE001
        return RunFailed(task.run.name, f'evaluation failed: {type(error).__name__}: {error}', task.log_path,
                         traceback.format_exc().splitlines()[-FAILURE_TAIL:])  # fmt: skip
    record['wall_s'] = trained.get('wall_s')
    write_json(task.record_path, record)
    return record
