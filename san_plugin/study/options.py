"""The study file of ``tools/compare.py``: read, fill defaults, check every key before anything is trained.

Schema (``options/compare/san_ablation_x2.yml`` is a full example)::

    name: san_ablation_x2        # runs are named <name>_<network>_x<scale>_s<seed> (experiments/<run>/)
    out: results/compare/san_ablation_x2   # report folder; generated options, logs and run records go inside
    data_root: datasets          # where prepared training and test data go
    scales: [2]
    seeds: [0, 1, 2]
    threads: 1                   # optional: CPU threads of training and evaluation (default: torch's)
    param_tolerance: 0.1         # optional: stop unless every network is within 10% of the first one's parameters
    alpha: 0.05                  # optional: significance level of the report's tests, in (0, 1) (default 0.05)
    min_effect_db: 0.05          # optional: PSNR difference the report's seeds-for-80%-power is sized for, > 0 dB
    networks:                    # BasicSR network_g blocks by name (upscale is set per scale)
      SAN: {type: SAN, num_feat: 32, num_group: 4, num_block: 4, squeeze_factor: 4}
    train:                       # one protocol for every network and seed
      data: ../shared/datasets/BSD200   # folder of HR images, prepared with tools/prepare_data.py's code
      crop_size: 144             # HR sub-images of the training LMDB (multiples of 24)
      step: 96
      gt_size: 64                # HR patch side (LR patch = gt_size / scale)
      batch_size: 16
      total_iter: 500
      lr: 1.0e-3                 # Adam (0.9, 0.99), cosine annealing over total_iter down to eta_min
      eta_min: 1.0e-6
      val_freq: 100              # validation PSNR on test.val_dataset every val_freq iterations (convergence plots)
      print_freq: 20
      save_checkpoint_freq: 100  # --auto_resume restarts a killed run from the last of these
    test:
      datasets:                  # hr (+ lr) folders with {scale}, or images: a folder of HR images to prepare
        Set5: {hr: ../shared/datasets/Set5/HR/x{scale}, lr: ../shared/datasets/Set5/LR_bicubic/x{scale}}
        B100: {images: ../shared/datasets/B100/HR}
      val_dataset: Set5          # the data set validated during training
      flops_input: [360, 640]    # LR height, width of the FLOPs count (default: the LR of a 1280x720 output)
      memory_input: 128          # LR side of the inference whose peak memory is measured (fresh process per model)
      metrics: [niqe, lpips]     # optional: perceptual metrics beside PSNR and SSIM (lpips, dists, niqe; a mapping
                                 # name -> options also works, e.g. {lpips: {net: vgg}}); each one listed must have
                                 # its ImageNet weights (else the study stops). Default: none without a gan block;
                                 # with one, niqe, plus lpips and dists where their weights are found (the report
                                 # names a metric left out and why). NIQE needs images with two 96x96 blocks
                                 # (e.g. 96x192) once scale pixels are cropped from each edge.
    min_effect: {ssim: 0.001, niqe: 0.1, lpips: 0.01, dists: 0.01}   # optional: the difference of each metric
                                 # (psnr: min_effect_db) the seeds-for-80%-power columns are sized for

    # A GAN stage (optional): every PSNR run (network, scale, seed) is followed by a GAN run of the same network and
    # seed (<name>_<network>_x<scale>_s<seed>_gan), started from the PSNR run's final weights, with BasicSR's
    # ESRGANModel step (SANGANModel), the same losses, budget and discriminator initialisation for every network;
    # the report has both stages (options/compare/attention_gan_x4.yml is an example). Defaults: BasicSR's ESRGAN.
    gan:
      network_d: {type: UNetDiscriminatorSN, num_in_ch: 3, num_feat: 16}   # required: a BasicSR discriminator block
      total_iter: 1000
      gt_size: null              # HR patch side (default: train.gt_size); VGGStyleDiscriminator: its input_size
      batch_size: null           # default: train.batch_size
      lr_g: 1.0e-4               # Adam (0.9, 0.99) for both networks, halved at 1/8, 1/4, 1/2, 3/4 of total_iter
      lr_d: 1.0e-4               # (ESRGAN's MultiStepLR at 50k, 100k, 200k, 300k of 400k)
      pixel_weight: 1.0e-2       # L1 (0: none)
      perceptual_weight: 1.0     # VGG19 perceptual loss (needs vgg19-dcbb9e9d.pth); 0: none, so no VGG19 needed
      perceptual_layers: {conv5_4: 1.0}   # VGG19 layers (before ReLU) and their weights
      gan_type: vanilla          # BasicSR GANLoss: vanilla (relativistic average in ESRGANModel), lsgan, wgan,
                                 # wgan_softplus, hinge
      gan_weight: 5.0e-3
      ema_decay: 0.999           # the GAN run is evaluated with its EMA generator (params_ema) when > 0
      net_d_iters: 1             # as BasicSR's ESRGAN options
      net_d_init_iters: 0

    # Where runs train (all optional; see san_plugin/study/execution.py and slurm.py):
    executor: local              # local (default): runs on this machine; slurm: one SLURM job per run (submitit)
    max_parallel: 2              # local: runs at once (default: the GPUs // gpus_per_run * runs_per_gpu, on CPU
                                 # cores // threads); tools/compare.py --max-parallel overrides it (and slurm's)
    gpus_per_run: 1              # local: GPUs of each run through CUDA_VISIBLE_DEVICES (default 1, 0 without GPUs)
    runs_per_gpu: 1              # local: runs that may share one GPU (default 1: never two)
    evaluate: job                # slurm: evaluate in the run's job (default), or local: on this machine
    slurm:                       # executor: slurm only
      partition: gpu             # sbatch --partition (default: the cluster's)
      account: null              # sbatch --account
      qos: null                  # sbatch --qos
      time: 60                   # minutes per job; a job killed by it is resubmitted and resumes
      gpus_per_run: 1            # GPUs of each job (0: a CPU job); more than 1 trains with DDP (--launcher slurm)
      tasks_per_run: null        # DDP processes of each job (default: gpus_per_run, at least 1)
      cpus_per_run: null         # CPUs per task (default: threads, else SLURM's)
      mem: null                  # memory per job, e.g. 32G
      max_parallel: null         # jobs queued or running at once (default: no cap)
      max_retries: 2             # resubmissions after a time-out, preemption, scancel or node failure
      folder: null               # submitit's job folders (default: <out>/slurm)
      poll_s: 10                 # seconds between the dispatcher's looks at its jobs (squeue)
      sbatch: {}                 # any other sbatch parameter, e.g. {constraint: a100, exclude: node7}

Relative paths are relative to the working directory, like those of BasicSR option files.

Each section's keys are declared once, in a table of :class:`Key` (default and check) that :func:`read_section`
applies: an unknown key is an error naming it and the known ones, a missing one takes its default, a given one is
checked by a function that names the file and the key in its message (``study.yml: train.crop_size: expected a
positive integer, got 0``). What depends on several keys (test sets per scale, ``val_freq`` against ``print_freq``,
the GAN patch size against the discriminator, the executor keys) is checked after the tables. What needs files or
networks (building the networks and the discriminator, the metrics' weights, NIQE's image sizes) is checked when the
study starts, before any training (:mod:`san_plugin.study.plan`, :mod:`san_plugin.study.metrics`).
"""

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from basicsr.archs.vgg_arch import NAMES as VGG_LAYERS
from basicsr.utils.registry import ARCH_REGISTRY

