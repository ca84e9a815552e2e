"""Load any supported weight file into a network: the authors' SAN/DRLN/RCAN files, BasicSR checkpoints, safetensors.

The authors' formats are converted on the fly; every mismatch between file and network is an error naming the file,
the key, the expected and the found shape. Across scales (fine-tuning x2 weights at x4) everything but the upsampler
can be loaded on request, and the tensors left at their initial values are logged.
"""

import warnings
from typing import NamedTuple

import torch
from basicsr.utils import get_root_logger

from san_plugin.convert.checkpoint_io import load_weights_and_record
from san_plugin.convert.common import check_against_network, expected_state, strip_module_prefix
from san_plugin.convert.network_config import (
    OVERRIDE_HINT,
    RECORD_KEY,
    AssumedSettingWarning,
    complete_config,
    network_record,
    parse_record,
)
from san_plugin.convert.original import FORMATS, config_from_ours, convert_original_state, near_miss, original_arch
from san_plugin.convert.original_rcan import mean_shift_distance
from san_plugin.utils.network_options import registered_arch

PARAM_KEYS = ('params', 'params_ema')
# Keys of our networks (and BasicSR's) that depend on the scale.
SCALE_PREFIX = 'upsample.'
MAX_LISTED = 8


def _listed(items):
    items = list(items)
    more = f' ... and {len(items) - MAX_LISTED} more' if len(items) > MAX_LISTED else ''
    return ', '.join(map(str, items[:MAX_LISTED])) + more


def _unwrap(loaded, param_key, path, notes):
    """The state dict inside a loaded file: ``loaded[param_key]``, BasicSR's other key, or the file itself."""
    if param_key is not None and isinstance(loaded.get(param_key), dict):
        state = loaded[param_key]
    else:
        present = [key for key in PARAM_KEYS if isinstance(loaded.get(key), dict)]
        state = loaded[present[0]] if present else loaded
        if present and param_key is not None:
            notes.append(f'param key {param_key!r} is not in the file; loaded {present[0]!r}')
    not_tensors = [key for key, value in state.items() if not torch.is_tensor(value)]
    if not_tensors:
        key = not_tensors[0]
        raise ValueError(
            f'weights file {path} is not a state dict: {key!r} holds a {type(state[key]).__name__}, not a tensor '
            f'(top-level keys: {_listed(loaded)})'
        )
    if not state:
        raise ValueError(f'weights file {path} holds no tensors')
    return strip_module_prefix(state)


class NetworkFile(NamedTuple):
    """A weight file read by :func:`read_network_file`.

    Attributes:
        arch (str | None): Arch type; None when neither the tensors nor a record name one of the plugin's.
        state (dict[str, Tensor]): The state dict in our key names.
        config (dict | None): Every constructor argument (None when ``arch`` is).
        notes (list[str]): Notes for the user (format, dropped keys, ...).
        recorded (dict | None): The arguments the file's record holds, or None when it has no record.
        assumed (dict): Arguments given their default: neither recorded nor shown by the tensors nor given.
    """

    arch: str | None
    state: dict
    config: dict | None
    notes: list
    recorded: dict | None
    assumed: dict


