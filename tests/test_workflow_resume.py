"""Checkpoints survive a kill at any moment, and ``--auto_resume`` continues from the newest complete one."""

import logging
import os
import re

import pytest
import torch
from basicsr.models.lr_scheduler import MultiStepRestartLR
from helpers.workflow import (
    complete_iterations,
    describe,
    kill_training_at,
    make_pairs,
    run_python,
    train_options,
    truncate,
    write_options,
)

from san_plugin.compat.resume import (
    ResumeError,
    ResumeReport,
    find_resume_state,
    load_resume_state,
    load_training_state,
)
from san_plugin.utils.atomic_save import atomic_torch_save, is_temporary


def training_state(current_iter):
    """A real BasicSR training state: Adam and MultiStepRestartLR after ``current_iter`` steps."""
    param = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.Adam([param], lr=1e-3)
    scheduler = MultiStepRestartLR(optimizer, milestones=[2, 4], gamma=0.5)
    for _ in range(current_iter):
        param.sum().backward()
        optimizer.step()
        scheduler.step()
    return {
        'epoch': 0,
        'iter': current_iter,
        'optimizers': [optimizer.state_dict()],
        'schedulers': [scheduler.state_dict()],
    }


@pytest.fixture
def run_dirs(tmp_path):
    """Options of a run whose folders exist, with an auto-resume request."""
    models, states = tmp_path / 'models', tmp_path / 'training_states'
    models.mkdir()
    states.mkdir()
    opt = {
        'name': 'tiny',
        'network_g': {'type': 'SAN'},
        'num_gpu': 0,
        'auto_resume': True,
        'path': {'models': str(models), 'training_states': str(states), 'log': str(tmp_path), 'resume_state': None},
    }
    return opt, models, states


def save_checkpoint(models, states, current_iter):
    atomic_torch_save({'params': {'w': torch.full((2,), float(current_iter))}}, models / f'net_g_{current_iter}.pth')
    atomic_torch_save(training_state(current_iter), states / f'{current_iter}.state')


def test_atomic_save_leaves_old_file_and_no_temporary_when_saving_fails(tmp_path):
    path = tmp_path / 'net_g_2.pth'
    atomic_torch_save({'params': {'w': torch.zeros(1)}}, path)
    with pytest.raises(Exception, match='lambda'):
        atomic_torch_save({'params': lambda: None}, path)  # cannot be pickled
    assert [p.name for p in tmp_path.iterdir()] == ['net_g_2.pth']
    assert torch.equal(torch.load(path, weights_only=True)['params']['w'], torch.zeros(1))


def test_atomic_save_names_the_file_on_os_errors(tmp_path):
    with pytest.raises(OSError, match=re.escape(str(tmp_path / 'missing' / 'net_g_2.pth'))):
        atomic_torch_save({}, tmp_path / 'missing' / 'net_g_2.pth')


def test_training_state_loads_with_weights_only_and_its_counter(tmp_path):
    atomic_torch_save(training_state(3), tmp_path / '3.state')
    state = load_training_state(str(tmp_path / '3.state'))
    assert state['iter'] == 3
    assert state['schedulers'][0]['milestones'] == {2: 1, 4: 1}


def test_training_state_errors_name_the_file(tmp_path):
    torch.save({'iter': 3}, tmp_path / 'partial.state')
    with pytest.raises(ValueError, match=r'partial\.state is not a BasicSR training state'):
        load_training_state(str(tmp_path / 'partial.state'))
    atomic_torch_save(training_state(3), tmp_path / '3.state')
    truncate(tmp_path / '3.state')
    with pytest.raises(ValueError, match=r'Cannot load the training state .*3\.state'):
        load_training_state(str(tmp_path / '3.state'))


def test_auto_resume_skips_incomplete_checkpoints(run_dirs, caplog):
    opt, models, states = run_dirs
    for current_iter in (2, 4, 6, 8, 10, 12):
        save_checkpoint(models, states, current_iter)
    truncate(states / '12.state')  # killed while writing the state
    truncate(models / 'net_g_10.pth')  # killed while writing the network
    os.remove(models / 'net_g_8.pth')  # network never written
    torch.save(training_state(4), states / '6.state')  # a state whose content is of another iteration
    (states / 'latest.state').write_bytes(b'')  # not an iteration: ignored
    with caplog.at_level(logging.WARNING, logger='san_plugin.compat.resume'):
        path, state = find_resume_state(opt)
    assert (path, state['iter']) == (str(states / '4.state'), 4)
    skipped = [re.search(r'Not resuming from .*/(\d+)\.state', m).group(1) for m in caplog.messages]
    assert skipped == ['12', '10', '8', '6']
    assert 'net_g_10.pth' in caplog.messages[1] and 'net_g_8.pth is missing' in caplog.messages[2]


def test_auto_resume_stops_when_no_checkpoint_is_usable_and_says_why(run_dirs, tmp_path):
    opt, models, states = run_dirs
    for current_iter in (2, 4):
        save_checkpoint(models, states, current_iter)
    truncate(states / '4.state')
    os.remove(models / 'net_g_2.pth')
    with pytest.raises(ResumeError) as error:
        load_resume_state(opt)
    message = str(error.value)
    assert f'the run has training states in {states} but none can be resumed from' in message
    assert re.search(rf'Not resuming from {states}/4\.state: ValueError: Cannot load the training state', message)
    assert f'Not resuming from {states}/2.state: FileNotFoundError: {models}/net_g_2.pth is missing' in message
    (log,) = tmp_path.glob('train_tiny_*.log')
    assert 'ERROR: --auto_resume' in log.read_text() and f'{states}/4.state' in log.read_text()
    assert opt['path']['resume_state'] is None