from san_plugin.benchmark.metrics import parse_metric_specs
from san_plugin.benchmark.models import GAN_GT_SIZES
from san_plugin.data.prepare import SUPPORTED_SCALES, PrepareDataError, list_input_images
from san_plugin.models.san_gan_model import FIXED_INPUT_SIZE
from san_plugin.utils.network_options import NetworkOptionError, check_network_opt


class StudyError(ValueError):
    """A problem with a study file; the message names the file and the key."""


# Checks of one value: each takes (value, source, key), returns the value to keep and raises StudyError otherwise.


def _fail(source, key, message):
    raise StudyError(f'{source}: {key}: {message}' if key else f'{source}: {message}')


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def optional(check):
    """``check``, letting None through."""
    return lambda value, source, key: None if value is None else check(value, source, key)


def positive_int(value, source, key):
    if not _is_int(value) or value <= 0:
        _fail(source, key, f'expected a positive integer, got {value!r}')
    return value


def int_at_least(least):
    """Check of an integer >= ``least``."""

    def check(value, source, key):
        if not _is_int(value) or value < least:
            _fail(source, key, f'expected an integer >= {least}, got {value!r}')
        return value

    return check


def non_negative_number(value, source, key):
    if not isinstance(value, (int, float)) or value < 0:
        _fail(source, key, f'expected a number >= 0, got {value!r}')
    return value


