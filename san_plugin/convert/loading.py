"""Load any supported weight file into a network: the authors' SAN/DRLN/RCAN files, BasicSR checkpoints, safetensors.

The authors' formats are converted on the fly; every mismatch between file and network is an error naming the file,
the key, the expected and the found shape. Across scales (fine-tuning x2 weights at x4) everything but the upsampler
can be loaded on request, and the tensors left at their initial values are logged.
"""

import torch
from basicsr.utils import get_root_logger

from san_plugin.convert.checkpoint_io import load_weights_file
from san_plugin.convert.common import strip_module_prefix
from san_plugin.convert.original import config_from_ours, convert_original_state, near_miss, original_arch
from san_plugin.convert.original_rcan import mean_shift_distance

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


def read_any_checkpoint(path, param_key='params'):
    """Read a weight file of any supported format, converting the authors' formats to our key names.

    Args:
        path (str | Path): An authors' SAN/DRLN/RCAN ``.pt``, a BasicSR ``.pth`` (``params``/``params_ema``), or a
            ``.safetensors`` file.
        param_key (str | None): Key of the state dict in a BasicSR checkpoint; falls back to the other one.
            Default: 'params'.

    Returns:
        tuple[str | None, dict, dict | None, list[str]]: Arch type and constructor arguments inferred from the tensors
        (None for weights of another network), our state dict, and notes for the user (format, dropped keys, ...).
    """
    notes = []
    state = _unwrap(load_weights_file(path), param_key, path, notes)
    if original_arch(state) is None:
        arch, config = config_from_ours(state)
        if arch is None and near_miss(state):
            raise ValueError(f'weights file {path}: {near_miss(state)}')
        return arch, state, config, notes
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
    return arch, converted, config, notes


def _scale_of(arch, config):
    return f'x{config["upscale"]} {arch}' if config else 'network'


def load_into_network(net, path, param_key='params', strict=True, allow_scale_change=False, logger=None):
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

    Returns:
        list[str]: Keys of ``net`` left at their initial values.
    """
    logger = logger or get_root_logger()
    arch, state, config, notes = read_any_checkpoint(path, param_key)
    net_arch = type(net).__name__
    if arch is not None and arch != net_arch:
        raise ValueError(f'weights file {path} holds a {_scale_of(arch, config)}, but the network is a {net_arch}')
    for note in notes:
        logger.info(f'Loading {path}: {note}')
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
            f"{_scale_of(net_arch, net_config)} (scale mismatch); set the network's upscale to the file's, or load "
            'with allow_scale_change to fine-tune across scales'
        )
    return message
