"""tools/compare.py with ``executor: slurm`` on the session's private one-node SLURM cluster (``slurm_cluster``):
a tiny study end to end with its dispatcher killed and started again (it re-attaches, submits nothing twice and
trains no finished run again), a ``scancel``-ed job submitted again that resumes from its checkpoint, a job stopped
by its time-out signal submitted again until ``slurm.max_retries`` is spent, a DDP run (two tasks) requeued as a
preemption does, resuming under the same job id, and an unknown partition stopping the study with SLURM's message
and the key that set it."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO_ROOT
from helpers.study import TINY_RCAN, study_options

from san_plugin.study.options import StudyError, parse_study
from san_plugin.study.report import CSV_COLUMNS
from san_plugin.study.runner import run_study

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group('slurm')]
RUNS = [f'tiny_{network}_x2_s{seed}' for network in ('SAN', 'RCAN') for seed in (0, 1)]


def slurm_study(tmp_path, **slurm):
    """2 networks x 2 seeds, 200 iterations of 2 patches of 16x16 LR (a few seconds each), one CPU per job; paths
    relative to the dispatcher's working directory, which the jobs share."""
    study = study_options(tmp_path, 'report', 'datasets', test_size=(32, 40), total_iter=200, val_freq=100,
                          print_freq=20, save_checkpoint_freq=20)  # fmt: skip
    study.update(seeds=[0, 1], executor='slurm', slurm={'gpus_per_run': 0, 'time': 10, 'poll_s': 1, **slurm})
    return study


def wait_for(condition, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f'timed out waiting for {what}')


def job_ids(folder, run):
    path = folder / 'report' / 'runs' / f'{run}.job.json'
    return json.loads(path.read_text())['job_ids'] if path.is_file() else []


def completed_jobs(cluster):
    """(job id, job name, state) of every job in the cluster's job-completion log."""
    text = open(cluster.jobcomp_log).read() if os.path.exists(cluster.jobcomp_log) else ''
    pattern = r'JobId=(\d+) .*?Name=(\S+) .*?JobState=(\S+)'
    return [re.search(pattern, line).groups() for line in text.splitlines() if re.search(pattern, line)]


def squeue_state(env, job):
    return subprocess.run(['squeue', '-h', '-j', job, '-o', '%T'], env=env, capture_output=True, text=True).stdout


def state_files(folder, run):
    return sorted((folder / 'experiments' / run / 'training_states').glob('*.state'))


def suspended_unfinished_run(folder, env):
    """(run, job id) of a running job suspended with a checkpoint and its training unfinished, or None.

    The job is suspended before its last iteration is looked for, so that it cannot finish between that look and a
    scancel; a job found finished is resumed."""
    for run in RUNS:
        ids = job_ids(folder, run)
        if not ids or not state_files(folder, run):
            continue
        if subprocess.run(['scontrol', 'suspend', ids[-1]], env=env, capture_output=True).returncode != 0:
            continue  # not running any more (or not yet)
        if not (folder / 'experiments' / run / 'models' / 'net_g_200.pth').exists():
            return run, ids[-1]
        subprocess.run(['scontrol', 'resume', ids[-1]], env=env, capture_output=True, check=False)
    return None


