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

    # Where runs train (all optional; see san_plugin/study/execution.py):
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
"""

import copy
from dataclasses import dataclass
from pathlib import Path

import yaml

from san_plugin.data.prepare import SUPPORTED_SCALES, PrepareDataError, list_images
from san_plugin.utils.network_options import NetworkOptionError, check_network_opt

TOP_KEYS = ('name', 'out', 'data_root', 'scales', 'seeds', 'threads', 'param_tolerance', 'networks', 'train', 'test')
STATISTICS_DEFAULTS = {'alpha': 0.05, 'min_effect_db': 0.05}
TOP_KEYS += tuple(STATISTICS_DEFAULTS)
TOP_KEYS += ('executor', 'max_parallel', 'gpus_per_run', 'runs_per_gpu', 'evaluate', 'slurm')  # see Execution
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
    execution: 'Execution' = None

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
        execution=parse_execution(options, source),
    )


def read_study(path, train_data=None):
    """Read and check a study file (see :func:`parse_study`)."""
    path = Path(path)
    try:
        options = yaml.safe_load(path.read_text(encoding='utf-8'))
    except (OSError, yaml.YAMLError) as error:
        raise StudyError(f'-opt: cannot read study file {path}: {error}') from error
    return parse_study(options, str(path), train_data)


# Where runs train (issue 17): the executor keys of a study, checked apart from the rest.

EXECUTORS = ('local', 'slurm')
EVALUATE = ('job', 'local')
LOCAL_ONLY = ('max_parallel', 'gpus_per_run', 'runs_per_gpu')
SLURM_DEFAULTS = {
    'partition': None,
    'account': None,
    'qos': None,
    'time': 60,
    'gpus_per_run': 1,
    'tasks_per_run': None,
    'cpus_per_run': None,
    'mem': None,
    'max_parallel': None,
    'max_retries': 2,
    'folder': None,
    'poll_s': 10,
    'sbatch': {},
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


def _slurm(value, source):
    _check_keys(value, tuple(SLURM_DEFAULTS), source, 'slurm')
    slurm = {**SLURM_DEFAULTS, **value}
    for key in ('partition', 'account', 'qos', 'mem', 'folder'):
        if slurm[key] is not None and not isinstance(slurm[key], (str, int)):
            _fail(source, f'slurm.{key}', f'expected a string, got {slurm[key]!r}')
    slurm['time'] = _minutes(slurm['time'], source, 'slurm.time')
    for key, least in (('gpus_per_run', 0), ('tasks_per_run', 1), ('cpus_per_run', 1), ('max_parallel', 1),
                       ('max_retries', 0)):  # fmt: skip
        if slurm[key] is not None and (not _is_int(slurm[key]) or slurm[key] < least):
            _fail(source, f'slurm.{key}', f'expected an integer >= {least}, got {slurm[key]!r}')
    if not isinstance(slurm['poll_s'], (int, float)) or isinstance(slurm['poll_s'], bool) or slurm['poll_s'] <= 0:
        _fail(source, 'slurm.poll_s', f'expected a number of seconds > 0, got {slurm["poll_s"]!r}')
    if not isinstance(slurm['sbatch'], dict):
        _fail(source, 'slurm.sbatch', f'expected a mapping of sbatch parameters, got {slurm["sbatch"]!r}')
    return slurm


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
    executor = options.get('executor', 'local')
    if executor not in EXECUTORS:
        _fail(source, 'executor', f'unknown executor {executor!r} (known: {", ".join(EXECUTORS)})')
    execution = Execution(executor=executor, evaluate=options.get('evaluate', 'job'))
    if execution.evaluate not in EVALUATE:
        _fail(source, 'evaluate', f'expected one of {", ".join(EVALUATE)}, got {execution.evaluate!r}')
    for key, least in (('max_parallel', 1), ('gpus_per_run', 0), ('runs_per_gpu', 1)):
        value = options.get(key)
        if value is None:
            continue
        if executor != 'local':
            _fail(source, key, f'read by executor: local only; with executor: {executor} set slurm.{key} instead')
        if not _is_int(value) or value < least:
            _fail(source, key, f'expected an integer >= {least}, got {value!r}')
        setattr(execution, key, value)
    if executor == 'slurm':
        execution.slurm = _slurm(options.get('slurm') or {}, source)
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
    if not _is_int(value) or value < 1:
        raise StudyError(f'--max-parallel: expected an integer >= 1, got {value!r}')
    if study.execution.slurm is not None:
        study.execution.slurm['max_parallel'] = value
    else:
        study.execution.max_parallel = value
