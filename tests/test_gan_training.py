"""GAN training with ``SANGANModel`` (BasicSR's ESRGANModel with the plugin's features), on the CPU.

One tiny run of the shipped ``train_SAN_GAN_x4.yml`` (tiny data, tiny discriminator, the locally made VGG19) starts
from the authors' ``.pt``, is killed with SIGKILL, and resumes with ``--auto_resume`` as a two-rank CPU DDP run;
the other formats of ``pretrain_network_g`` are loaded in-process.
"""

import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from basicsr.models import build_model
from basicsr.utils import get_root_logger
from fixture_weights import fixture_and_weights
from helpers.gan import cut_down, shipped_options, torch_home
from helpers.workflow import OMP_ONE_THREAD, describe, free_port, make_pairs, read_log, run_python, write_options

from san_plugin.compat.resume import load_training_state
from san_plugin.convert.convert_file import convert_file
from san_plugin.convert.loading import read_any_checkpoint
from san_plugin.convert.original_san import san_config_from_original

LAUNCHER = Path(__file__).resolve().parent / 'helpers' / 'ddp_train.py'
FIXTURE = 'san_x4_g2b2.pt'  # the authors' SAN at x4, 2 groups of 2 blocks
BATCH_NORM_STATISTICS = ('running_mean', 'running_var', 'num_batches_tracked')


def authors_san(folder):
    """The fixture's authors'-format SAN written to ``folder/SAN_BIX4.pt``; returns its path and ``network_g``."""
    _, weights = fixture_and_weights(FIXTURE)
    path = Path(folder) / 'SAN_BIX4.pt'
    torch.save(weights, path)
    return path, {'type': 'SAN', **san_config_from_original(weights)}


def in_process_options(tmp_path, pretrain, network_g, **top_level):
    """The cut-down GAN options as ``basicsr.train`` completes them for one CPU process (no perceptual loss)."""
    opt = cut_down(shipped_options('train_SAN_GAN_x4'), 'gan', network_g, tmp_path, tmp_path, total_iter=1)
    opt.update(is_train=True, dist=False, rank=0, world_size=1, **top_level)
    opt['train']['perceptual_opt'] = None
    opt['path']['pretrain_network_g'] = str(pretrain)
    for key in ('models', 'training_states'):
        (tmp_path / key).mkdir(exist_ok=True)
        opt['path'][key] = str(tmp_path / key)
    return opt


@pytest.mark.parametrize('suffix', ['.pt', '.pth', '.safetensors'])
def test_pretrain_network_g_in_every_format_starts_generator_and_ema(tmp_path, suffix):
    authors, network_g = authors_san(tmp_path)
    pretrain = authors if suffix == '.pt' else tmp_path / f'SAN_x4{suffix}'
    if suffix != '.pt':
        convert_file(authors, pretrain)
    _, expected, _, _ = read_any_checkpoint(authors)
    model = build_model(in_process_options(tmp_path, pretrain, network_g))
    assert type(model).__name__ == 'SANGANModel'
    for net in (model.net_g, model.net_g_ema):
        state = net.state_dict()
        assert state.keys() == expected.keys()
        assert all(torch.equal(state[key], expected[key]) for key in expected), f'{suffix}: weights differ'


def test_use_amp_is_turned_off_with_a_warning(tmp_path, caplog):
    authors, network_g = authors_san(tmp_path)
    logger = get_root_logger()
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING), pytest.warns(RuntimeWarning, match='use_amp: turned off for SAN'):
            model = build_model(in_process_options(tmp_path, authors, network_g, use_amp=True))
    finally:
        logger.removeHandler(caplog.handler)
    assert model.switches.amp_dtype is None
    assert "use_amp: turned off for SAN on cpu: SANGANModel trains with ESRGANModel's step" in caplog.text


def wait_for(path, proc, timeout=300):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f'training ended (exit {proc.returncode}) before {path} appeared'
        assert time.monotonic() < deadline, f'{path} did not appear within {timeout} s'
        time.sleep(0.05)


