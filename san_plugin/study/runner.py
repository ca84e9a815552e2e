"""Run a study: prepare the data, train and evaluate every run that lacks a record (through its executor), measure
each network's peak memory in fresh processes, and write the report (``tools/compare.py``).

A study is built from small modules, each with one job, in the order of its work:

- :mod:`~san_plugin.study.options`: the study file, every key checked before anything is trained.
- :mod:`~san_plugin.study.plan`: the runs (network x scale x seed, and the GAN stage's), their BasicSR options and
  fingerprints, and the networks built once to check them; :mod:`~san_plugin.study.gan`: the GAN runs' options and
  the discriminator they start from.
- :mod:`~san_plugin.study.metrics`: the metrics of a study (which, their direction) and what they need.
- :mod:`~san_plugin.study.data`: the training LMDBs and the test sets, prepared with ``prepare_data``'s code.
- :mod:`~san_plugin.study.records`: the records in ``<out>/runs`` (runs, peak memory, bicubic rows, SLURM job ids),
  their file names and cache keys.
- :mod:`~san_plugin.study.work`: the work of one run (train, evaluate, record), one :class:`RunOutcome` each.
- :mod:`~san_plugin.study.processes`: the training processes, their output and the signals that stop them.
- :mod:`~san_plugin.study.execution` and :mod:`~san_plugin.study.slurm`: where the work runs (local processes or
  SLURM jobs): submit, then collect.
- :mod:`~san_plugin.study.progress`: console progress read from the runs' BasicSR logs.
- :mod:`~san_plugin.study.measure`: quality rows, bicubic rows and peak memory, with the benchmarks' code.
- :mod:`~san_plugin.study.report` and :mod:`~san_plugin.study.stats`: the report and its statistics;
  :mod:`~san_plugin.study.rebuild`: the report again from the records (``--report-only``).

:func:`run_study` plans every run, reads the records of those finished before (skipping them; a killed study never
retrains a finished run), submits the others to the executor and collects their outcomes as they end. A run that
fails does not stop the others; the study ends with :class:`StudyFailed` naming each failed run, its log file and
its last lines. Peak memory is measured after every run has been trained and evaluated, one process at a time.

The GAN stage (a ``gan:`` block, :mod:`~san_plugin.study.gan`): :func:`~san_plugin.study.plan.plan_runs` plans a GAN
run after each PSNR run, :func:`plan_tasks` makes it a :class:`~san_plugin.study.work.RunTask` like any other, and
the loop of :func:`run_study` submits it once the PSNR run it starts from has its record (a GAN run whose PSNR run
failed fails too, untrained). Records, resumption, both executors and ``--report-only`` work for it unchanged; the
report groups the rows by stage, with the metrics of :mod:`~san_plugin.study.metrics`. Before any training the study
checks the networks and the discriminator, the ImageNet weights of its metrics and perceptual loss, and NIQE's image
sizes, and writes the discriminator each seed's GAN runs start from.
"""

import logging
import os
import time

from san_plugin.study.data import prepare_data
from san_plugin.study.execution import make_executor
from san_plugin.study.gan import write_discriminator_inits
from san_plugin.study.measure import evaluate_bicubic, network_peak_memory
from san_plugin.study.metrics import check_niqe_sizes, check_weights, resolve_metrics
from san_plugin.study.plan import check_networks, options_digest, plan_runs, training_options
from san_plugin.study.processes import accept_children, stop_children
from san_plugin.study.progress import Progress, clock
from san_plugin.study.records import RecordStore
from san_plugin.study.report import write_report
from san_plugin.study.work import RunFailed, RunTask, produce_outcome
from san_plugin.utils.threads import torch_threads

logger = logging.getLogger(__name__)


class StudyFailed(RuntimeError):
    """Some runs failed; the others finished. The message names each failed run, its log file and last lines."""


def plan_tasks(study, executor, lmdbs, datasets, metrics=None):
    """Every run of the study as a task: its BasicSR options (the batch shared by the processes of a DDP run) and
    what its work needs.

    Args:
        study (Study): The study.
        executor (LocalExecutor | SlurmExecutor): Where the runs will train (``processes_per_run``).
        lmdbs (dict[int, Path]): The training LMDBs (see :func:`~san_plugin.study.data.prepare_data`).
        datasets (list[DatasetSpec]): The test sets.
        metrics (StudyMetrics | None): The perceptual metrics every run is evaluated with. Default: None.

    Returns:
        list[RunTask]: In the order of :func:`~san_plugin.study.plan.plan_runs`.
    """
    val_set = next(d for d in datasets if d.name == study.val_dataset)
    tasks, digests = [], {}
    for run in plan_runs(study):
        options = training_options(study, run, lmdbs, val_set)
        if executor.processes_per_run > 1:  # DDP: the same total batch as one process would train
            options['datasets']['train']['batch_size_per_gpu'] //= executor.processes_per_run
        digests[run.name] = options_digest(options, digests.get(run.starts_from))
        tasks.append(RunTask(study, run, options, digests[run.name], datasets, os.getcwd(), metrics))
    return tasks


