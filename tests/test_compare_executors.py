"""tools/compare.py's executors: the executor keys checked before training, GPU and thread placement of concurrent
local runs, and (slow) a tiny study with two runs at once giving the records of one at a time, a failing run that
does not stop the other, and the same command again training only the failed run."""

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import pytest
import torch
from conftest import REPO_ROOT, load_tool
from helpers.study import TINY_GAN, TINY_RCAN, changed

from san_plugin.study import progress as progress_module
from san_plugin.study import work as work_module
from san_plugin.study.execution import local_executor, make_executor
from san_plugin.study.options import StudyError, override_max_parallel, parse_study
from san_plugin.study.plan import Run, plan_runs
from san_plugin.study.progress import Progress
from san_plugin.study.records import RecordStore
from san_plugin.study.runner import StudyFailed, run_study
from san_plugin.study.slurm import RunJob, slurm_error_key
from san_plugin.study.work import Placement, RunTask, TrainingStopped, produce_outcome


def test_slurm_block_defaults_and_time(tiny_study):
    study = parse_study({**tiny_study, 'executor': 'slurm', 'slurm': {'time': '1-02:00:30', 'partition': 'debug'}})
    assert study.execution.slurm['time'] == (26 * 60 + 1) and study.execution.slurm['max_retries'] == 2
    override_max_parallel(study, 4)  # tools/compare.py --max-parallel
    assert study.execution.slurm['max_parallel'] == 4 and study.execution.max_parallel is None


def test_max_parallel_on_the_command_line_is_checked(tiny_study, tmp_path, capsys):
    path = tmp_path / 'study.yml'
    path.write_text(json.dumps(tiny_study))
    with pytest.raises(SystemExit) as stop:
        load_tool('compare').main(['-opt', str(path), '--max-parallel', '0'])
    assert stop.value.code == 2
    assert 'argument --max-parallel: 0 is not an integer >= 1' in capsys.readouterr().err
    assert not (tmp_path / 'report').exists()


def test_concurrent_local_runs_get_their_own_gpus_or_threads(tiny_study):
    study = parse_study(tiny_study)  # threads: 1
    cpu = local_executor(study, study.execution, gpus=0, cores=4)
    assert cpu.max_parallel == 4 and all(s == Placement(env={'CUDA_VISIBLE_DEVICES': ''}, device='cpu', threads=1)
                                         for s in cpu.slots)  # fmt: skip
    execution = parse_study({**tiny_study, 'gpus_per_run': 2}).execution
    gpus = local_executor(study, execution, gpus=4, cores=4)
    assert gpus.max_parallel == 2
    assert [(s.env['CUDA_VISIBLE_DEVICES'], s.device) for s in gpus.slots] == [
        ('0,1', 'cuda:0'),
        ('2,3', 'cuda:2'),
    ]
    shared = local_executor(study, parse_study({**tiny_study, 'runs_per_gpu': 2}).execution, gpus=2, cores=4)
    assert sorted(s.env['CUDA_VISIBLE_DEVICES'] for s in shared.slots) == ['0', '0', '1', '1']
    with pytest.raises(StudyError, match=r'study: max_parallel: 3 runs at once need more GPUs .* raise runs_per_gpu'):
        local_executor(study, parse_study({**tiny_study, 'max_parallel': 3}).execution, gpus=2, cores=4)
    with pytest.raises(StudyError, match=r'study: gpus_per_run: 2 GPU\(s\) per run, but this machine shows 1'):
        local_executor(study, execution, gpus=1, cores=4)


def fake_slurm(folder, sbatch_error=None):
    """Fake ``sbatch``, ``srun`` and ``squeue`` in ``folder``: sbatch fails with ``sbatch_error`` when given, else
    gives the job ids 7, 8, ... (and runs nothing); squeue shows no job (every job has ended)."""
    folder.mkdir()
    scripts = {'srun': 'exit 0', 'squeue': 'exit 0'}
    count = folder / 'submitted'
    scripts['sbatch'] = (
        f'echo "{sbatch_error}" >&2; exit 1'
        if sbatch_error
        else f'n=$(($(cat {count} 2>/dev/null || echo 6) + 1)); echo $n > {count}; echo "Submitted batch job $n"'
    )
    for name, body in scripts.items():
        path = folder / name
        path.write_text(f'#!/bin/sh\n{body}\n')
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return folder