def complete_iterations(experiment):
    """Iterations with a training state, a generator and a discriminator."""
    states = {int(p.stem) for p in (experiment / 'training_states').glob('*.state')}
    nets = ('net_g', 'net_d')
    return sorted(i for i in states if all((experiment / 'models' / f'{n}_{i}.pth').exists() for n in nets))


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.slow
def test_gan_run_survives_kill_and_resumes_as_cpu_ddp(tmp_path, vgg19_weights):
    authors, network_g = authors_san(tmp_path)
    gt_dir, lq_dir = make_pairs(tmp_path / 'pairs', num=2, gt_size=208, scale=4)
    opt = cut_down(shipped_options('train_SAN_GAN_x4'), 'tiny_gan', network_g, gt_dir, lq_dir, total_iter=100000)
    opt['path']['pretrain_network_g'] = str(authors)
    opt['logger']['save_checkpoint_freq'] = 1
    write_options(tmp_path / 'train.yml', opt)
    env = dict(os.environ, **OMP_ONE_THREAD, **torch_home(vgg19_weights))
    experiment = tmp_path / 'experiments' / opt['name']
    with open(tmp_path / 'first.out', 'w') as out:
        proc = subprocess.Popen(
            [sys.executable, '-m', 'basicsr.train', '-opt', 'train.yml'],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(experiment / 'training_states' / '2.state', proc)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    log = read_log(experiment, 'train_')
    assert f"Loading {authors}: authors' SAN format, converted on load" in log
    assert 'Network: VGGStyleDiscriminator' in log and 'l_g_percep: ' in log and 'l_d_fake: ' in log
    # Whatever was being written at the kill, every file a reader can see is complete.
    for path in [*experiment.glob('models/*.pth'), *experiment.glob('training_states/*.state')]:
        torch.load(path, weights_only=True)
    last = complete_iterations(experiment)[-1]
    net_g = torch.load(experiment / 'models' / f'net_g_{last}.pth', weights_only=True)
    net_d = torch.load(experiment / 'models' / f'net_d_{last}.pth', weights_only=True)
    assert set(net_g) == {'params', 'params_ema', 'network_config'} and net_g['network_config']['type'] == 'SAN'
    assert set(net_d) == {'params', 'network_config'}
    assert net_d['network_config']['type'] == 'VGGStyleDiscriminator'
    state = load_training_state(str(experiment / 'training_states' / f'{last}.state'))
    assert len(state['optimizers']) == len(state['schedulers']) == 2  # generator and discriminator

    # A newer iteration whose discriminator was cut short by a writer without atomic saves, and a killed save's
    # temporary file: the resume skips the first and removes the second.
    newer = last + 10
    models, states = experiment / 'models', experiment / 'training_states'
    for name in ('net_g', 'net_d'):
        (models / f'{name}_{newer}.pth').write_bytes((models / f'{name}_{last}.pth').read_bytes())
    truncate(models / f'net_d_{newer}.pth')
    torch.save(dict(state, iter=newer), states / f'{newer}.state')
    leftover = models / f'.net_d_{last + 1}.pth.{proc.pid}-0123456789ab.tmp'
    leftover.write_bytes(b'what a killed save left')

    weights = tmp_path / 'ranks'
    weights.mkdir()
    launch = ['-m', 'torch.distributed.run', '--nnodes=1', '--nproc_per_node=2', '--master_addr=127.0.0.1']
    resume = f'-opt train.yml --launcher pytorch --auto_resume --force_yml train:total_iter={last + 1}'.split()
    proc = run_python(
        [*launch, f'--master_port={free_port()}', LAUNCHER, weights, *resume],
        cwd=tmp_path,
        env=torch_home(vgg19_weights),
    )
    assert proc.returncode == 0, describe(proc)
    rejected = (
        f'Not resuming from {states}/{newer}.state: ValueError: Cannot load the network {models}/net_d_{newer}.pth'
    )
    assert rejected in proc.stderr
    assert not leftover.exists()
    log = sorted(experiment.glob('train_*.log'))[-1].read_text()
    assert re.search(rf'Resuming training from epoch: \d+, iter: {last}\.', log), log[-3000:]
    assert rejected in log  # also in the run's own log file
    assert 'World size (gpu number): 2' in log
    assert 'Network: DistributedDataParallel - SAN' in log
    assert 'Network: DistributedDataParallel - VGGStyleDiscriminator' in log
    assert f'iter: {last + 1:>7,d}' in log and 'End of training.' in log
    assert '# psnr: ' in log and '# niqe: ' in log  # the final validation
    for name, saved in (('', net_g), ('_net_d', net_d)):
        # Parameters; not BatchNorm statistics: DDP gives every rank rank 0's before each forward, and each rank's
        # last forward then updates its own.
        init, final = (
            [torch.load(weights / f'rank{r}_{stage}{name}.pth') for r in (0, 1)] for stage in ('init', 'final')
        )
        params = {key: value for key, value in saved['params'].items() if not key.endswith(BATCH_NORM_STATISTICS)}
        for key, value in params.items():  # both ranks resumed from the checkpoint and stayed in sync
            assert torch.equal(init[0][key], value) and torch.equal(init[1][key], value), f'{name or "net_g"} {key}'
            assert torch.equal(final[0][key], final[1][key]), f'{name or "net_g"} {key} differs between ranks'
        assert any(not torch.equal(final[0][key], value) for key, value in params.items())
    assert load_training_state(str(states / f'{last + 1}.state'))['iter'] == last + 1
    assert {'net_g_latest.pth', 'net_d_latest.pth'} <= {p.name for p in models.iterdir()}


def test_discriminator_input_size_must_be_the_gt_patch_size(tmp_path):
    authors, network_g = authors_san(tmp_path)
    opt = in_process_options(tmp_path, authors, network_g)
    opt['datasets']['train']['gt_size'] = 192
    message = 'network_d.input_size is 128 but datasets.train.gt_size is 192: VGGStyleDiscriminator sees the GT patches'
    with pytest.raises(ValueError, match=message):
        build_model(opt)