def text(value, source, key):
    if not isinstance(value, (str, int)):
        _fail(source, key, f'expected a string, got {value!r}')
    return value


def one_of(choices, message):
    """Check of a value among ``choices``; ``message`` formats the error with ``choices`` and ``value``."""

    def check(value, source, key):
        if value not in choices:
            _fail(source, key, message.format(choices=', '.join(choices), value=value))
        return value

    return check


def folder_path(value, source, key):
    if not isinstance(value, (str, Path)):
        _fail(source, key, f'expected a folder path, got {value!r}')
    return Path(value)


def int_list(value, source, key):
    """A non-empty list of distinct integers (a single integer is a list of one)."""
    if _is_int(value):
        value = [value]
    if not isinstance(value, list) or not value or not all(_is_int(v) for v in value):
        _fail(source, key, f'expected a non-empty list of integers, got {value!r}')
    if len(set(value)) != len(value):
        _fail(source, key, f'repeated values in {value}')
    return value


def images_folder(value, source, key):
    """A folder of images, as ``tools/prepare_data.py`` reads it."""
    if not isinstance(value, (str, Path)):
        _fail(source, key, f'expected a folder path, got {value!r}')
    try:
        list_input_images(value)
    except PrepareDataError as error:
        _fail(source, key, str(error).replace(' (--input)', ''))
    return str(value)


REQUIRED = object()


@dataclass(frozen=True)
class Key:
    """One key of a section of the study file.

    Attributes:
        default (object): Its value when the file does not give it (``REQUIRED``: the file must).
        check (callable | None): ``check(value, source, key)`` of a given value (see the checks above).
    """

    default: object = None
    check: Callable | None = None


def _check_keys(mapping, known, source, where):
    if not isinstance(mapping, dict):
        _fail(source, where, f'expected a mapping, got {type(mapping).__name__}')
    for key in mapping:
        if key not in known:
            prefix = f'{where}.' if where else ''
            _fail(source, f'{prefix}{key}', f'unknown key (known: {", ".join(known)})')


def read_section(mapping, keys, source, where):
    """Check a mapping of the study file against its table of keys and fill the defaults.

    Args:
        mapping (dict): The section as read from YAML.
        keys (dict[str, Key]): Its keys, in the order they are listed and checked.
        source (str): The study file, for messages.
        where (str): The section's key (``''`` for the top level), for messages.

    Returns:
        dict: Every key of ``keys`` with its checked or default value.
    """
    _check_keys(mapping, tuple(keys), source, where)
    section = {}
    for name, key in keys.items():
        full = f'{where}.{name}' if where else name
        if name not in mapping:
            if key.default is REQUIRED:
                _fail(source, full, 'missing')
            section[name] = copy.deepcopy(key.default)
        else:
            section[name] = key.check(mapping[name], source, full) if key.check else mapping[name]
    return section


@dataclass
class TestSet:
    """A test data set of a study: ``hr``/``lr`` folders (``{scale}`` replaced), or ``images`` to prepare first."""

    name: str
    hr: str | None = None
    lr: str | None = None
    images: str | None = None


