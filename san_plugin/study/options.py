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

Relative paths are relative to the working directory, like those of BasicSR option files.
"""

import copy
from dataclasses import dataclass
from pathlib import Path

import yaml
from basicsr.utils.registry import ARCH_REGISTRY

from san_plugin.data.prepare import SUPPORTED_SCALES, PrepareDataError, list_images
from san_plugin.utils.arch_arguments import constructor_arguments

TOP_KEYS = ('name', 'out', 'data_root', 'scales', 'seeds', 'threads', 'param_tolerance', 'networks', 'train', 'test')
STATISTICS_DEFAULTS = {'alpha': 0.05, 'min_effect_db': 0.05}
TOP_KEYS += tuple(STATISTICS_DEFAULTS)
TRAIN_DEFAULTS = {
    'data': None,
    'crop_size': 144,
    'step': 96,
    'gt_size': 64,
    'batch_size': 16,
    'total_iter': 500,
    'lr': 1e-3,
    'eta_min': 1e-6,
    'val_freq': 100,
    'print_freq': 20,
    'save_checkpoint_freq': 100,
}
TEST_DEFAULTS = {'datasets': None, 'val_dataset': None, 'flops_input': None, 'memory_input': 128}
DATASET_KEYS = ('hr', 'lr', 'images')
POSITIVE_INTS = ('crop_size', 'step', 'gt_size', 'batch_size', 'total_iter', 'val_freq', 'print_freq',
                 'save_checkpoint_freq')  # fmt: skip


class StudyError(ValueError):
    """A problem with a study file; the message names the file and the key."""


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
    alpha: float = STATISTICS_DEFAULTS['alpha']
    min_effect_db: float = STATISTICS_DEFAULTS['min_effect_db']

    def run_name(self, network, scale, seed):
        """BasicSR experiment name of one run."""
        return f'{self.name}_{network}_x{scale}_s{seed}'


def _fail(source, key, message):
    raise StudyError(f'{source}: {key}: {message}')


def _check_keys(mapping, known, source, where):
    if not isinstance(mapping, dict):
        _fail(source, where, f'expected a mapping, got {type(mapping).__name__}')
    for key in mapping:
        if key not in known:
            prefix = f'{where}.' if where else ''
            _fail(source, f'{prefix}{key}', f'unknown key (known: {", ".join(known)})')


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _int_list(value, source, key):
    if _is_int(value):
        value = [value]
    if not isinstance(value, list) or not value or not all(_is_int(v) for v in value):
        _fail(source, key, f'expected a non-empty list of integers, got {value!r}')
    if len(set(value)) != len(value):
        _fail(source, key, f'repeated values in {value}')
    return value


def check_network(name, opt, source):
    """Check that ``networks.<name>`` names a registered network and only its constructor's arguments.

    Args:
        name (str): Network name in the study.
        opt (dict): Its ``network_g`` block.
        source (str): The study file, for messages.
    """
    key = f'networks.{name}'
    if not isinstance(opt, dict) or 'type' not in opt:
        _fail(source, key, 'expected a network_g mapping with a type key')
    if opt['type'] not in ARCH_REGISTRY:
        _fail(
            source, f'{key}.type', f'unknown network type {opt["type"]!r} (registered: {sorted(ARCH_REGISTRY.keys())})'
        )
    parameters, takes_any = constructor_arguments(ARCH_REGISTRY.get(opt['type']))
    for option in opt:
        if option != 'type' and option not in parameters and not takes_any:
            _fail(
                source, f'{key}.{option}', f'{opt["type"]} has no option {option!r} (options: {", ".join(parameters)})'
            )
    if 'upscale' in opt:
        _fail(source, f'{key}.upscale', 'set by the study for each of its scales; remove it')


def _test_sets(value, source, scales):
    if not isinstance(value, dict) or not value:
        _fail(source, 'test.datasets', 'expected a mapping NAME: {hr: DIR, lr: DIR} or NAME: {images: DIR}')
    sets = []
    for name, spec in value.items():
        key = f'test.datasets.{name}'
        _check_keys(spec, DATASET_KEYS, source, key)
        if ('images' in spec) == ('hr' in spec):
            _fail(source, key, 'give either hr (and optionally lr) or images')
        if 'lr' in spec and 'hr' not in spec:
            _fail(source, f'{key}.lr', 'needs hr beside it')
        test_set = TestSet(str(name), **{k: str(v) for k, v in spec.items()})
        if test_set.images is not None:
            try:
                list_images(test_set.images)
            except PrepareDataError as error:
                _fail(source, f'{key}.images', str(error).replace(' (--input)', ''))
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
        sets.append(test_set)
    return sets


def _train(value, source):
    _check_keys(value, tuple(TRAIN_DEFAULTS), source, 'train')
    train = {**TRAIN_DEFAULTS, **value}
    if train['data'] is None:
        _fail(source, 'train.data', 'missing: give a folder of HR training images')
    try:
        list_images(train['data'])
    except PrepareDataError as error:
        _fail(source, 'train.data', str(error).replace(' (--input)', ''))
    for key in POSITIVE_INTS:
        if not _is_int(train[key]) or train[key] <= 0:
            _fail(source, f'train.{key}', f'expected a positive integer, got {train[key]!r}')
    for key in ('lr', 'eta_min'):
        if not isinstance(train[key], (int, float)) or train[key] < 0:
            _fail(source, f'train.{key}', f'expected a number >= 0, got {train[key]!r}')
    if train['val_freq'] % train['print_freq']:
        _fail(source, 'train.val_freq', f'must be a multiple of train.print_freq ({train["print_freq"]})')
    return train


def _statistics(options, source):
    """The report's ``alpha`` (in (0, 1)) and ``min_effect_db`` (> 0) of a study mapping, defaults filled."""
    values = {key: options.get(key, default) for key, default in STATISTICS_DEFAULTS.items()}
    for key, value in values.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            _fail(source, key, f'expected a number, got {value!r}')
    if not 0 < values['alpha'] < 1:
        _fail(source, 'alpha', f'expected a significance level between 0 and 1 (exclusive), got {values["alpha"]!r}')
    if values['min_effect_db'] <= 0:
        _fail(source, 'min_effect_db', f'expected a PSNR difference > 0 dB, got {values["min_effect_db"]!r}')
    return values