def read_network_file(path, param_key='params', network_opt=None, override_hint=OVERRIDE_HINT, check_shapes=True):
    """Read a weight file of any supported format with the complete configuration of its network.

    The configuration comes from the file's record when it has one (checked against the tensors), else from the
    tensors, with the constructor's defaults for what they do not show; ``network_opt`` replaces values last. Values
    that nothing gave are listed in ``assumed`` and, with ``override_hint``, warned about
    (:class:`~san_plugin.convert.network_config.AssumedSettingWarning`). The authors' formats record nothing: every
    setting their tensors do not show is fixed by the authors' code, which our archs' defaults reproduce.

    Args:
        path (str | Path): An authors' SAN/DRLN/RCAN ``.pt``, a BasicSR ``.pth`` (``params``/``params_ema``), or a
            ``.safetensors`` file.
        param_key (str | None): Key of the state dict in a BasicSR checkpoint; falls back to the other one.
            Default: 'params'.
        network_opt (dict | None): Constructor arguments given by the user (``--network-opt``). Default: None.
        override_hint (str | None): How the user gives other values, for the warning; None warns nothing.
            Default: :data:`~san_plugin.convert.network_config.OVERRIDE_HINT`.
        check_shapes (bool): Require the tensors to be exactly those of one network of the configuration they show
            (a ValueError naming the file and the key otherwise), as a network built from the file needs.
            :func:`load_into_network` compares them with its own network instead. Default: True.

    Returns:
        NetworkFile: The file's network.
    """
    notes = []
    loaded, raw_record = load_weights_and_record(path)
    record = None if raw_record is None else parse_record(raw_record, path)
    state = _unwrap(loaded, param_key, path, notes)
    original = original_arch(state)
    if original is not None:
        authors_state = state
        arch, state, config = _convert_original(path, authors_state, notes)
        shown = FORMATS[arch].config_from_original(authors_state)
        carried = config.keys()  # fixed by the authors' code
    else:
        try:
            arch, shown = config_from_ours(state, check_shapes)
        except ValueError as error:
            raise ValueError(f'weights file {path}: {error}') from error
        if arch is None and record is None:
            if near_miss(state):
                raise ValueError(f'weights file {path}: {near_miss(state)}')
            if network_opt:
                raise ValueError(f'--network-opt: the network of weights file {path} is not recognised')
            return NetworkFile(None, state, None, notes, None, {})
        shown = shown or {}
        carried = FORMATS[arch].carried if arch in FORMATS else ()
        config = None if arch is None else complete_config(arch, shown, f'weights file {path}')
    if record is not None:
        if arch is not None and record['type'] != arch:
            raise ValueError(
                f'weights file {path}: {RECORD_KEY}.type is {record["type"]}, but its tensors are a {arch}'
            )
        arch = record['type']
        config = complete_config(arch, record['args'], f'weights file {path}: {RECORD_KEY}.args')
        notes.append(f'network configuration read from the file ({RECORD_KEY})')
    given = {**(record or {}).get('args', {}), **(network_opt or {})}
    unused = getattr(registered_arch(arch, f'weights file {path}'), 'unused_arguments', lambda config: ())(config)
    assumed = {
        key: value
        for key, value in config.items()
        if key not in {**shown, **given} and key not in carried and key not in unused
    }
    if network_opt:
        for key, value in network_opt.items():
            if key in shown and shown[key] != value:
                raise ValueError(
                    f'--network-opt {key}={value!r}: the tensors of weights file {path} show {shown[key]!r}'
                )
        config = complete_config(arch, {**config, **network_opt}, '--network-opt')
    if record is not None or network_opt:
        source = ' and '.join(name for name, used in ((RECORD_KEY, record), ('--network-opt', network_opt)) if used)
        _check_config_fits(path, arch, config, state, shown, source)
    if assumed and override_hint:
        values = ', '.join(f'{key}={value!r}' for key, value in assumed.items())
        warnings.warn(
            f'weights file {path} does not record {", ".join(assumed)} of its {arch}, and its tensors do not show '
            f'them: assumed the defaults {values}. If the network was trained with other values, give them with '
            f'{override_hint}',
            AssumedSettingWarning,
            stacklevel=2,
        )
    return NetworkFile(arch, state, config, notes, None if record is None else record['args'], assumed)


def _convert_original(path, state, notes):
    """Convert an authors'-format state dict read from ``path``; returns arch, our state dict and configuration."""
    try:
        arch, converted, config, dropped = convert_original_state(state)
    except (KeyError, ValueError) as error:
        raise ValueError(f'weights file {path}: {error.args[0]}') from error
    notes.append(f"authors' {arch} format, converted on load")
    if arch == 'RCAN':
        distance = mean_shift_distance(state, config['rgb_mean'], config['img_range'])
        notes.append(
            f"dropped the mean-shift layers {_listed(dropped)}: BasicSR's RCAN has no mean-shift layers, it subtracts "
            f'and adds rgb_mean {config["rgb_mean"]} x img_range {config["img_range"]:g}. Largest difference of the '
            f'dropped layers to that: {", ".join(f"{key} {value:.3g}" for key, value in distance.items())}'
        )
    elif dropped:
        notes.append(f"dropped {len(dropped)} keys the authors' forward never uses: {_listed(dropped)}")
    return arch, converted, config


def _check_config_fits(path, arch, config, state, shown, source):
    """Raise a ValueError naming the file and the key if a network built with ``config`` does not fit ``state``."""
    try:
        expected = expected_state(registered_arch(arch, f'weights file {path}'), config)
    except (RuntimeError, NotImplementedError):  # an arch that cannot be built on the meta device: checked on load
        return
    try:
        check_against_network(state, expected, str, arch)
    except (KeyError, ValueError) as error:
        differ = [
            f'{key}={config[key]!r} where the tensors show {value!r}'
            for key, value in shown.items()
            if config[key] != value
        ]
        detail = f' ({"; ".join(differ)})' if differ else ''
        raise ValueError(
            f'weights file {path}: its tensors do not fit the configuration from {source}{detail}: {error.args[0]}'
        ) from error


