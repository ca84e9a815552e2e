"""The ``-opt`` YAML file of the quality benchmark, merged with command-line flags into a :class:`QualityConfig`.

Schema (every key optional in the file; flags add models, data sets, scales and crops, and replace the rest)::

    models:            # a list of specs, or a mapping NAME: SPEC
      bicubic: bicubic
      san: experiments/SAN_x4/models/net_g_latest.pth   # weights of any format, or an options .yml
      tiny: {type: SAN, num_feat: 16, num_group: 1, num_block: 1, weights: tiny.pth}   # a network_g block
    datasets:          # a list of NAME=HR_DIR[:LR_DIR], or a mapping NAME: {hr: DIR, lr: DIR} or NAME: HR_DIR
      Set5: {hr: datasets/Set5/HR/x{scale}, lr: datasets/Set5/LR_bicubic/x{scale}}
    scales: [4]
    out: results/benchmark
    device: cpu
    threads: null      # CPU threads (torch.set_num_threads)
    flops_input: [180, 320]   # LR height, width of the FLOPs count; default: the LR of a 1280x720 output
    warmup: 1
    chop: false
    tile: null
    tile_pad: 10
    self_ensemble: false
    amp: null          # bfloat16 or float16: the networks run under autocast to it
    crops: [baby, 'bird:10,20,48']
    metrics: [lpips, niqe]   # extra columns, lower is better: lpips, dists, niqe; or a mapping NAME: OPTIONS, e.g.
    # metrics: {lpips: {net: vgg, backbone_path: vgg16-397923af.pth}, dists: null}   (san_plugin/benchmark/metrics.py)
"""

from pathlib import Path

import yaml

from san_plugin.benchmark.datasets import DatasetSpec, parse_dataset_spec
from san_plugin.benchmark.metrics import parse_metric_specs
from san_plugin.benchmark.models import model_spec_from_value, parse_model_spec
from san_plugin.benchmark.quality import QualityConfig, TestTime, parse_crop_spec
from san_plugin.convert.network_config import network_opts
from san_plugin.utils.device import check_device
from san_plugin.utils.output_paths import check_output_folder
from san_plugin.utils.precision import AMP_DTYPES
from san_plugin.utils.yaml_errors import describe_yaml_error

LIST_KEYS = ('models', 'datasets', 'scales', 'crops', 'metrics')
SCALAR_KEYS = ('out', 'device', 'threads', 'flops_input', 'warmup', 'chop', 'tile', 'tile_pad', 'self_ensemble', 'amp')
DATASET_KEYS = ('hr', 'lr')


def read_options_file(path):
    """Read and check the keys of a ``-opt`` file; returns its mapping."""
    path = Path(path)
    try:
        options = yaml.safe_load(path.read_text(encoding='utf-8')) or {}
    except OSError as error:
        raise ValueError(f'-opt {path}: cannot read it: {error.strerror}') from error
    except UnicodeDecodeError:
        raise ValueError(f'-opt {path}: not a text file (UTF-8)') from None
    except yaml.YAMLError as error:
        raise ValueError(f'-opt {path}: not valid YAML: {describe_yaml_error(error)}') from None
    if not isinstance(options, dict):
        raise ValueError(f'-opt {path}: expected a mapping of options, got {type(options).__name__}')
    unknown = sorted(set(options) - set(LIST_KEYS) - set(SCALAR_KEYS))
    if unknown:
        raise ValueError(f'-opt {path}: unknown key {unknown[0]!r} (known: {", ".join(LIST_KEYS + SCALAR_KEYS)})')
    return options


def _models(value, where, network_opt):
    if isinstance(value, dict):
        return [model_spec_from_value(str(name), spec, f'{where}:', network_opt) for name, spec in value.items()]
    if isinstance(value, list):
        return [parse_model_spec(spec, f'{where}[{i}]', network_opt) for i, spec in enumerate(value)]
    raise ValueError(f'{where}: expected a list or a mapping')


