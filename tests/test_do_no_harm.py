"""BasicSR's own networks train and resume bit-identically with and without the plugin.

Each case trains one of BasicSR's model families a few iterations on CPU through ``python -m basicsr.train``, once
with the plugin and once with BasicSR alone (``SAN_PLUGIN_AUTOLOAD=0``: only the torchvision alias), then resumes
each run from its checkpoint, and compares losses, validation metrics, saved weights, training states and the set
of files written. The runs use a copy of the installed BasicSR in a folder named ``site-packages`` (so BasicSR alone
writes there, as it writes into the real one, and the real one stays clean).

The differences asserted are exactly those of the README's compatibility table and no other:

- outputs: BasicSR alone writes ``experiments/`` beside its package (``site-packages``); with the plugin they go to
  the working directory;
- resume on CPU: BasicSR alone stops (its ``load_resume_state`` calls ``torch.cuda.current_device()``); the plugin
  resumes, to exactly what BasicSR's own resume computes when its CUDA calls are pointed at the CPU
  (``helpers/basicsr_cuda_on_cpu.py``).
"""

import re
import shutil
import sysconfig
from pathlib import Path

import pytest
import torch
from helpers.workflow import SCALE, describe, make_pairs, run_python, train_options, write_options

HELPERS = Path(__file__).resolve().parent / 'helpers'
RGB_MEAN = [0.4488, 0.4371, 0.4040]
SR_MODEL_NETWORKS = {
    'MSRResNet': {'type': 'MSRResNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1},
    'EDSR': {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'rgb_mean': RGB_MEAN},
    'RCAN': {'type': 'RCAN', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_group': 1, 'num_block': 1,
             'squeeze_factor': 4, 'rgb_mean': RGB_MEAN},
}  # fmt: skip
SWINIR = {'type': 'SwinIR', 'img_size': 32, 'window_size': 4, 'embed_dim': 8, 'depths': [1], 'num_heads': [2],
          'mlp_ratio': 2, 'upsampler': 'pixelshuffle', 'img_range': 1.0}  # fmt: skip
RRDBNET = {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4}
VGG_DISCRIMINATOR = {'type': 'VGGStyleDiscriminator', 'num_in_ch': 3, 'num_feat': 4, 'input_size': 128}
ALONE = {'SAN_PLUGIN_AUTOLOAD': '0'}
# Log lines whose content must match: losses per iteration and validation metrics (times and dates stripped).
LOSS_LINE = re.compile(r'\[epoch:\s*\d+, iter:\s*([\d,]+), lr:\(([^)]*)\)\].*?\] (.*)$')
METRIC_LINE = re.compile(r'(Validation .*|\t # \w+: .*)$')


def sr_case(name):
    opt = {'model_type': 'SRModel', 'network_g': dict(SR_MODEL_NETWORKS[name], upscale=SCALE)}
    return opt, 64


def swinir_case():
    return {'model_type': 'SwinIRModel', 'network_g': dict(SWINIR, upscale=SCALE)}, 64


def esrgan_case():
    """ESRGAN with RRDBNet and a VGG-style discriminator: pixel and GAN losses (the perceptual loss needs a VGG
    download)."""
    opt = {
        'model_type': 'ESRGANModel',
        'network_g': dict(RRDBNET, scale=SCALE),
        'network_d': dict(VGG_DISCRIMINATOR),
        'train': {
            'optim_d': {'type': 'Adam', 'lr': 1e-3, 'weight_decay': 0, 'betas': [0.9, 0.99]},
            'gan_opt': {
                'type': 'GANLoss',
                'gan_type': 'vanilla',
                'real_label_val': 1.0,
                'fake_label_val': 0.0,
                'loss_weight': 0.005,
            },  # fmt: skip
            'net_d_iters': 1,
            'net_d_init_iters': 0,
        },
    }
    return opt, 128


CASES = {
    'SRModel-MSRResNet': lambda: sr_case('MSRResNet'),
    'SRModel-EDSR': lambda: sr_case('EDSR'),
    'SRModel-RCAN': lambda: sr_case('RCAN'),
    'SwinIRModel-SwinIR': swinir_case,
    'ESRGANModel-RRDBNet-VGG': esrgan_case,
}


# BasicSR alone fails to resume on CPU in ``basicsr.train.load_resume_state`` (``torch.cuda.current_device()``), before
# any model or network is built, so one case shows it for all.
NO_CPU_RESUME_CASE = 'SRModel-MSRResNet'


@pytest.fixture(scope='module')
def basicsr_copy(tmp_path_factory):
    """A copy of the installed BasicSR in a folder named ``site-packages``, to put first on ``PYTHONPATH``."""
    site = tmp_path_factory.mktemp('lib') / 'site-packages'
    installed = Path(sysconfig.get_path('purelib')) / 'basicsr'
    shutil.copytree(installed, site / 'basicsr', ignore=shutil.ignore_patterns('__pycache__'))
    return site


@pytest.fixture(scope='module')
def pairs(tmp_path_factory):
    return make_pairs(tmp_path_factory.mktemp('pairs'), num=4, gt_size=128)


def case_options(name, pairs):
    changes, gt_size = CASES[name]()
    opt = train_options(f'harm_{name}', *pairs)
    opt['datasets']['train']['gt_size'] = gt_size
    opt['train']['ema_decay'] = 0.9
    opt.update({key: value for key, value in changes.items() if key != 'train'})
    opt['train'].update(changes.get('train', {}))
    opt['path']['strict_load_d'] = True
    return opt


def normalised_files(experiment):
    """The files of a run, with the time stamps of log names replaced."""
    names = (str(path.relative_to(experiment)) for path in experiment.rglob('*') if path.is_file())
    return sorted(re.sub(r'_\d{8}_\d{6}\.log$', '_<time>.log', name) for name in names)


def log_content(experiment):
    """Loss and metric lines of every log of a run, oldest first, without times."""
    lines = []
    for log in sorted(experiment.glob('train_*.log')):
        for line in log.read_text().splitlines():
            if match := LOSS_LINE.search(line):
                lines.append(' '.join(match.groups()))
            elif match := METRIC_LINE.search(line):
                lines.append(match.group(1))
    return lines


def assert_identical(value, other, where):
    """Equal to the bit: tensors with ``torch.equal`` (same dtype and shape), containers item by item."""
    assert type(value) is type(other), f'{where}: {type(value).__name__} vs {type(other).__name__}'
    if isinstance(value, torch.Tensor):
        assert value.dtype == other.dtype and torch.equal(value, other), f'{where} differs'
    elif isinstance(value, dict):
        assert list(value) == list(other), f'{where}: keys {list(value)} vs {list(other)}'
        for key in value:
            assert_identical(value[key], other[key], f'{where}[{key!r}]')
    elif isinstance(value, (list, tuple)):
        assert len(value) == len(other), f'{where}: length {len(value)} vs {len(other)}'
        for index, (item, other_item) in enumerate(zip(value, other)):
            assert_identical(item, other_item, f'{where}[{index}]')
    else:
        assert value == other, f'{where}: {value!r} vs {other!r}'


def assert_same_runs(alone, plugin):
    """Same files, same log losses and metrics, bit-identical checkpoints; returns the largest weight difference."""
    assert normalised_files(alone) == normalised_files(plugin)
    assert log_content(alone) == log_content(plugin)
    assert len(log_content(plugin)) > 4, log_content(plugin)
    for path in [*alone.glob('models/*.pth'), *alone.glob('training_states/*.state')]:
        where = str(path.relative_to(alone))
        assert_identical(torch.load(path, weights_only=True), torch.load(plugin / where, weights_only=True), where)


@pytest.mark.slow
@pytest.mark.parametrize('name', CASES)
def test_basicsr_networks_train_and_resume_identically_with_the_plugin(name, tmp_path, basicsr_copy, pairs):
    opt = case_options(name, pairs)
    options = write_options(tmp_path / 'train.yml', opt)
    env = {'PYTHONPATH': str(basicsr_copy)}
    plugin_dir = tmp_path / 'plugin'
    plugin_dir.mkdir()
    train = ['-m', 'basicsr.train', '-opt', options]

    proc = run_python(train, cwd=tmp_path, env={**env, **ALONE})
    assert proc.returncode == 0, describe(proc)
    proc = run_python(train, cwd=plugin_dir, env=env)
    assert proc.returncode == 0, describe(proc)
    # Difference 1: BasicSR alone writes beside its package, the plugin into the working directory.
    alone, plugin = basicsr_copy / 'experiments' / opt['name'], plugin_dir / 'experiments' / opt['name']
    assert not (tmp_path / 'experiments').exists() and not (basicsr_copy / 'experiments' / 'plugin').exists()
    assert {'net_g_2.pth', 'net_g_4.pth', 'net_g_latest.pth'} <= {p.name for p in (alone / 'models').iterdir()}
    assert_same_runs(alone, plugin)

    # Difference 2: BasicSR alone cannot resume on CPU; the plugin resumes as BasicSR's own code does on a GPU.
    resume = [*train, '--auto_resume', '--force_yml', 'train:total_iter=6']
    if name == NO_CPU_RESUME_CASE:
        proc = run_python(resume, cwd=basicsr_copy, env={**env, **ALONE})
        assert proc.returncode != 0 and 'Found no NVIDIA driver' in proc.stderr, describe(proc)
    proc = run_python([HELPERS / 'basicsr_cuda_on_cpu.py', *resume[2:]], cwd=basicsr_copy, env={**env, **ALONE})
    assert proc.returncode == 0, describe(proc)
    proc = run_python(resume, cwd=plugin_dir, env=env)
    assert proc.returncode == 0, describe(proc)
    assert (plugin / 'training_states' / '6.state').is_file()
    assert 'Resuming training from epoch: ' in sorted(plugin.glob('train_*.log'))[-1].read_text()
    assert_same_runs(alone, plugin)