@dataclass
class Study:
    """A checked study file; see the module docstring for the meaning of each field."""

    name: str
    out: Path
    data_root: Path
    scales: list
    seeds: list
    networks: dict
    train: dict
    test_sets: list
    val_dataset: str
    flops_input: tuple | None
    memory_input: int
    threads: int | None = None
    param_tolerance: float | None = None
    source: str = 'study'
    alpha: float = 0.05
    min_effect_db: float = 0.05
    execution: 'Execution' = None
    gan: dict | None = None
    metrics: list | None = None
    min_effect: dict = field(default_factory=lambda: dict(MIN_EFFECT))

    def run_name(self, network, scale, seed, stage='psnr'):
        """BasicSR experiment name of one run (``stage`` 'psnr' or 'gan')."""
        return f'{self.name}_{network}_x{scale}_s{seed}' + ('_gan' if stage == 'gan' else '')


def check_network(name, opt, source):
    """Check that ``networks.<name>`` builds a registered arch (see
    :func:`san_plugin.utils.network_options.check_network_opt`) and leaves ``upscale`` to the study.

    Args:
        name (str): Network name in the study.
        opt (dict): Its ``network_g`` block.
        source (str): The study file, for messages.
    """
    key = f'networks.{name}'
    try:
        check_network_opt(opt, f'{source}: {key}')
    except NetworkOptionError as error:
        raise StudyError(str(error)) from None
    if 'upscale' in opt:
        _fail(source, f'{key}.upscale', 'set by the study for each of its scales; remove it')


def _name(value, source, key):
    if not isinstance(value, str) or not value or any(c in value for c in '/\\ '):
        _fail(source, key, f'expected a name without spaces or slashes, got {value!r}')
    return value


def _scales(value, source, key):
    scales = int_list(value, source, key)
    for scale in scales:
        if scale not in SUPPORTED_SCALES:
            _fail(source, key, f'scale {scale} is not supported; choose from {SUPPORTED_SCALES}')
    return scales


def _networks(value, source, key):
    if not isinstance(value, dict) or not value:
        _fail(source, key, 'expected a mapping NAME: network_g block')
    for network, opt in value.items():
        if not isinstance(network, str) or not network.replace('-', '').replace('_', '').isalnum():
            _fail(source, f'{key}.{network}', 'names may hold letters, digits, - and _ only')
        check_network(network, opt, source)
    return {network: dict(opt) for network, opt in value.items()}


def _alpha(value, source, key):
    if not _is_number(value):
        _fail(source, key, f'expected a number, got {value!r}')
    if not 0 < value < 1:
        _fail(source, key, f'expected a significance level between 0 and 1 (exclusive), got {value!r}')
    return value


def _min_effect_db(value, source, key):
    if not _is_number(value):
        _fail(source, key, f'expected a number, got {value!r}')
    if value <= 0:
        _fail(source, key, f'expected a PSNR difference > 0 dB, got {value!r}')
    return value


def _min_effect(value, source, key):
    """The differences of the metrics other than PSNR that the seeds-for-power columns are sized for."""
    if not isinstance(value, dict):
        _fail(source, key, f'expected a mapping metric -> difference, got {value!r}')
    for metric, effect in value.items():
        if metric == 'psnr':
            _fail(source, f'{key}.psnr', "PSNR's is min_effect_db")
        if metric not in MIN_EFFECT:
            _fail(source, f'{key}.{metric}', f'unknown metric (known: {", ".join(MIN_EFFECT)})')
        if not _is_number(effect) or effect <= 0:
            _fail(source, f'{key}.{metric}', f'expected a difference > 0, got {effect!r}')
    return {**MIN_EFFECT, **value}


def _flops_input(value, source, key):
    if not isinstance(value, list) or len(value) != 2 or not all(_is_int(v) for v in value):
        _fail(source, key, f'expected [height, width], got {value!r}')
    return tuple(value)


# Differences of the metrics other than PSNR (min_effect_db) that the seeds-for-power columns are sized for: about
# what a paper would report as a difference (SSIM in its 4th decimal, LPIPS and DISTS in their 2nd, NIQE in its 1st).
MIN_EFFECT = {'ssim': 0.001, 'lpips': 0.01, 'dists': 0.01, 'niqe': 0.1}


