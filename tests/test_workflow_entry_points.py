"""SAN trains and tests through every way of running BasicSR 1.4.2, on CPU, with outputs in the working directory."""

import re
import shutil
import sysconfig
from pathlib import Path

import cv2
import pytest
import torch
import yaml
from basicsr.archs import build_network
from helpers.workflow import (
    REPO_ROOT,
    TINY_SAN,
    describe,
    eval_options,
    make_pairs,
    read_log,
    run_python,
    train_options,
    write_options,
)

BASICSR_DIR = Path(sysconfig.get_path('purelib')) / 'basicsr'
TRAIN_ENTRY_POINTS = {'basicsr_module': ['-m', 'basicsr.train'], 'tools': [REPO_ROOT / 'tools' / 'train.py']}
TEST_ENTRY_POINTS = {'basicsr_module': ['-m', 'basicsr.test'], 'tools': [REPO_ROOT / 'tools' / 'test.py']}


@pytest.fixture(scope='module')
def pairs(tmp_path_factory):
    return make_pairs(tmp_path_factory.mktemp('pairs'))


@pytest.fixture(scope='module')
def tiny_weights(tmp_path_factory):
    path = tmp_path_factory.mktemp('weights') / 'tiny_san.pth'
    torch.save({'params': build_network(TINY_SAN).state_dict()}, path)
    return path


def assert_trained_and_resumes(command, cwd, experiment, env=None, ema=True):
    """Train 4 iterations with ``command``, then resume to 6 with ``--auto_resume``.

    Checks checkpoints every 2 iterations and at the end, EMA weights (``ema``: the options have ``ema_decay`` > 0),
    training states, SAN and SANModel, the validation PSNR, and a resume on CPU from the run's newest state.
    """
    proc = run_python(command, cwd=cwd, env=env)
    assert proc.returncode == 0, describe(proc)
    models, states = experiment / 'models', experiment / 'training_states'
    assert sorted(p.name for p in models.iterdir()) == ['net_g_2.pth', 'net_g_4.pth', 'net_g_latest.pth']
    assert sorted(p.name for p in states.iterdir()) == ['2.state', '4.state']
    saved = torch.load(models / 'net_g_latest.pth', weights_only=True)
    assert set(saved) == {
        'params',
        'network_config',
        *(['params_ema'] if ema else []),
    }  # the record: tests/test_self_describing.py
    assert saved['network_config']['type'] == 'SAN'
    log = read_log(experiment, 'train_')
    assert 'Network [SAN] is created.' in log
    assert 'Model [SANModel] is created.' in log
    psnrs = [float(v) for v in re.findall(r'# psnr: (\d+\.\d+)', log)]
    assert len(psnrs) == 3 and all(10 < v < 60 for v in psnrs), psnrs

    proc = run_python([*command, '--auto_resume', '--force_yml', 'train:total_iter=6'], cwd=cwd, env=env)
    assert proc.returncode == 0, describe(proc)
    resumed_log = sorted(experiment.glob('train_*.log'))[-1].read_text()
    assert 'Resuming training from epoch: 0, iter: 4.' in resumed_log
    assert (states / '6.state').is_file()
    return log


@pytest.mark.slow
@pytest.mark.parametrize('entry', TRAIN_ENTRY_POINTS, ids=str)
def test_train_writes_into_working_directory(entry, tmp_path, pairs):
    opt = train_options(f'tiny_train_{entry}', *pairs)
    opt['logger']['use_tb_logger'] = True
    write_options(tmp_path / 'train.yml', opt)
    assert_trained_and_resumes(
        [*TRAIN_ENTRY_POINTS[entry], '-opt', 'train.yml'], tmp_path, tmp_path / 'experiments' / opt['name']
    )
    assert (tmp_path / 'tb_logger' / opt['name']).is_dir()
    for leaked in ('experiments', 'tb_logger'):
        assert not (BASICSR_DIR.parent / leaked / opt['name']).exists()


def tiny_run_of_shipped_options(relative_path, gt_dir, lq_dir):
    """The options file ``relative_path`` of this repository, its data paths pointed at the tiny pairs (read from
    disk) and its network, batch and schedule shrunk to a 4-iteration CPU run that saves and validates every 2."""
    opt = yaml.safe_load((REPO_ROOT / relative_path).read_text())
    for phase in ('train', 'val'):
        opt['datasets'][phase].update(dataroot_gt=str(gt_dir), dataroot_lq=str(lq_dir), io_backend={'type': 'disk'})
    opt['datasets']['train'].update(gt_size=32, batch_size_per_gpu=2, num_worker_per_gpu=0)
    opt['network_g'].update(num_feat=16, num_group=2, num_block=1, squeeze_factor=4)
    opt['train'].update(total_iter=4, scheduler={'type': 'MultiStepLR', 'milestones': [1000], 'gamma': 0.5})
    opt['val']['val_freq'] = 2
    opt['logger'].update(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False)
    return opt