def test_slurm_without_sbatch_or_with_a_refused_job_stops_before_training(tiny_study, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    study = {**tiny_study, 'executor': 'slurm', 'slurm': {'partition': 'nope', 'gpus_per_run': 0}}
    monkeypatch.setenv('PATH', str(tmp_path / 'empty'))
    with pytest.raises(StudyError, match=r"study: executor: slurm needs SLURM's sbatch on PATH"):
        run_study(parse_study(study))
    error = 'sbatch: error: invalid partition specified: nope'
    monkeypatch.setenv('PATH', f'{fake_slurm(tmp_path / "bin", error)}{os.pathsep}{os.defpath}')
    with pytest.raises(StudyError) as failure:
        run_study(parse_study(study))
    assert 'study: slurm.partition: SLURM refused the job of tiny_SAN_x2_s0' in str(failure.value)
    assert error in str(failure.value)
    assert not (tmp_path / 'experiments').exists()
    assert slurm_error_key('sbatch: error: Invalid account or account/partition combination') == 'slurm.account'
    assert slurm_error_key('sbatch: error: Invalid qos specification') == 'slurm.qos'
    assert slurm_error_key('sbatch: error: Requested time limit is invalid') == 'slurm.time'


@pytest.mark.slow
def test_slurm_jobs_that_end_without_a_result_are_submitted_again_at_most_max_retries_times(
    tiny_study, tmp_path, monkeypatch, study_log
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('PATH', f'{fake_slurm(tmp_path / "bin")}{os.pathsep}{os.defpath}')
    slurm = {'gpus_per_run': 0, 'max_retries': 2, 'poll_s': 0.01}
    study = parse_study({**tiny_study, 'executor': 'slurm', 'slurm': slurm})
    executor = make_executor(study)
    assert executor.executor.max_num_timeout == 0  # submitit requeues nothing: the dispatcher is the one retry layer
    run = plan_runs(study)[0]
    task = RunTask(study, run, {}, 'digest', [], str(tmp_path))
    executor.submit(produce_outcome, task)
    ((finished, outcome),) = list(executor.outcomes())  # every job ends at once without a result (the fake SLURM)
    assert finished is task and outcome.record is None
    assert str(outcome.failure).startswith(
        'run tiny_SAN_x2_s0 failed: SLURM job 9 ended without a result (time-out, preemption or scancel) after '
        'slurm.max_retries 2 resubmission(s)'
    )
    assert RecordStore(study).job_ids(run.name, 'digest') == ['7', '8', '9']
    assert [line for line in study_log.messages if 'tiny_SAN_x2_s0:' in line] == [
        'tiny_SAN_x2_s0: submitted as SLURM job 7 (attempt 1)',
        'tiny_SAN_x2_s0: SLURM job 7 ended without a result (time-out, preemption or scancel); submitting it again '
        '(1 of slurm.max_retries 2)',
        'tiny_SAN_x2_s0: submitted as SLURM job 8 (attempt 2)',
        'tiny_SAN_x2_s0: SLURM job 8 ended without a result (time-out, preemption or scancel); submitting it again '
        '(2 of slurm.max_retries 2)',
        'tiny_SAN_x2_s0: submitted as SLURM job 9 (attempt 3)',
    ]


def test_a_slurm_job_stops_on_its_time_out_signal_and_leaves_no_result():
    previous = signal.getsignal(signal.SIGUSR2)

    def work(task, placement):
        os.kill(os.getpid(), signal.SIGUSR2)  # what SLURM sends before the time limit (submitit's --signal)
        time.sleep(30)
        return 'a result'

    try:
        with pytest.raises(TrainingStopped, match=r'the job got signal SIGUSR2 \(time-out or preemption\)'):
            RunJob(work)('task', 'placement')
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert not issubclass(TrainingStopped, Exception)  # submitit writes a result file for Exceptions only


def test_progress_shows_every_running_run_and_a_study_eta_that_counts_concurrency(tmp_path, monkeypatch, study_log):
    monkeypatch.setattr(progress_module.time, 'time', lambda: 1000.0)
    tasks = [SimpleNamespace(run=Run('SAN', 2, seed, f'tiny_SAN_x2_s{seed}'), total_iter=100) for seed in range(3)]
    progress = Progress(tasks, total_runs=4, done=1, parallel=2, experiments=tmp_path)
    line = '2026-01-01 10:00:00,000 INFO: [tiny..][epoch:  0, iter:      {i}, lr:(1.0e-03,)] [eta: {eta}, time (data): 0.1 (0.01)] l_pix: 1.0e-02\n'  # noqa: E501
    for seed, eta in ((0, '0:00:40'), (1, '0:01:00')):
        (tmp_path / f'tiny_SAN_x2_s{seed}').mkdir()
        (tmp_path / f'tiny_SAN_x2_s{seed}' / 'train_x.log').write_text(line.format(i=20, eta=eta))
    progress.poll()
    lines = study_log.messages
    assert lines[0].startswith('[1/4 done, 1 running] SAN x2 seed 0: iter 20/100, l_pix 0.0100, ETA 0:00:40')
    # two running (40 s and 60 s left), one queued: its duration guessed from the longest run, 60 s; over 2 at once
    assert lines[1].startswith('[1/4 done, 2 running] SAN x2 seed 1: iter 20/100, l_pix 0.0100, ETA 0:01:00')
    assert lines[1].endswith('study ETA 0:01:20')
    progress.finished(tasks[0], wall_s=30)
    assert progress.done == 2 and progress.durations == [30]


def weights(folder, run):
    return torch.load(folder / 'experiments' / run / 'models' / 'net_g_latest.pth', weights_only=False)['params']


@pytest.mark.slow
def test_two_runs_at_once_give_the_records_of_one_at_a_time(
    tiny_study,
    tmp_path,
    monkeypatch,
    tiny_memory_records,
    study_log,
):
    study = {**tiny_study, 'networks': {'RCAN': dict(TINY_RCAN)}, 'seeds': [0, 1]}
    results = {}
    # With two at once, each run waits at the start of its training for the other: both train at the same time, or
    # the barrier times out and the run fails.
    together = threading.Barrier(2, timeout=120)
    train = work_module.train

    def train_together(*args, **kwargs):
        if parallel == 2:
            together.wait()
        return train(*args, **kwargs)

    monkeypatch.setattr(work_module, 'train', train_together)
    for parallel in (1, 2):
        folder = tmp_path / f'parallel{parallel}'
        folder.mkdir()
        tiny_memory_records(folder / 'report')
        monkeypatch.chdir(folder)
        options = {**study, 'max_parallel': parallel, 'out': str(folder / 'report')}
        results[parallel] = run_study(parse_study(options))
        assert f'training 2 run(s): local, {parallel} run(s) at once' in study_log.messages
    (one, two) = (tmp_path / 'parallel1', tmp_path / 'parallel2')
    for run in ('tiny_RCAN_x2_s0', 'tiny_RCAN_x2_s1'):
        a, b = weights(one, run), weights(two, run)
        assert all(torch.equal(a[k], b[k]) for k in a), run  # seeded runs, one thread each: bit-identical
    psnr = {p: [(r['seed'], [row['psnr'] for row in r['rows']]) for r in results[p]['runs']] for p in (1, 2)}
    assert psnr[1] == psnr[2]


@pytest.mark.slow
def test_a_failed_run_does_not_stop_the_others_and_is_retried_alone(
    tiny_study,
    tmp_path,
    monkeypatch,
    capsys,
    tiny_memory_records,
    study_log,
):
    monkeypatch.chdir(tmp_path)
    tiny_memory_records(tmp_path / 'report')
    broken = changed(tiny_study, ('networks', 'RCAN', 'num_in_ch'), 1)  # builds, but fails on RGB patches
    path = tmp_path / 'study.yml'
    path.write_text(json.dumps({**broken, 'max_parallel': 2}))
    compare = load_tool('compare')
    assert compare.main(['-opt', str(path)]) == 1
    error = capsys.readouterr().err
    log = tmp_path / 'report' / 'logs' / 'tiny_RCAN_x2_s0.log'
    assert (
        f'{path}: 1 of 2 run(s) failed' in error and 'run tiny_RCAN_x2_s0 failed: training exited with code 1' in error
    )
    assert f'log: {log}' in error and 'last lines:' in error and 'RuntimeError' in error
    assert 'expected input' in log.read_text() and 'RuntimeError' in log.read_text()
    assert (tmp_path / 'report' / 'runs' / 'tiny_SAN_x2_s0.json').is_file()
    assert not (tmp_path / 'report' / 'runs' / 'tiny_RCAN_x2_s0.json').exists()
    san_logs = sorted((tmp_path / 'experiments' / 'tiny_SAN_x2_s0').glob('train_*.log'))

    study_log.clear()
    with pytest.raises(StudyFailed, match='run tiny_RCAN_x2_s0 failed'):  # the same study again: only RCAN trains
        run_study(parse_study(broken))
    lines = study_log.messages
    assert '[1/2] tiny_SAN_x2_s0: finished before, skipped' in lines
    assert [line for line in lines if line.startswith('training ')] == ['training 1 run(s): local, 2 run(s) at once']

    # fixed: the same command again trains the failed run only (evaluated by the dispatcher this time)
    path.write_text(json.dumps({**tiny_study, 'evaluate': 'local'}))
    assert compare.main(['-opt', str(path), '--max-parallel', '2']) == 0
    assert sorted((tmp_path / 'experiments' / 'tiny_SAN_x2_s0').glob('train_*.log')) == san_logs
    assert (tmp_path / 'report' / 'runs' / 'tiny_RCAN_x2_s0.json').is_file()
    assert '| RCAN |' in (tmp_path / 'report' / 'report.md').read_text()


def processes_mentioning(text):
    """Pids of the processes whose command line mentions ``text``."""
    pids = []
    for entry in os.listdir('/proc'):
        try:
            with open(f'/proc/{entry}/cmdline', 'rb') as handle:
                if text.encode() in handle.read():
                    pids.append(int(entry))
        except (OSError, ValueError):
            continue
    return pids


@pytest.mark.slow
def test_a_stopped_study_stops_every_concurrent_training(tiny_study, tmp_path):
    study = changed(tiny_study, ('train', 'total_iter'), 5000)
    path = tmp_path / 'study.yml'
    path.write_text(json.dumps({**study, 'max_parallel': 2}))
    command = [sys.executable, str(REPO_ROOT / 'tools' / 'compare.py'), '-opt', str(path)]
    with open(tmp_path / 'out.txt', 'w') as out:
        dispatcher = subprocess.Popen(command, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
        try:
            end = time.time() + 120
            while time.time() < end and 'running] RCAN' not in (tmp_path / 'out.txt').read_text():
                time.sleep(0.5)
            runs = ('tiny_SAN_x2_s0', 'tiny_RCAN_x2_s0')
            trainings = {run: processes_mentioning(str(tmp_path / 'report' / 'options' / f'{run}.yml')) for run in runs}
            assert all(trainings.values()), (tmp_path / 'out.txt').read_text()  # both runs train at once
        finally:
            dispatcher.send_signal(signal.SIGTERM)
        assert dispatcher.wait(timeout=60) != 0
    for run, pids in trainings.items():  # terminated and reaped, data loader workers included
        assert set(pids) & set(processes_mentioning(str(tmp_path / 'report' / 'options' / f'{run}.yml'))) == set()


def test_slurm_ddp_processes_must_share_the_gan_batch_too(tiny_study, tmp_path, monkeypatch):
    monkeypatch.setenv('PATH', f'{fake_slurm(tmp_path / "bin")}{os.pathsep}{os.defpath}')
    slurm = {'executor': 'slurm', 'slurm': {'gpus_per_run': 0, 'tasks_per_run': 2}}
    gan = {'network_d': dict(TINY_GAN['network_d']), 'batch_size': 3}
    with pytest.raises(StudyError, match=r'^study: slurm.tasks_per_run: 2 DDP processes per run cannot share '
                                         r'gan.batch_size 3 evenly$'):  # fmt: skip
        make_executor(parse_study({**tiny_study, **slurm, 'gan': gan}))
    make_executor(parse_study({**tiny_study, **slurm, 'gan': {**gan, 'batch_size': 4}}))