def test_rejected_checkpoints_go_into_the_run_log_once_basicsr_makes_it(run_dirs):
    opt, models, states = run_dirs
    for current_iter in (2, 4):
        save_checkpoint(models, states, current_iter)
    truncate(models / 'net_g_4.pth')
    report = ResumeReport()
    assert load_resume_state(opt, report)['iter'] == 2
    records = []
    run_logger = logging.getLogger('tiny_run_logger')
    run_logger.addHandler(handler := logging.Handler())
    handler.emit = records.append
    get_root_logger = report.wrap_get_root_logger(lambda **kwargs: run_logger)
    assert get_root_logger(log_file='train.log') is run_logger
    get_root_logger(log_file='train.log')
    assert [r.getMessage().split(': ')[0] for r in records] == [f'Not resuming from {states}/4.state']


def test_resume_removes_temporaries_of_a_killed_save(run_dirs):
    opt, models, states = run_dirs
    save_checkpoint(models, states, 2)
    (models / '.net_g_4.pth.999-0123456789ab.tmp').write_bytes(b'half')
    (states / '.4.state.999-0123456789ab.tmp').write_bytes(b'half')
    assert load_resume_state(opt)['iter'] == 2
    assert not [p for folder in (models, states) for p in folder.iterdir() if is_temporary(p.name)]
    assert sorted(p.name for p in models.iterdir()) == ['net_g_2.pth']


def test_auto_resume_without_states_starts_from_scratch(run_dirs):
    opt, _, states = run_dirs
    assert load_resume_state(opt) is None
    os.rmdir(states)
    assert load_resume_state(opt) is None


def test_resume_on_cpu_sets_the_networks_to_load(run_dirs):
    opt, models, states = run_dirs
    save_checkpoint(models, states, 2)
    state = load_resume_state(opt)
    assert state['iter'] == 2 and state['optimizers'][0]['state'][0]['exp_avg'].device.type == 'cpu'
    assert opt['path']['resume_state'] == str(states / '2.state')
    assert opt['path']['pretrain_network_g'] == str(models / 'net_g_2.pth')


def test_explicit_resume_state_is_loaded_even_when_newer_ones_exist(run_dirs):
    opt, models, states = run_dirs
    for current_iter in (2, 4):
        save_checkpoint(models, states, current_iter)
    opt.update(auto_resume=False)
    opt['path']['resume_state'] = str(states / '2.state')
    assert load_resume_state(opt)['iter'] == 2


@pytest.mark.slow
def test_killed_training_auto_resumes_from_last_complete_checkpoint(tmp_path):
    opt = train_options('tiny_kill', *make_pairs(tmp_path / 'pairs'), total_iter=100000, validate=False)
    opt['logger']['save_checkpoint_freq'] = 1
    write_options(tmp_path / 'train.yml', opt)
    experiment = tmp_path / 'experiments' / opt['name']
    killed = kill_training_at(3, tmp_path, experiment)
    # Whatever was being written at the kill, every file a reader can see is complete.
    for path in [*experiment.glob('models/*.pth'), *experiment.glob('training_states/*.state')]:
        torch.load(path, weights_only=True)
    last = complete_iterations(experiment)[-1]
    # Simulate a kill mid-save by a writer without atomic saves, at two newer iterations.
    truncated_state, truncated_net = last + 10, last + 20
    (experiment / 'models' / f'net_g_{truncated_state}.pth').write_bytes(
        (experiment / 'models' / f'net_g_{last}.pth').read_bytes()
    )
    (experiment / 'training_states' / f'{truncated_state}.state').write_bytes(
        (experiment / 'training_states' / f'{last}.state').read_bytes()
    )
    truncate(experiment / 'training_states' / f'{truncated_state}.state')
    state = torch.load(experiment / 'training_states' / f'{last}.state', weights_only=True)
    torch.save(dict(state, iter=truncated_net), experiment / 'training_states' / f'{truncated_net}.state')
    (experiment / 'models' / f'net_g_{truncated_net}.pth').write_bytes(
        (experiment / 'models' / f'net_g_{last}.pth').read_bytes()
    )
    truncate(experiment / 'models' / f'net_g_{truncated_net}.pth')
    leftover = experiment / 'models' / f'.net_g_{last + 1}.pth.{killed}-0123456789ab.tmp'
    leftover.write_bytes(b'what a killed save left')

    proc = run_python(
        ['-m', 'basicsr.train', '-opt', 'train.yml', '--auto_resume', '--force_yml', f'train:total_iter={last + 2}'],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, describe(proc)
    assert f'Not resuming from {experiment}/training_states/{truncated_net}.state' in proc.stderr
    assert f'Not resuming from {experiment}/training_states/{truncated_state}.state' in proc.stderr
    log = sorted(experiment.glob('train_*.log'))[-1].read_text()
    assert re.search(rf'Resuming training from epoch: \d+, iter: {last}\.', log), log[-3000:]
    for rejected in (truncated_net, truncated_state):  # also in the run's own log file
        assert f'WARNING: Not resuming from {experiment}/training_states/{rejected}.state' in log
    assert not leftover.exists()
    assert f'iter: {last + 2:>7,d}' in log and 'End of training.' in log
    assert (experiment / 'models' / 'net_g_latest.pth').exists()
    assert load_training_state(str(experiment / 'training_states' / f'{last + 2}.state'))['iter'] == last + 2