def test_study_through_slurm_survives_a_killed_dispatcher_and_a_scancel(slurm_cluster, tmp_path, tiny_memory_records):
    tiny_memory_records(tmp_path / 'report')
    study = tmp_path / 'study.yml'
    study.write_text(json.dumps(slurm_study(tmp_path, max_parallel=3)))  # three jobs at once: the 4th waits
    env = dict(os.environ, **slurm_cluster, PYTHONUNBUFFERED='1')
    command = [sys.executable, str(REPO_ROOT / 'tools' / 'compare.py'), '-opt', str(study)]
    with open(tmp_path / 'dispatcher1.out', 'w') as out:
        first = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
        wait_for(lambda: sum(bool(job_ids(tmp_path, r)) for r in RUNS) == 3 or first.poll() is not None, 120, 'jobs')
        first.send_signal(signal.SIGKILL)  # the dispatcher dies; its jobs go on
        first.wait()
    submitted = {run: job_ids(tmp_path, run) for run in RUNS}
    assert sorted(map(len, submitted.values())) == [0, 1, 1, 1], (tmp_path / 'dispatcher1.out').read_text()
    # Keep the three jobs unfinished until the new dispatcher has found them, however slow its start: SLURM
    # suspends the running ones and holds the queued one (each command fails on jobs of the other kind).
    jobs = [ids[0] for ids in submitted.values() if ids]
    for action in ('suspend', 'hold'):
        for job in jobs:
            subprocess.run(['scontrol', action, job], env=env, capture_output=True, check=False)

    output_path = tmp_path / 'dispatcher2.out'
    with open(output_path, 'w') as out:
        second = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
        wait_for(lambda: output_path.read_text().count('re-attached') == 3, 120, 're-attachment')
        for action in ('resume', 'release'):
            for job in jobs:
                subprocess.run(['scontrol', action, job], env=env, capture_output=True, check=False)
        # scancel a run seen with a checkpoint and not finished yet: it must resume from that checkpoint
        victim, cancelled = wait_for(
            lambda: suspended_unfinished_run(tmp_path, env), 120, 'a checkpoint of a running job'
        )
        subprocess.run(['scancel', cancelled], env=env, check=True)
        second.wait(timeout=240)
    output = output_path.read_text()
    assert second.returncode == 0, output
    for run, ids in submitted.items():
        assert (f'{run}: re-attached' in output) == bool(ids) and (not ids or f'SLURM job {ids[0]}' in output), output
    assert f'{victim}: SLURM job {cancelled} ended without a result' in output, output
    assert job_ids(tmp_path, victim)[-2] == cancelled
    logs = sorted((tmp_path / 'experiments' / victim).glob('train_*.log'))
    resumed = re.search(r'Resuming training from epoch: \d+, iter: (\d+)', logs[-1].read_text())
    assert len(logs) == 2 and resumed and int(resumed.group(1)) > 0

    # no duplicate: one job per run, two for the cancelled one; every other run trained once
    jobs = wait_for(lambda: (j := completed_jobs(slurm_cluster)) and len(j) >= 5 and j, 30, 'the job log')
    by_run = {run: [(i, s) for i, name, s in jobs if name == run] for run in RUNS}
    assert {run: len(v) for run, v in by_run.items()} == {run: 2 if run == victim else 1 for run in RUNS}, jobs
    assert [s for _, s in by_run[victim]] == ['CANCELLED', 'COMPLETED']
    assert {run: job_ids(tmp_path, run) for run in RUNS} == {run: [i for i, _ in v] for run, v in by_run.items()}
    for run in set(RUNS) - {victim}:
        assert len(list((tmp_path / 'experiments' / run).glob('train_*.log'))) == 1
    report = json.loads((tmp_path / 'report' / 'report.json').read_text())
    assert [(r['network'], r['seeds']) for r in report['summary']] == [('SAN', [0, 1]), ('RCAN', [0, 1])]
    assert all(c in report['summary'][0] for c in CSV_COLUMNS)


def test_a_job_stopped_by_its_time_out_signal_is_submitted_again_at_most_max_retries_times(slurm_cluster, tmp_path):
    options = slurm_study(tmp_path, max_retries=1)
    options.update(networks={'RCAN': dict(TINY_RCAN)}, seeds=[0])
    options['train'].update(total_iter=100000, val_freq=100000)  # never ends here: each job is stopped
    study = tmp_path / 'study.yml'
    study.write_text(json.dumps(options))
    env = dict(os.environ, **slurm_cluster, PYTHONUNBUFFERED='1')
    command = [sys.executable, str(REPO_ROOT / 'tools' / 'compare.py'), '-opt', str(study)]
    run = 'tiny_RCAN_x2_s0'
    logs = tmp_path / 'experiments' / run
    with open(tmp_path / 'dispatcher.out', 'w') as out:
        dispatcher = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: state_files(tmp_path, run), 120, 'a checkpoint')
            (first,) = job_ids(tmp_path, run)
            # what SLURM sends before a job's time limit (submitit's --signal=USR2@90), and a preemption may send
            subprocess.run(['scancel', '--signal=USR2', first], env=env, check=True)
            second = wait_for(lambda: job_ids(tmp_path, run)[1:], 120, 'a second job')[0]
            wait_for(lambda: 'Resuming training' in ''.join(p.read_text() for p in logs.glob('train_*.log')), 120,
                     'the second job resuming')  # fmt: skip
            subprocess.run(['scancel', '--signal=USR2', second], env=env, check=True)
        finally:
            returncode = dispatcher.wait(timeout=240)
    output = (tmp_path / 'dispatcher.out').read_text()
    assert returncode == 1, output
    ended = 'ended without a result (time-out, preemption or scancel)'
    assert f'{run}: SLURM job {first} {ended}; submitting it again (1 of slurm.max_retries 1)' in output, output
    assert f'run {run} failed: SLURM job {second} {ended} after slurm.max_retries 1 resubmission(s)' in output, output
    assert job_ids(tmp_path, run) == [first, second]
    resumed = re.search(
        r'Resuming training from epoch: \d+, iter: (\d+)', sorted(logs.glob('train_*.log'))[-1].read_text()
    )
    assert resumed and int(resumed.group(1)) > 0