def parse_study(options, source='study', train_data=None):
    """Check a study mapping and fill its defaults.

    Args:
        options (dict): The study, as read from YAML.
        source (str): Where it came from (named in messages). Default: 'study'.
        train_data (str | None): HR training folder replacing ``train.data`` (the command line's). Default: None.

    Returns:
        Study: The checked study.
    """
    options = copy.deepcopy(options)
    _check_keys(options, TOP_KEYS, source, '')
    for key in ('name', 'networks', 'train', 'test'):
        if key not in options:
            _fail(source, key, 'missing')
    name = options['name']
    if not isinstance(name, str) or not name or any(c in name for c in '/\\ '):
        _fail(source, 'name', f'expected a name without spaces or slashes, got {name!r}')
    scales = _int_list(options.get('scales', [2]), source, 'scales')
    for scale in scales:
        if scale not in SUPPORTED_SCALES:
            _fail(source, 'scales', f'scale {scale} is not supported; choose from {SUPPORTED_SCALES}')
    seeds = _int_list(options.get('seeds', [0]), source, 'seeds')
    networks = options['networks']
    if not isinstance(networks, dict) or not networks:
        _fail(source, 'networks', 'expected a mapping NAME: network_g block')
    for network, opt in networks.items():
        if not isinstance(network, str) or not network.replace('-', '').replace('_', '').isalnum():
            _fail(source, f'networks.{network}', 'names may hold letters, digits, - and _ only')
        check_network(network, opt, source)
    if train_data is not None:
        options['train'] = {**options['train'], 'data': train_data}
    train = _train(options['train'], source)
    for scale in scales:
        if train['gt_size'] % scale:
            _fail(source, 'train.gt_size', f'{train["gt_size"]} is not a multiple of scale {scale}')
    test = options['test']
    _check_keys(test, tuple(TEST_DEFAULTS), source, 'test')
    test = {**TEST_DEFAULTS, **test}
    test_sets = _test_sets(test['datasets'], source, scales)
    val_dataset = test['val_dataset'] or test_sets[0].name
    val_set = next((t for t in test_sets if t.name == val_dataset), None)
    if val_set is None:
        _fail(source, 'test.val_dataset', f'{val_dataset!r} is not one of test.datasets')
    if val_set.hr is not None and val_set.lr is None:
        _fail(source, f'test.datasets.{val_dataset}', 'the data set validated during training needs an lr folder')
    flops_input = test['flops_input']
    if flops_input is not None:
        if not isinstance(flops_input, list) or len(flops_input) != 2 or not all(_is_int(v) for v in flops_input):
            _fail(source, 'test.flops_input', f'expected [height, width], got {flops_input!r}')
        flops_input = tuple(flops_input)
    if not _is_int(test['memory_input']) or test['memory_input'] <= 0:
        _fail(source, 'test.memory_input', f'expected a positive integer, got {test["memory_input"]!r}')
    threads = options.get('threads')
    if threads is not None and (not _is_int(threads) or threads <= 0):
        _fail(source, 'threads', f'expected a positive integer, got {threads!r}')
    tolerance = options.get('param_tolerance')
    if tolerance is not None and (not isinstance(tolerance, (int, float)) or tolerance < 0):
        _fail(source, 'param_tolerance', f'expected a number >= 0, got {tolerance!r}')
    return Study(
        name=name,
        out=Path(options.get('out', f'results/compare/{name}')),
        data_root=Path(options.get('data_root', 'datasets')),
        scales=scales,
        seeds=seeds,
        networks={k: dict(v) for k, v in networks.items()},
        train=train,
        test_sets=test_sets,
        val_dataset=val_dataset,
        flops_input=flops_input,
        memory_input=test['memory_input'],
        threads=threads,
        param_tolerance=tolerance,
        source=source,
        **_statistics(options, source),
    )


def read_study(path, train_data=None):
    """Read and check a study file (see :func:`parse_study`)."""
    path = Path(path)
    try:
        options = yaml.safe_load(path.read_text(encoding='utf-8'))
    except (OSError, yaml.YAMLError) as error:
        raise StudyError(f'-opt: cannot read study file {path}: {error}') from error
    return parse_study(options, str(path), train_data)