def _dataset(name, value, where):
    if isinstance(value, str):
        return parse_dataset_spec(f'{name}={value}', 'datasets:')
    if not isinstance(value, dict):
        raise ValueError(f'{where}: expected HR_DIR[:LR_DIR] or a mapping with hr and lr')
    unknown = sorted(set(value) - set(DATASET_KEYS))
    if unknown or 'hr' not in value:
        raise ValueError(f'{where}: unknown key {unknown[0]!r}' if unknown else f'{where}: the hr key is missing')
    return DatasetSpec(str(name), str(value['hr']), value.get('lr'), 'datasets:')


def _datasets(value, where):
    if isinstance(value, dict):
        return [_dataset(name, spec, f'{where}.{name}') for name, spec in value.items()]
    if isinstance(value, list):
        return [parse_dataset_spec(spec, f'{where}[{i}]') for i, spec in enumerate(value)]
    raise ValueError(f'{where}: expected a list or a mapping')


def _int_at_least(value, least, where):
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f'{where}: expected an integer >= {least}, got {value!r}')
    return value


def _positive_int(value, where):
    return _int_at_least(value, 1, where)


def _amp(value):
    if value is not None and value not in AMP_DTYPES:
        raise ValueError(f'amp: expected one of {", ".join(AMP_DTYPES)} or null, got {value!r}')
    return value


def quality_config(options, flags):
    """Merge a ``-opt`` mapping (may be empty) with parsed command-line flags.

    Args:
        options (dict): Checked mapping of :func:`read_options_file`.
        flags (argparse.Namespace): ``model``, ``dataset``, ``scale``, ``crops``, ``metric`` lists (added to the
            file's), the scalar options (None when not given) and ``network_opt`` (``key=value`` items for the models
            given as weights files).

    Returns:
        QualityConfig: The configuration.
    """
    merged = {key: options.get(key) for key in SCALAR_KEYS}
    merged.update({key: getattr(flags, key) for key in SCALAR_KEYS if getattr(flags, key, None) is not None})
    origin = {key: f'--{key.replace("_", "-")}' if getattr(flags, key, None) is not None else key for key in merged}
    # What can be checked without reading any file, first: the output folder and the device above all.
    if merged['out'] is not None:
        check_output_folder(merged['out'], origin['out'])
    device = str(check_device(merged['device'] or 'cpu', origin['device']))
    for key, least in (('threads', 1), ('warmup', 0), ('tile', 1), ('tile_pad', 0)):
        if merged[key] is not None:
            _int_at_least(merged[key], least, origin[key])
    network_opt = network_opts(getattr(flags, 'network_opt', None))
    models = _models(options.get('models', []), 'models', network_opt)
    models += [parse_model_spec(text, network_opt=network_opt) for text in flags.model or []]
    datasets = _datasets(options.get('datasets', []), 'datasets')
    datasets += [parse_dataset_spec(text) for text in flags.dataset or []]
    scales = [_positive_int(s, 'scales') for s in options.get('scales', [])] + list(flags.scale or [])
    crops = [parse_crop_spec(str(c), 'crops') for c in options.get('crops', [])]
    crops += [parse_crop_spec(text) for text in flags.crops or []]
    for key, what in (('models', models), ('datasets', datasets), ('scales', scales), ('out', merged['out'])):
        if not what:
            raise ValueError(f'no {key}: give --{key.rstrip("s")} or {key}: in the -opt file')
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ValueError(f'--model: model names must be unique, got {names}')
    flops_input = merged['flops_input']
    if flops_input is not None:
        if not isinstance(flops_input, (list, tuple)) or len(flops_input) != 2:
            raise ValueError(f'flops_input: expected [height, width], got {flops_input!r}')
        flops_input = tuple(_positive_int(v, 'flops_input') for v in flops_input)
    test_time = TestTime(
        chop=bool(merged['chop']),
        tile=merged['tile'],
        tile_pad=10 if merged['tile_pad'] is None else merged['tile_pad'],
        self_ensemble=bool(merged['self_ensemble']),
        amp=_amp(merged['amp']),
    )
    return QualityConfig(
        models=models,
        datasets=datasets,
        scales=list(dict.fromkeys(scales)),
        out=str(merged['out']),
        device=device,
        threads=merged['threads'],
        flops_input=flops_input,
        warmup=1 if merged['warmup'] is None else merged['warmup'],
        test_time=test_time,
        crops=crops,
        metrics=parse_metric_specs(options.get('metrics', []), getattr(flags, 'metric', None)),
    )