@pytest.mark.slow
def test_the_readme_command_from_a_fresh_basicsr_checkout(tmp_path):
    """The user's command, ``python basicsr/train.py -opt options/train_SAN_x4.yml``, in a fresh BasicSR clone with
    the shipped file copied into its ``options/`` (data and size shrunk): no ``version.py`` (BasicSR's set-up writes
    it), nothing on PYTHONPATH; BasicSR's modules come from the installed BasicSR, outputs go to the checkout, as the
    README says."""
    checkout = tmp_path / 'BasicSR'
    shutil.copytree(BASICSR_DIR, checkout / 'basicsr', ignore=shutil.ignore_patterns('__pycache__', 'version.py'))
    gt_dir, lq_dir = make_pairs(tmp_path / 'pairs_x4', scale=4)
    opt = tiny_run_of_shipped_options('options/train_SAN_x4.yml', gt_dir, lq_dir)
    (checkout / 'options').mkdir()
    write_options(checkout / 'options' / 'train_SAN_x4.yml', opt)
    command = ['basicsr/train.py', '-opt', 'options/train_SAN_x4.yml']
    log = assert_trained_and_resumes(command, checkout, checkout / 'experiments' / opt['name'], ema=False)
    assert 'upscale: 4' in log and 'type: CheckedPairedImageDataset' in log
    # What the README warns against: the checkout's own package needs the version.py that its set-up generates.
    proc = run_python(command, cwd=checkout, env={'PYTHONPATH': '.'})
    assert proc.returncode != 0 and "No module named 'basicsr.version'" in proc.stderr, describe(proc)


def test_the_recipe_to_start_from_is_the_papers():
    """``options/train_SAN_x4.yml`` (the README's command) holds the same settings as the paper recipe it names."""
    shipped = yaml.safe_load((REPO_ROOT / 'options' / 'train_SAN_x4.yml').read_text())
    assert shipped == yaml.safe_load((REPO_ROOT / 'options' / 'train' / 'train_SAN_x4_paper.yml').read_text())


@pytest.mark.slow
def test_train_from_an_installed_basicsr_checkout(tmp_path, pairs):
    """``PYTHONPATH=. python basicsr/train.py`` in a checkout whose set-up has run (it has ``version.py``): the
    checkout's own modules are used."""
    checkout = tmp_path / 'BasicSR'
    shutil.copytree(BASICSR_DIR, checkout / 'basicsr', ignore=shutil.ignore_patterns('__pycache__'))
    version = checkout / 'basicsr' / 'version.py'
    version.write_text(version.read_text().replace("__version__ = '1.4.2'", "__version__ = '1.4.2+checkout'"))
    opt = train_options('tiny_train_checkout', *pairs)
    write_options(tmp_path / 'train.yml', opt)
    command = ['basicsr/train.py', '-opt', tmp_path / 'train.yml']
    log = assert_trained_and_resumes(command, checkout, checkout / 'experiments' / opt['name'], {'PYTHONPATH': '.'})
    assert 'BasicSR: 1.4.2+checkout' in log


@pytest.mark.slow
@pytest.mark.parametrize('entry', TEST_ENTRY_POINTS, ids=str)
def test_test_writes_metrics_and_images(entry, tmp_path, pairs, tiny_weights):
    opt = eval_options(f'tiny_test_{entry}', *pairs, weights=tiny_weights)
    write_options(tmp_path / 'test.yml', opt)
    proc = run_python([*TEST_ENTRY_POINTS[entry], '-opt', 'test.yml'], cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    results = tmp_path / 'results' / opt['name']
    log = read_log(results, 'test_')
    assert f'Loading SAN model from {tiny_weights}' in log
    assert re.search(r'Validation tiny_test\s+# psnr: \d+\.\d+.*\n\s+# ssim: 0\.\d+', log), log[-2000:]
    images = sorted((results / 'visualization' / 'tiny_test').glob('*.png'))
    assert [p.name for p in images] == [f'{i:04d}_{opt["name"]}.png' for i in range(8)]
    assert cv2.imread(str(images[0])).shape == (32, 32, 3)


def test_plain_python_start_up_imports_nothing_heavy(tmp_path):
    """The start-up hook that finds the plugin costs programs that never import BasicSR nothing heavy."""
    proc = run_python(['-c', "import sys; print('torch' in sys.modules, 'san_plugin' in sys.modules)"], cwd=tmp_path)
    assert proc.returncode == 0, describe(proc)
    assert proc.stdout.strip() == 'False False'