def _metrics(value, source, key):
    """The perceptual metrics asked for: a list of names or a mapping name -> options (or null), as MetricSpecs
    (:func:`san_plugin.benchmark.metrics.parse_metric_specs`, which names the key)."""
    try:
        return parse_metric_specs(value, where=key)
    except ValueError as error:
        _fail(source, '', str(error))


# The top level; the executor keys are read by parse_execution.
STUDY_KEYS = {
    'name': Key(REQUIRED, _name),
    'out': Key(None, folder_path),
    'data_root': Key('datasets', folder_path),
    'scales': Key([2], _scales),
    'seeds': Key([0], int_list),
    'threads': Key(None, optional(positive_int)),
    'param_tolerance': Key(None, optional(non_negative_number)),
    'networks': Key(REQUIRED, _networks),
    'train': Key(REQUIRED),
    'test': Key(REQUIRED),
    'alpha': Key(0.05, _alpha),
    'min_effect_db': Key(0.05, _min_effect_db),
    'min_effect': Key(None, optional(_min_effect)),
    'gan': Key(None),
    'executor': Key('local'),
    'max_parallel': Key(None),
    'gpus_per_run': Key(None),
    'runs_per_gpu': Key(None),
    'evaluate': Key('job'),
    'slurm': Key(None),
}
TRAIN_KEYS = {
    'data': Key(None),
    'crop_size': Key(144, positive_int),
    'step': Key(96, positive_int),
    'gt_size': Key(64, positive_int),
    'batch_size': Key(16, positive_int),
    'total_iter': Key(500, positive_int),
    'lr': Key(1e-3, non_negative_number),
    'eta_min': Key(1e-6, non_negative_number),
    'val_freq': Key(100, positive_int),
    'print_freq': Key(20, positive_int),
    'save_checkpoint_freq': Key(100, positive_int),
}
TEST_KEYS = {
    'datasets': Key(None),
    'val_dataset': Key(None),
    'flops_input': Key(None, optional(_flops_input)),
    'memory_input': Key(128, positive_int),
    'metrics': Key(None, optional(_metrics)),
}
DATASET_KEYS = ('hr', 'lr', 'images')


def _discriminator_types():
    """The registered networks that are discriminators (by name), as a ``type`` names them."""
    return sorted({name.removesuffix('_basicsr') for name in ARCH_REGISTRY.keys() if 'Discriminator' in name})


def _discriminator(value, source, key):
    """A ``network_d`` block: a registered discriminator and only its constructor's arguments (the one network-option
    check, :func:`san_plugin.utils.network_options.check_network_opt`)."""
    if value is None:
        _fail(
            source, key, 'missing: give a BasicSR discriminator block, e.g. {type: UNetDiscriminatorSN, num_in_ch: 3}'
        )
    if not isinstance(value, dict) or 'type' not in value:
        _fail(source, key, 'expected a network_d mapping with a type key')
    known = _discriminator_types()
    if value['type'] not in known:
        _fail(source, f'{key}.type', f'unknown discriminator {value["type"]!r} (registered: {", ".join(known)})')
    try:
        check_network_opt(value, f'{source}: {key}')
    except NetworkOptionError as error:
        raise StudyError(str(error)) from None
    return dict(value)


def _vgg19_layers(value, source, key):
    if not isinstance(value, dict) or not value:
        _fail(source, key, f'expected a mapping VGG19 layer -> weight, e.g. {{conv5_4: 1.0}}, got {value!r}')
    for layer, weight in value.items():
        if layer not in VGG_LAYERS['vgg19']:
            _fail(source, f'{key}.{layer}', f'not a VGG19 layer (layers: {", ".join(VGG_LAYERS["vgg19"])})')
        non_negative_number(weight, source, f'{key}.{layer}')
    return dict(value)


def _ema_decay(value, source, key):
    if not _is_number(value) or not 0 <= value < 1:
        _fail(source, key, f'expected a number in [0, 1), got {value!r}')
    return value


