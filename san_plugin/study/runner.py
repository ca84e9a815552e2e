"""Run a study: prepare the data, train every run through ``python -m basicsr.train --auto_resume``, evaluate it with
the quality benchmark's code, measure each network's peak memory in fresh processes, and write the report.

Each finished run leaves a record, ``<out>/runs/<run>.json`` (its evaluation, training times and validation curve,
and the fingerprint of its options); a study started again skips the runs that have one and resumes the others from
their last checkpoint (BasicSR's ``--auto_resume``), so a killed study never retrains a finished run.
"""

import collections
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
import yaml

from san_plugin.benchmark.datasets import DatasetSpec
from san_plugin.benchmark.models import ModelSpec
from san_plugin.benchmark.quality import QualityConfig, run_quality
from san_plugin.benchmark.report import write_atomic, write_json
from san_plugin.benchmark.speed import Variant, run_in_subprocess
from san_plugin.data.prepare import prepare_benchmark, prepare_train
from san_plugin.study.logs import parse_iteration_line, read_training_logs
from san_plugin.study.options import StudyError
from san_plugin.study.plan import check_networks, network_opt, options_digest, plan_runs, training_options
from san_plugin.study.report import write_report

OUTPUT_TAIL = 40


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


class Progress:
    """Console progress of a study: one line per logged iteration (network, seed, iteration, loss, ETA)."""

    def __init__(self, total_runs, log=print):
        self.total_runs = total_runs
        self.done = 0
        self.durations = []
        self.log = log

    def study_eta(self, run_eta_seconds):
        """Seconds left in the study: this run's ETA plus the mean duration of the runs trained so far per run left."""
        left = self.total_runs - self.done - 1
        if not self.durations or run_eta_seconds is None:
            return None
        return run_eta_seconds + left * sum(self.durations) / len(self.durations)

    def line(self, run, total_iter, record):
        """Log one iteration record of ``run`` (see :func:`san_plugin.study.logs.parse_iteration_line`)."""
        loss = ', '.join(f'{k} {v:.4f}' for k, v in record['losses'].items()) or '-'
        eta = _seconds(record['eta'])
        study = self.study_eta(eta)
        study_text = f', study ETA {_clock(study)}' if study is not None else ''
        self.log(
            f'[{self.done + 1}/{self.total_runs}] {run.network} x{run.scale} seed {run.seed}: '
            f'iter {record["iter"]}/{total_iter}, {loss}, ETA {_clock(eta) if eta is not None else "-"}{study_text}'
        )


def _seconds(eta):
    if not eta:
        return None
    parts = eta.strip().split(', ')
    days = int(parts[0].split()[0]) if len(parts) == 2 else 0
    h, m, s = (int(float(v)) for v in parts[-1].split(':'))
    return max(days * 86400 + h * 3600 + m * 60 + s, 0)


def _clock(seconds):
    seconds = int(seconds)
    return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


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
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as process:
        try:
            for line in process.stdout:
                tail.append(line.rstrip())
                on_line(line.rstrip())
        except BaseException:
            process.terminate()
            raise
    return process.returncode, list(tail)


def stop_on_sigterm():
    """Turn SIGTERM into ``SystemExit`` in this process, so that :func:`stream_process` stops its child too."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def train_run(run, options_path, total_iter, progress, threads=None):
    """Train one run with ``python -m basicsr.train -opt OPTIONS --auto_resume``, printing its progress.

    Raises:
        RuntimeError: The training failed; the message holds the end of its output.
    """
    command = [sys.executable, '-m', 'basicsr.train', '-opt', str(options_path), '--auto_resume']
    env = {**thread_env(threads), 'PYTHONUNBUFFERED': '1'}

    def show_progress(line):
        record = parse_iteration_line(line)
        if record is not None:
            progress.line(run, total_iter, record)

    returncode, tail = stream_process(command, env, show_progress)
    if returncode != 0:
        output = '\n'.join(tail)
        raise RuntimeError(
            f'training {run.name} failed (exit code {returncode}): {" ".join(command)}\n{output}\n'
            f'log: experiments/{run.name}/'
        )


def evaluate_run(study, run, weights, datasets):
    """PSNR/SSIM, parameters, FLOPs and latency of a trained run on every test set (the quality benchmark's code)."""
    spec = ModelSpec(run.network, network_opt(study, run.network, run.scale), str(weights), f'networks.{run.network}')
    config = QualityConfig(
        models=[spec],
        datasets=datasets,
        scales=[run.scale],
        out=str(study.out),
        device=eval_device(),
        threads=study.threads,
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
    """
    started = time.time()
    params = check_networks(study)
    runs = plan_runs(study)
    lmdbs, datasets = prepare_data(study, log)
    val_set = next(d for d in datasets if d.name == study.val_dataset)
    records_dir = study.out / 'runs'
    progress = Progress(len(runs), log)
    records = []
    for run in runs:
        options = training_options(study, run, lmdbs, val_set)
        digest = options_digest(options)
        record_path = records_dir / f'{run.name}.json'
        record = read_record(record_path, digest, run.name, study.source)
        if record is None:
            options_path = study.out / 'options' / f'{run.name}.yml'
            write_atomic(options_path, yaml.safe_dump(options, sort_keys=False))
            run_started = time.time()
            train_run(run, options_path, study.train['total_iter'], progress, study.threads)
            weights = Path('experiments') / run.name / 'models' / 'net_g_latest.pth'
            log(f'evaluating {run.name}')
            record = {
                **asdict(run),
                'options_digest': digest,
                'weights': str(weights),
                'rows': evaluate_run(study, run, weights, datasets),
                'training': read_training_logs(Path('experiments') / run.name),
            }
            record['wall_s'] = time.time() - run_started
            write_json(record_path, record)
            progress.durations.append(record['wall_s'])
        else:
            log(f'[{progress.done + 1}/{len(runs)}] {run.name}: finished before, skipped')
        progress.done += 1
        records.append(record)
    memory = {}
    for network in study.networks:
        for scale in study.scales:
            log(f'peak memory of {network} x{scale} (fresh processes)')
            path = records_dir / f'memory_{network}_x{scale}.json'
            key = {'network_g': network_opt(study, network, scale), 'memory_input': study.memory_input,
                   'batch_size': study.train['batch_size'], 'gt_size': study.train['gt_size']}  # fmt: skip
            memory[network, scale] = cached(path, key, lambda n=network, s=scale: measure_memory(study, n, s))
    bicubic = []
    for scale in study.scales:
        path = records_dir / f'bicubic_x{scale}.json'
        key = [asdict(d) for d in datasets]
        bicubic += cached(path, key, lambda s=scale: evaluate_bicubic(study, s, datasets))
    report = write_report(study, records, bicubic, memory, params)
    log(f'study {study.name} finished in {_clock(time.time() - started)}; report in {study.out}')
    return report