def run_study(study):
    """Run a checked study (see :func:`san_plugin.study.options.read_study`) and write its report, logging its
    progress (``tools/compare.py`` shows it on the console).

    Args:
        study (Study): The study.

    Returns:
        dict: The report (see :func:`san_plugin.study.report.build_report`).

    Raises:
        StudyError: A key of the study is wrong (checked before any training).
        StudyFailed: Some runs failed; every other run was trained and recorded (the same command again retries
            the failed ones only).
    """
    started = time.time()
    params = check_networks(study)
    metrics = resolve_metrics(study)
    check_niqe_sizes(study, metrics)
    check_weights(study, metrics)
    executor = make_executor(study)
    store = RecordStore(study)
    lmdbs, datasets = prepare_data(study)
    tasks = plan_tasks(study, executor, lmdbs, datasets, metrics)
    if study.gan is not None:
        write_discriminator_inits(study)
    records, missing = {}, []
    for task in tasks:
        record = store.read_run(task.run.name, task.digest)
        if record is None:
            missing.append(task)
        else:
            logger.info(f'[{len(records) + 1}/{len(tasks)}] {task.run.name}: finished before, skipped')
            records[task.run.name] = record
    failures = _train(study, executor, missing, len(tasks), records)
    if failures:
        raise StudyFailed(
            f'{study.source}: {len(failures)} of {len(tasks)} run(s) failed; the others are recorded. Run the same '
            'command again to retry the failed ones (finished runs are kept).\n' + '\n'.join(map(str, failures))
        )
    memory = {}
    for network in study.networks:
        for scale in study.scales:
            logger.info(f'peak memory of {network} x{scale} (fresh processes, one at a time)')
            memory[network, scale] = store.memory(
                network, scale, lambda n=network, s=scale: network_peak_memory(study, n, s)
            )
    bicubic = []
    names = [spec.name for spec in metrics.specs]
    for scale in study.scales:
        evaluate = lambda s=scale: evaluate_bicubic(study, s, datasets, metrics.specs)  # noqa: E731
        bicubic += store.bicubic(scale, datasets, evaluate, names)
    report = write_report(study, [records[task.run.name] for task in tasks], bicubic, memory, params)
    logger.info(f'study {study.name} finished in {clock(time.time() - started)}; report in {study.out}')
    return report


def _train(study, executor, tasks, total, records):
    """Submit the tasks to the executor and collect their outcomes: each record goes into ``records``; returns the
    failures. A task that starts from another run (a GAN run) is submitted once that run has its record, and fails
    untrained when that run fails. A stop (Ctrl-C, SIGTERM, an error) terminates every training process first."""
    if tasks:
        logger.info(f'training {len(tasks)} run(s): {executor.describe}')
    accept_children()
    parallel = max(min(executor.max_parallel or len(tasks), len(tasks)), 1)
    failures = []
    waiting = {}  # run name: the tasks that start from it
    try:
        # Runs evaluated in this process at once (one per concurrent run) share torch's process-wide thread count:
        # set it to the study's for the whole loop, so that each evaluation's own setting changes nothing.
        with Progress(tasks, total, len(records), parallel) as progress, torch_threads(study.threads):
            for task in tasks:
                if task.run.starts_from is None or task.run.starts_from in records:
                    executor.submit(produce_outcome, task)
                else:
                    waiting.setdefault(task.run.starts_from, []).append(task)
            for task, outcome in executor.outcomes():
                progress.finished(task, outcome.wall_s)
                followers = waiting.pop(task.run.name, [])
                if outcome.failure is None:
                    records[task.run.name] = outcome.record
                    for follower in followers:
                        executor.submit(produce_outcome, follower)
                    continue
                for failure in [outcome.failure] + [_untrained(f, task) for f in followers]:
                    logger.info(f'{failure}')
                    failures.append(failure)
                for follower in followers:
                    progress.finished(follower)
    except BaseException:
        stop_children()
        raise
    return failures


def _untrained(task, failed):
    return RunFailed(task.run.name, f'not trained: the run it starts from, {failed.run.name}, failed')