# The GAN stage (BasicSR's ESRGAN options by default: options/train/ESRGAN/train_ESRGAN_x4.yml).
GAN_TYPES = ('vanilla', 'lsgan', 'wgan', 'wgan_softplus', 'hinge')
GAN_KEYS = {
    'network_d': Key(None),  # checked by _gan, which also names it when it is missing
    'total_iter': Key(1000, positive_int),
    'gt_size': Key(None, optional(positive_int)),
    'batch_size': Key(None, optional(positive_int)),
    'lr_g': Key(1e-4, non_negative_number),
    'lr_d': Key(1e-4, non_negative_number),
    'pixel_weight': Key(1e-2, non_negative_number),
    'perceptual_weight': Key(1.0, non_negative_number),
    'perceptual_layers': Key({'conv5_4': 1.0}, _vgg19_layers),
    'gan_type': Key('vanilla', one_of(GAN_TYPES, 'unknown GAN loss {value!r} (known: {choices})')),
    'gan_weight': Key(5e-3, non_negative_number),
    'ema_decay': Key(0.999, _ema_decay),
    'net_d_iters': Key(1, positive_int),
    'net_d_init_iters': Key(0, int_at_least(0)),
}


def _gan(value, source, train, scales):
    """The checked ``gan`` block, its patch size and batch filled from ``train``."""
    gan = read_section(value, GAN_KEYS, source, 'gan')
    gan['network_d'] = _discriminator(gan['network_d'], source, 'gan.network_d')
    gan['gt_size'] = gan['gt_size'] or train['gt_size']
    gan['batch_size'] = gan['batch_size'] or train['batch_size']
    gt_size, net_d = gan['gt_size'], gan['network_d']
    for scale in scales:
        if gt_size % scale:
            _fail(source, 'gan.gt_size', f'{gt_size} is not a multiple of scale {scale}')
    if gt_size > train['crop_size']:
        _fail(
            source,
            'gan.gt_size',
            f'{gt_size} is larger than the training sub-images (train.crop_size {train["crop_size"]})',
        )
    if net_d['type'] in FIXED_INPUT_SIZE:
        size_key, default = FIXED_INPUT_SIZE[net_d['type']]
        input_size = net_d.get(size_key, default)
        if input_size not in GAN_GT_SIZES:
            sizes = ' or '.join(map(str, GAN_GT_SIZES))
            _fail(source, f'gan.network_d.{size_key}', f'{net_d["type"]} takes {sizes} only, got {input_size}')
        if input_size != gt_size:
            _fail(
                source,
                'gan.gt_size',
                f'{gt_size}, but {net_d["type"]} sees the GT patches and takes gan.network_d.{size_key} {input_size}: '
                'make them equal',
            )
    if not gan['pixel_weight'] and not gan['perceptual_weight']:
        _fail(source, 'gan.pixel_weight', "and gan.perceptual_weight are both 0: BasicSR's GAN models need one of them")
    return gan


def _train(value, source, train_data, scales):
    train = read_section(value, TRAIN_KEYS, source, 'train')
    if train_data is not None:
        train['data'] = train_data
    if train['data'] is None:
        _fail(source, 'train.data', 'missing: give a folder of HR training images')
    train['data'] = images_folder(train['data'], source, 'train.data')
    if train['val_freq'] % train['print_freq']:
        _fail(source, 'train.val_freq', f'must be a multiple of train.print_freq ({train["print_freq"]})')
    for scale in scales:
        if train['gt_size'] % scale:
            _fail(source, 'train.gt_size', f'{train["gt_size"]} is not a multiple of scale {scale}')
    return train


