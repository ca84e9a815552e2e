"""Run a study: prepare the data, train and evaluate every run that lacks a record (through its executor), measure
each network's peak memory in fresh processes, and write the report (``tools/compare.py``).

A study is built from small modules, each with one job, in the order of its work:

- :mod:`~san_plugin.study.options`: the study file, every key checked before anything is trained.
- :mod:`~san_plugin.study.plan`: the runs (network x scale x seed), their BasicSR options and fingerprints, and the
  networks built once to check them.
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

Where a GAN stage (a ``gan:`` block: each PSNR run followed by a GAN run of the same network and seed that starts from
its final weights) plugs in: :func:`~san_plugin.study.plan.plan_runs` plans the GAN runs after their PSNR runs, with
their own options (``model_type``, ``network_d``, losses, ``path.pretrain_network_g`` = the PSNR run's
``net_g_latest.pth``); :func:`plan_tasks` makes them :class:`~san_plugin.study.work.RunTask`s like any other; the
loop of :func:`run_study` submits a task once the run it starts from has its record (today every task is ready at
once); records, resumption, both executors and ``--report-only`` then work for them unchanged, and the report groups
rows by stage with the metrics of :data:`san_plugin.study.report.METRICS`.
"""

import logging
import os
import time

from san_plugin.study.data import prepare_data
from san_plugin.study.execution import make_executor
from san_plugin.study.measure import evaluate_bicubic, network_peak_memory
from san_plugin.study.plan import check_networks, options_digest, plan_runs, training_options
from san_plugin.study.processes import accept_children, stop_children
from san_plugin.study.progress import Progress, clock
from san_plugin.study.records import RecordStore
from san_plugin.study.report import write_report
from san_plugin.study.work import RunTask, produce_outcome
from san_plugin.utils.threads import torch_threads

logger = logging.getLogger(__name__)


class StudyFailed(RuntimeError):
    """Some runs failed; the others finished. The message names each failed run, its log file and last lines."""


def plan_tasks(study, executor, lmdbs, datasets):
    """Every run of the study as a task: its BasicSR options (the batch shared by the processes of a DDP run) and
    what its work needs.

    Args:
        study (Study): The study.
        executor (LocalExecutor | SlurmExecutor): Where the runs will train (``processes_per_run``).
        lmdbs (dict[int, Path]): The training LMDBs (see :func:`~san_plugin.study.data.prepare_data`).
        datasets (list[DatasetSpec]): The test sets.

    Returns:
        list[RunTask]: In the order of :func:`~san_plugin.study.plan.plan_runs`.
    """
    val_set = next(d for d in datasets if d.name == study.val_dataset)
    tasks = []
    for run in plan_runs(study):
        options = training_options(study, run, lmdbs, val_set)
        if executor.processes_per_run > 1:  # DDP: the same total batch as one process would train
            train_set = options['datasets']['train']
            train_set['batch_size_per_gpu'] = study.train['batch_size'] // executor.processes_per_run
        tasks.append(RunTask(study, run, options, options_digest(options), datasets, os.getcwd()))
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
    executor = make_executor(study)
    store = RecordStore(study)
    lmdbs, datasets = prepare_data(study)
    tasks = plan_tasks(study, executor, lmdbs, datasets)
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
    for scale in study.scales:
        bicubic += store.bicubic(scale, datasets, lambda s=scale: evaluate_bicubic(study, s, datasets))
    report = write_report(study, [records[task.run.name] for task in tasks], bicubic, memory, params)
    logger.info(f'study {study.name} finished in {clock(time.time() - started)}; report in {study.out}')
    return report


def _train(study, executor, tasks, total, records):
    """Submit the tasks to the executor and collect their outcomes: each record goes into ``records``; returns the
    failures. A stop (Ctrl-C, SIGTERM, an error) terminates every training process first."""
    if tasks:
        logger.info(f'training {len(tasks)} run(s): {executor.describe}')
    accept_children()
    parallel = max(min(executor.max_parallel or len(tasks), len(tasks)), 1)
    failures = []
    try:
        # Runs evaluated in this process at once (one per concurrent run) share torch's process-wide thread count:
        # set it to the study's for the whole loop, so that each evaluation's own setting changes nothing.
        with (
            Progress(tasks, total, len(records), study.train['total_iter'], parallel) as progress,
            torch_threads(study.threads),
        ):
            for task in tasks:
                executor.submit(produce_outcome, task)
            for task, outcome in executor.outcomes():
                progress.finished(task, outcome.wall_s)
                if outcome.failure is not None:
                    logger.info(f'{outcome.failure}')
                    failures.append(outcome.failure)
                else:
                    records[task.run.name] = outcome.record
    except BaseException:
        stop_children()
        raise
    return failures