def test_unknown_partition_names_the_key_with_slurms_message(slurm_cluster, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for key, value in slurm_cluster.items():
        monkeypatch.setenv(key, value)
    study = parse_study(slurm_study(tmp_path, partition='nope'))
    with pytest.raises(StudyError) as error:
        run_study(study)
    message = str(error.value)
    assert message.startswith('study: slurm.partition: SLURM refused the job of tiny_SAN_x2_s0') and 'nope' in message
    assert 'invalid partition' in message.lower(), message
    assert not (tmp_path / 'experiments').exists()


def test_a_ddp_run_requeued_like_a_preempted_job_keeps_its_id_and_resumes(
    slurm_cluster, tmp_path, monkeypatch, tiny_memory_records
):
    tiny_memory_records(tmp_path / 'report')
    options = slurm_study(tmp_path, tasks_per_run=2)  # two DDP processes in the job, one batch of 2 between them
    options.update(networks={'RCAN': dict(TINY_RCAN)}, seeds=[0])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StudyError, match=r'slurm.tasks_per_run: 3 DDP processes per run cannot share .* 2 evenly'):
        run_study(parse_study({**options, 'slurm': {**options['slurm'], 'tasks_per_run': 3}}))
    study = tmp_path / 'study.yml'
    study.write_text(json.dumps(options))
    env = dict(os.environ, **slurm_cluster, PYTHONUNBUFFERED='1')
    command = [sys.executable, str(REPO_ROOT / 'tools' / 'compare.py'), '-opt', str(study)]
    run = 'tiny_RCAN_x2_s0'
    with open(tmp_path / 'dispatcher.out', 'w') as out:
        dispatcher = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: state_files(tmp_path, run), 120, 'a checkpoint')
            (job,) = job_ids(tmp_path, run)
            subprocess.run(['scontrol', 'requeue', job], env=env, check=True)  # as a preemption with requeue does
            # SLURM holds a requeued job back for a while (its begin time); let it start at once
            wait_for(lambda: 'PENDING' in squeue_state(env, job), 60, 'the requeued job pending')
            subprocess.run(['scontrol', 'update', f'JobId={job}', 'StartTime=now'], env=env, check=True)
        finally:
            returncode = dispatcher.wait(timeout=240)
    output = (tmp_path / 'dispatcher.out').read_text()
    assert returncode == 0 and 'submitting it again' not in output, output
    assert job_ids(tmp_path, run) == [job]
    logs = sorted((tmp_path / 'experiments' / run).glob('train_*.log'))
    resumed = re.search(r'Resuming training from epoch: \d+, iter: (\d+)', logs[-1].read_text())
    assert len(logs) == 2 and resumed and int(resumed.group(1)) > 0
    assert 'world_size: 2' in logs[-1].read_text() and 'batch_size_per_gpu: 1' in logs[-1].read_text()
    report = json.loads((tmp_path / 'report' / 'report.json').read_text())
    assert report['summary'][0]['network'] == 'RCAN' and report['summary'][0]['psnr_mean'] > 0