def _test_set(name, spec, source, scales):
    key = f'test.datasets.{name}'
    _check_keys(spec, DATASET_KEYS, source, key)
    if ('images' in spec) == ('hr' in spec):
        _fail(source, key, 'give either hr (and optionally lr) or images')
    if 'lr' in spec and 'hr' not in spec:
        _fail(source, f'{key}.lr', 'needs hr beside it')
    test_set = TestSet(str(name), **{k: str(v) for k, v in spec.items()})
    if test_set.images is not None:
        images_folder(test_set.images, source, f'{key}.images')
    for scale in scales:
        for role in ('hr', 'lr'):
            folder = getattr(test_set, role)
            if folder is None:
                continue
            path = Path(folder.format(scale=scale))
            if not path.is_dir():
                _fail(source, f'{key}.{role}', f'folder {path} for scale {scale} does not exist')
            if not any(path.iterdir()):
                _fail(source, f'{key}.{role}', f'folder {path} for scale {scale} is empty')
    return test_set


def _test(value, source, scales):
    test = read_section(value, TEST_KEYS, source, 'test')
    datasets = test['datasets']
    if not isinstance(datasets, dict) or not datasets:
        _fail(source, 'test.datasets', 'expected a mapping NAME: {hr: DIR, lr: DIR} or NAME: {images: DIR}')
    test['datasets'] = [_test_set(name, spec, source, scales) for name, spec in datasets.items()]
    val_dataset = test['val_dataset'] or test['datasets'][0].name
    val_set = next((t for t in test['datasets'] if t.name == val_dataset), None)
    if val_set is None:
        _fail(source, 'test.val_dataset', f'{val_dataset!r} is not one of test.datasets')
    if val_set.hr is not None and val_set.lr is None:
        _fail(source, f'test.datasets.{val_dataset}', 'the data set validated during training needs an lr folder')
    test['val_dataset'] = val_dataset
    return test


def parse_study(options, source='study', train_data=None):
    """Check a study mapping and fill its defaults.

    Args:
        options (dict): The study, as read from YAML.
        source (str): Where it came from (named in messages). Default: 'study'.
        train_data (str | None): HR training folder replacing ``train.data`` (the command line's). Default: None.

    Returns:
        Study: The checked study.
    """
    top = read_section(options, STUDY_KEYS, source, '')
    train = _train(top['train'], source, train_data, top['scales'])
    test = _test(top['test'], source, top['scales'])
    gan = None if top['gan'] is None else _gan(top['gan'], source, train, top['scales'])
    taken = ('name', 'data_root', 'scales', 'seeds', 'networks', 'threads', 'param_tolerance', 'alpha', 'min_effect_db')
    return Study(
        **{key: top[key] for key in taken},
        out=top['out'] or Path(f'results/compare/{top["name"]}'),
        train=train,
        test_sets=test['datasets'],
        **{key: test[key] for key in ('val_dataset', 'flops_input', 'memory_input', 'metrics')},
        source=source,
        execution=parse_execution(options, source),
        gan=gan,
        min_effect=top['min_effect'] or dict(MIN_EFFECT),
    )


def read_study(path, train_data=None):
    """Read and check a study file (see :func:`parse_study`)."""
    path = Path(path)
    try:
        options = yaml.safe_load(path.read_text(encoding='utf-8'))
    except UnicodeDecodeError as error:
        raise StudyError(f'-opt {path}: not a UTF-8 text file ({error.reason} at byte {error.start})') from None
    except (OSError, yaml.YAMLError) as error:
        raise StudyError(f'-opt: cannot read study file {path}: {error}') from error
    return parse_study(options, str(path), train_data)


# Where runs train (issue 17): the executor keys of a study, checked apart from the rest.

EXECUTORS = ('local', 'slurm')
EVALUATE = ('job', 'local')
LOCAL_ONLY = {'max_parallel': int_at_least(1), 'gpus_per_run': int_at_least(0), 'runs_per_gpu': int_at_least(1)}


def _minutes(value, source, key):
    """Minutes of a SLURM time: an integer, or 'H:MM:SS' / 'D-HH:MM:SS'."""
    if _is_int(value) and value > 0:
        return value
    if isinstance(value, str):
        days, _, clock = value.rpartition('-')
        parts = clock.split(':')
        if len(parts) == 3 and all(p.isdigit() for p in parts) and (not days or days.isdigit()):
            hours, minutes, seconds = (int(p) for p in parts)
            total = (int(days or 0) * 24 + hours) * 60 + minutes + (seconds > 0)
            if total > 0:
                return total
    _fail(source, key, f"expected minutes (an integer > 0) or 'H:MM:SS', got {value!r}")


