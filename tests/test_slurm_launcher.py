"""BasicSR's ``--launcher slurm`` on CPU (Gloo), through ``srun`` on the private one-node cluster of the session.

The unit tests at the end check the environment ``init_dist`` builds from SLURM's, without a cluster.
"""

import glob
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers.workflow import (
    OMP_ONE_THREAD,
    TINY_MSRRESNET,
    describe,
    free_port,
    make_pairs,
    read_log,
    train_options,
    write_options,
)

from san_plugin.compat import dist as san_dist

LAUNCHER = Path(__file__).resolve().parent / 'helpers' / 'ddp_train.py'


def srun(cluster, args, cwd, env=None, timeout=300):
    """Run ``srun --ntasks=2 python <args>`` on ``cluster`` in ``cwd``, one thread per task; return the process."""
    full_env = dict(os.environ, **cluster, **OMP_ONE_THREAD, **(env or {}))
    command = ['srun', '--ntasks=2', '--cpus-per-task=1', '--kill-on-bad-exit=1', sys.executable, *map(str, args)]
    return subprocess.run(command, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


def newest_log(run_dir):
    """Content of the newest ``train_*.log`` of a run (a resumed run has one per start)."""
    return Path(max(glob.glob(str(run_dir / 'train_*.log')), key=os.path.getmtime)).read_text()


def rank_weights(folder):
    return [torch.load(folder / f'rank{rank}_final.pth') for rank in (0, 1)]


def assert_same_weights(first, second):
    for key in first:
        assert torch.equal(first[key], second[key]), f'{key} differs between ranks'


@pytest.mark.slow
@pytest.mark.xdist_group('slurm')
def test_private_cluster_runs_two_tasks_and_logs_the_job(slurm_cluster, tmp_path):
    env = dict(os.environ, **slurm_cluster)
    proc = subprocess.run(
        ['srun', '--ntasks=2', 'bash', '-c', 'echo $SLURM_PROCID/$SLURM_NTASKS'],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, describe(proc)
    assert sorted(proc.stdout.split()) == ['0/2', '1/2']
    assert (
        slurm_cluster.partition
        in subprocess.run(['sinfo', '-h', '-o', '%P'], env=env, capture_output=True).stdout.decode()
    )
    # slurmctld writes the line when it has released the job, which may be a moment after srun returns.
    record = rf'JobState=COMPLETED Partition={slurm_cluster.partition} '
    deadline = time.monotonic() + 10
    while not re.search(record, slurm_cluster.jobcomp_log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert re.search(record, slurm_cluster.jobcomp_log.read_text())


@pytest.mark.slow
@pytest.mark.xdist_group('slurm')
def test_slurm_launcher_trains_san_with_gloo_and_auto_resumes(slurm_cluster, tmp_path):
    gt_dir, lq_dir = make_pairs(tmp_path / 'pairs', num=4)
    opt = train_options('tiny_slurm_san', gt_dir, lq_dir, total_iter=2, validate=False)
    # As BasicSR's own option files write it: NCCL (replaced by Gloo without CUDA) and the port of the run.
    opt.update(num_gpu='auto', dist_params={'backend': 'nccl', 'port': free_port()})
    write_options(tmp_path / 'train.yml', opt)
    (tmp_path / 'first').mkdir()
    proc = srun(slurm_cluster, [LAUNCHER, tmp_path / 'first', '-opt', 'train.yml', '--launcher', 'slurm'], tmp_path)
    assert proc.returncode == 0, describe(proc)
    run_dir = tmp_path / 'experiments' / opt['name']
    log = read_log(run_dir, 'train_')
    assert 'World size (gpu number): 2' in log
    assert 'Network: DistributedDataParallel - SAN' in log
    first = rank_weights(tmp_path / 'first')
    assert_same_weights(*first)

    # Resume to 4 iterations; the port now comes from $MASTER_PORT.
    del opt['dist_params']
    opt['train']['total_iter'] = 4
    write_options(tmp_path / 'train.yml', opt)
    (tmp_path / 'second').mkdir()
    args = [LAUNCHER, tmp_path / 'second', '-opt', 'train.yml', '--launcher', 'slurm', '--auto_resume']
    proc = srun(slurm_cluster, args, tmp_path, env={'MASTER_PORT': str(free_port())})
    assert proc.returncode == 0, describe(proc)
    log = newest_log(run_dir)
    assert re.search(r'Resuming training from epoch: \d+, iter: 2\.', log), log[-3000:]
    assert 'World size (gpu number): 2' in log
    second = rank_weights(tmp_path / 'second')
    assert_same_weights(*second)
    assert any(not torch.equal(first[0][key], second[0][key]) for key in second[0])
    assert (run_dir / 'models' / 'net_g_4.pth').exists()


@pytest.mark.slow
@pytest.mark.xdist_group('slurm')
def test_slurm_launcher_trains_a_basicsr_model(slurm_cluster, tmp_path):
    gt_dir, lq_dir = make_pairs(tmp_path / 'pairs', num=4)
    opt = train_options('tiny_slurm_srmodel', gt_dir, lq_dir, total_iter=2, network=TINY_MSRRESNET, validate=False)
    opt.update(num_gpu='auto', model_type='SRModel')
    write_options(tmp_path / 'train.yml', opt)
    args = ['-m', 'basicsr.train', '-opt', 'train.yml', '--launcher', 'slurm']
    proc = srun(slurm_cluster, args, tmp_path, env={'MASTER_PORT': str(free_port())})
    assert proc.returncode == 0, describe(proc)
    run_dir = tmp_path / 'experiments' / opt['name']
    log = read_log(run_dir, 'train_')
    assert 'World size (gpu number): 2' in log
    assert 'Model [SRModel] is created.' in log
    assert 'Network: DistributedDataParallel - MSRResNet' in log
    assert (run_dir / 'models' / 'net_g_latest.pth').exists()


@pytest.fixture
def slurm_step_env(monkeypatch):
    """The environment of task 1 of 4 (second task on its node) of a step on nodes n[3-4]; records the init call."""
    for name in ('MASTER_PORT', 'MASTER_ADDR', 'WORLD_SIZE', 'RANK', 'LOCAL_RANK'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('SLURM_PROCID', '1')
    monkeypatch.setenv('SLURM_NTASKS', '4')
    monkeypatch.setenv('SLURM_LOCALID', '1')
    monkeypatch.setenv('SLURM_NODELIST', 'n[3-4]')
    monkeypatch.setattr(san_dist.torch.cuda, 'is_available', lambda: False)
    monkeypatch.setattr(san_dist, 'first_slurm_host', lambda node_list: {'n[3-4]': 'n3'}[node_list])
    calls = []
    monkeypatch.setattr(san_dist.dist, 'init_process_group', lambda **kwargs: calls.append(kwargs))
    return calls


@pytest.mark.parametrize(
    'kwargs, master_port, expected_port',
    [({'port': 1234}, '999', '1234'), ({}, '999', '999'), ({'backend': 'nccl'}, None, '29500')],
)
def test_slurm_launcher_without_cuda_joins_with_gloo_from_slurm_env(
    slurm_step_env, monkeypatch, kwargs, master_port, expected_port
):
    if master_port is not None:
        monkeypatch.setenv('MASTER_PORT', master_port)
    san_dist.init_dist('slurm', **kwargs)
    assert slurm_step_env == [{'backend': 'gloo'}]
    expected = {'MASTER_ADDR': 'n3', 'MASTER_PORT': expected_port, 'WORLD_SIZE': '4', 'RANK': '1', 'LOCAL_RANK': '1'}
    assert {name: os.environ[name] for name in expected} == expected


def test_slurm_launcher_outside_a_job_step_fails_clearly(slurm_step_env, monkeypatch):
    monkeypatch.delenv('SLURM_PROCID')
    with pytest.raises(RuntimeError, match=r'outside a SLURM job step \(no \$SLURM_PROCID\); start it with srun'):
        san_dist.init_dist('slurm')