def read_any_checkpoint(path, param_key='params'):
    """Read a weight file of any supported format, converting the authors' formats to our key names.

    :func:`read_network_file` without warnings, for callers whose network is already configured.

    Args:
        path (str | Path): An authors' SAN/DRLN/RCAN ``.pt``, a BasicSR ``.pth`` (``params``/``params_ema``), or a
            ``.safetensors`` file.
        param_key (str | None): Key of the state dict in a BasicSR checkpoint; falls back to the other one.
            Default: 'params'.

    Returns:
        tuple[str | None, dict, dict | None, list[str]]: Arch type and every constructor argument (None for weights
        of another network), our state dict, and notes for the user (format, dropped keys, ...).
    """
    weights = read_network_file(path, param_key, override_hint=None)
    return weights.arch, weights.state, weights.config, weights.notes


def _scale_of(arch, config):
    return f'x{config["upscale"]} {arch}' if config else 'network'


def load_into_network(
    net, path, param_key='params', strict=True, allow_scale_change=False, logger=None, network_opt=None
):
    """Load a weight file of any supported format into ``net``, with checks that name the file and the keys.

    Args:
        net (nn.Module): The (bare) network.
        path (str | Path): The weight file (see ``read_any_checkpoint``).
        param_key (str | None): Key of the state dict in a BasicSR checkpoint. Default: 'params'.
        strict (bool): Require every key and shape to match; otherwise load what matches and log the rest.
            Default: True.
        allow_scale_change (bool): Load weights of another scale: everything but the upsampler, which keeps its
            initial values. Default: False.
        logger (logging.Logger | None): Where notes go. Default: BasicSR's root logger.
        network_opt (dict | None): The ``network_g`` options ``net`` was built with; every value that differs from
            the file's record is logged as a warning. Default: None.

    Returns:
        list[str]: Keys of ``net`` left at their initial values.
    """
    logger = logger or get_root_logger()
    weights = read_network_file(path, param_key, override_hint=None, check_shapes=False)
    arch, state, config = weights.arch, weights.state, weights.config
    net_arch = type(net).__name__
    if arch is not None and arch != net_arch:
        raise ValueError(f'weights file {path} holds a {_scale_of(arch, config)}, but the network is a {net_arch}')
    for note in weights.notes:
        logger.info(f'Loading {path}: {note}')
    if network_opt is not None and weights.recorded is not None and network_opt.get('type') == arch:
        built = network_record(network_opt)['args']
        for key, value in weights.recorded.items():
            if key in built and built[key] != value and not (key == 'upscale' and allow_scale_change):
                logger.warning(
                    f'Loading {path}: the file records {key}={value!r}, the network is built with {built[key]!r}'
                )
    expected = net.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    wrong_shape = [
        (key, tuple(expected[key].shape), tuple(state[key].shape))
        for key in expected
        if key in state and state[key].shape != expected[key].shape
    ]
    mismatched = missing + unexpected + [key for key, _, _ in wrong_shape]
    only_scale = bool(mismatched) and all(key.startswith(SCALE_PREFIX) for key in mismatched)
    if mismatched and strict and not (only_scale and allow_scale_change):
        raise ValueError(_mismatch_message(path, net, arch, config, missing, unexpected, wrong_shape, only_scale))
    loadable = {key: tensor for key, tensor in state.items() if key in expected and key not in mismatched}
    net.load_state_dict(loadable, strict=False)
    kept = [key for key in expected if key not in loadable]
    if kept:
        logger.warning(f'Loading {path}: {len(kept)} tensors kept their initial values: {", ".join(kept)}')
    if unexpected:
        logger.warning(f'Loading {path}: keys of the file the network does not have, ignored: {_listed(unexpected)}')
    logger.info(f'Loaded {net_arch} from {path}')
    return kept


def _mismatch_message(path, net, arch, config, missing, unexpected, wrong_shape, only_scale):
    parts = [f'{key!r}: expected shape {want}, found {found}' for key, want, found in wrong_shape]
    if missing:
        parts.append(f'missing keys: {_listed(missing)}')
    if unexpected:
        parts.append(f'unexpected keys: {_listed(unexpected)}')
    message = f'weights file {path} does not fit the {type(net).__name__} network: ' + '; '.join(parts)
    if only_scale:
        net_arch, net_config = config_from_ours(net.state_dict())
        message += (
            f'. Only the upsampler differs: the file is a {_scale_of(arch, config)} and the network a '
            f"{_scale_of(net_arch, net_config)} (scale mismatch); set the network's upscale to the file's, or, to "
            'fine-tune across scales, load with allow_scale_change (in an options file: train.allow_scale_change_g: '
            'true)'
        )
    return message