def _seconds(value, source, key):
    if not _is_number(value) or value <= 0:
        _fail(source, key, f'expected a number of seconds > 0, got {value!r}')
    return value


def _sbatch(value, source, key):
    if not isinstance(value, dict):
        _fail(source, key, f'expected a mapping of sbatch parameters, got {value!r}')
    return value


SLURM_KEYS = {
    'partition': Key(None, optional(text)),
    'account': Key(None, optional(text)),
    'qos': Key(None, optional(text)),
    'time': Key(60, _minutes),
    'gpus_per_run': Key(1, int_at_least(0)),
    'tasks_per_run': Key(None, optional(int_at_least(1))),
    'cpus_per_run': Key(None, optional(int_at_least(1))),
    'mem': Key(None, optional(text)),
    'max_parallel': Key(None, optional(int_at_least(1))),
    'max_retries': Key(2, int_at_least(0)),
    'folder': Key(None, optional(text)),
    'poll_s': Key(10, _seconds),
    'sbatch': Key({}, _sbatch),
}


@dataclass
class Execution:
    """Where and how many runs train at once; see the module docstring for the keys.

    Attributes:
        executor (str): 'local' or 'slurm'.
        max_parallel (int | None): Runs at once (None: the executor's default).
        gpus_per_run (int | None): Local GPUs of each run (None: 1 where there are GPUs, else 0).
        runs_per_gpu (int): Local runs that may share one GPU.
        evaluate (str): 'job' (where the run trained) or 'local' (on the dispatcher's machine).
        slurm (dict | None): The checked ``slurm`` block (``time`` in minutes), None for a local study.
    """

    executor: str = 'local'
    max_parallel: int | None = None
    gpus_per_run: int | None = None
    runs_per_gpu: int = 1
    evaluate: str = 'job'
    slurm: dict | None = None


def parse_execution(options, source='study'):
    """Check the executor keys of a study mapping (``executor``, ``max_parallel``, ``gpus_per_run``,
    ``runs_per_gpu``, ``evaluate``, ``slurm``).

    What depends on the machine (GPUs, ``sbatch``) is checked when the study starts, by
    :func:`san_plugin.study.execution.make_executor`.

    Args:
        options (dict): The study, as read from YAML.
        source (str): Where it came from (named in messages). Default: 'study'.

    Returns:
        Execution: The checked keys.
    """
    executor = one_of(EXECUTORS, 'unknown executor {value!r} (known: {choices})')(
        options.get('executor', 'local'), source, 'executor'
    )
    evaluate = one_of(EVALUATE, 'expected one of {choices}, got {value!r}')(
        options.get('evaluate', 'job'), source, 'evaluate'
    )
    execution = Execution(executor=executor, evaluate=evaluate)
    for key, check in LOCAL_ONLY.items():
        value = options.get(key)
        if value is None:
            continue
        if executor != 'local':
            _fail(source, key, f'read by executor: local only; with executor: {executor} set slurm.{key} instead')
        setattr(execution, key, check(value, source, key))
    if executor == 'slurm':
        execution.slurm = read_section(options.get('slurm') or {}, SLURM_KEYS, source, 'slurm')
    elif 'slurm' in options:
        _fail(source, 'slurm', f'read by executor: slurm only (executor is {executor})')
    return execution


def override_max_parallel(study, value):
    """Apply ``tools/compare.py --max-parallel`` to a checked study (the executor's ``max_parallel``).

    Args:
        study (Study): The study.
        value (int | None): Runs at once; None leaves the study's value.
    """
    if value is None:
        return
    int_at_least(1)(value, '--max-parallel', '')
    if study.execution.slurm is not None:
        study.execution.slurm['max_parallel'] = value
    else:
        study.execution.max_parallel = value
