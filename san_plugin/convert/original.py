"""Checkpoints in the authors' own formats (SAN, DRLN, RCAN): detection and conversion to and from our networks."""

from typing import Callable, NamedTuple

from basicsr.archs import build_network

from san_plugin.convert import original_drln, original_rcan, original_san
from san_plugin.convert.checkpoint_io import load_weights_file
from san_plugin.convert.common import check_against_network, expected_state, strip_module_prefix
from san_plugin.convert.network_config import complete_config
from san_plugin.convert.ours import config_from_our_keys, upscale_of_our_keys
from san_plugin.utils.network_options import registered_arch


def _drln_from_original(state_dict):
    state, dropped = original_drln.drln_state_from_original(state_dict)
    return state, original_drln.drln_config_from_original(state_dict), dropped


def _renamer(rules):
    def rename(state_dict):
        renamed = {rules.to_original(key): tensor for key, tensor in state_dict.items()}
        if None in renamed:
            raise KeyError("a key has no counterpart in the authors' format")
        return renamed

    return rename


class OriginalFormat(NamedTuple):
    """How one arch's authors' format is read and written."""

    is_original: Callable  # their state -> bool
    from_original: Callable  # their state -> (our state, config, dropped keys)
    config_from_original: Callable  # their state -> config
    to_original: Callable  # (our state, config) -> their state
    rename_ours: Callable  # our state -> their key names (KeyError when a key does not fit)
    # Constructor arguments whose effect the tensors hold although no shape shows them (the trainable mean-shift
    # layers replace what rgb_mean initialises).
    carried: tuple = ()


FORMATS = {
    'SAN': OriginalFormat(
        original_san.is_original_san,
        original_san.san_state_from_original,
        original_san.san_config_from_original,
        original_san.san_state_to_original,
        _renamer(original_san.RULES),
        carried=('rgb_mean',),
    ),
    'DRLN': OriginalFormat(
        original_drln.is_original_drln,
        _drln_from_original,
        original_drln.drln_config_from_original,
        lambda state, config: original_drln.drln_state_to_original(state),
        _renamer(original_drln.RULES),
        carried=('rgb_mean',),
    ),
    'RCAN': OriginalFormat(
        original_rcan.is_original_rcan,
        original_rcan.rcan_state_from_original,
        original_rcan.rcan_config_from_original,
        lambda state, config: original_rcan.rcan_state_to_original(state, config['rgb_mean'], config['img_range']),
        original_rcan.rcan_state_to_original,
    ),
}

DETECTION_KEYS = {
    'SAN': original_san.DETECTION_KEYS,
    'DRLN': original_drln.DETECTION_KEYS,
    'RCAN': original_rcan.DETECTION_KEYS,
}


def original_arch(state_dict):
    """The arch type (``'SAN'``, ``'DRLN'``, ``'RCAN'``) whose authors' format ``state_dict`` is in, or None."""
    state_dict = strip_module_prefix(state_dict)
    return next((arch for arch, fmt in FORMATS.items() if fmt.is_original(state_dict)), None)


def convert_original_state(state_dict):
    """Detect the authors' architecture of ``state_dict`` and convert it.

    Args:
        state_dict (dict[str, Tensor]): Weights in the authors' SAN, DRLN or RCAN format (a ``module.`` prefix is
            accepted). RCAN converts to BasicSR's ``RCAN``, which has no mean-shift layers: they are dropped.

    Returns:
        tuple[str, dict, dict, list[str]]: Arch type, our state dict, every constructor argument (those the tensors
        do not show are the authors' code's, which are our archs' defaults), dropped keys.
    """
    state_dict = strip_module_prefix(state_dict)
    arch = original_arch(state_dict)
    if arch is None:
        raise ValueError(_not_original_message(state_dict))
    state, config, dropped = FORMATS[arch].from_original(state_dict)
    return arch, state, complete_config(arch, config, f"authors' {arch} checkpoint"), dropped


def near_miss(state_dict):
    """If ``state_dict`` has most identifying keys of an authors' format but not all, say which are missing."""
    present = {arch: [key for key in keys if key in state_dict] for arch, keys in DETECTION_KEYS.items()}
    closest = max(present, key=lambda arch: len(present[arch]) / len(DETECTION_KEYS[arch]))
    if len(DETECTION_KEYS[closest]) > len(present[closest]) > len(DETECTION_KEYS[closest]) // 2:
        missing = [key for key in DETECTION_KEYS[closest] if key not in state_dict]
        return f"looks like an authors' {closest} checkpoint but lacks the key(s) {missing}"
    return None


def _not_original_message(state_dict):
    return near_miss(state_dict) or (
        "not an authors' SAN, DRLN or RCAN checkpoint: none of the key sets that identify them was found "
        f'(SAN: {list(DETECTION_KEYS["SAN"])[:2]}, DRLN: {list(DETECTION_KEYS["DRLN"])[:2]}, RCAN: '
        f'{list(DETECTION_KEYS["RCAN"])[:2]}); first keys: {list(state_dict)[:5]}'
    )


def config_from_ours(state_dict, check_shapes=False):
    """Recognise a state dict in our (BasicSR) key names as SAN, DRLN or RCAN and infer its configuration.

    SAN (any ablation variant) and DRLN (any depth) are recognised from our key names when a network of the inferred
    configuration has exactly these keys and shapes (:mod:`san_plugin.convert.ours`); otherwise, and for RCAN,
    through the authors' format, whose checks leave the finer mismatches to the load that follows, or to
    ``check_shapes``.

    Args:
        state_dict (dict[str, Tensor]): Weights with our key names.
        check_shapes (bool): Also require a network of the configuration to have exactly these shapes (a ValueError
            naming the key otherwise). Default: False.

    Returns:
        tuple[str | None, dict | None]: Arch type and the constructor arguments that the tensors show, or
        ``(None, None)`` if the keys are of none of the three. A ValueError naming the keys of an upsampler that
        fits no scale.
    """
    arch, config = config_from_our_keys(state_dict)
    if arch is not None:
        return arch, config
    for arch, fmt in FORMATS.items():
        try:
            renamed = fmt.rename_ours(state_dict)
        except KeyError:
            continue
        if fmt.is_original(renamed):
            # The scale read in our key names first, so that an upsampler that fits no scale is named as it is here.
            upscale_of_our_keys(state_dict, state_dict['conv_first.weight'].shape[0])
            config = fmt.config_from_original(renamed)
            if check_shapes:
                _check_shapes(arch, config, state_dict)
            return arch, config
    return None, None


def _check_shapes(arch, config, state_dict):
    """Raise a ValueError naming the key unless a network of ``config`` has exactly the shapes of ``state_dict``."""
    what = f'its tensors are not those of one {arch}'
    try:
        expected = expected_state(registered_arch(arch, arch), config)
    except (RuntimeError, NotImplementedError):  # an arch that cannot be built on the meta device: checked on load
        return
    except (ValueError, TypeError, ZeroDivisionError) as error:  # shapes that give an impossible configuration
        raise ValueError(f'{what}: {error}') from error
    try:
        check_against_network(state_dict, expected, str, what)
    except KeyError as error:
        raise ValueError(error.args[0]) from None


def state_to_original(arch, state_dict, config):
    """Write our state dict of ``arch`` in the authors' format (the inverse of ``convert_original_state``).

    Args:
        arch (str): ``'SAN'``, ``'DRLN'`` or ``'RCAN'``.
        state_dict (dict[str, Tensor]): Our weights.
        config (dict): Our constructor arguments for these weights.

    Returns:
        dict[str, Tensor]: Authors'-format weights.
    """
    if arch not in FORMATS:
        raise ValueError(f"no authors' format is known for arch {arch!r}; known: {list(FORMATS)}")
    return FORMATS[arch].to_original(state_dict, config)


def from_original(checkpoint):
    """Build our network from an authors' checkpoint, with its weights, in eval mode, taking [0, 1] input.

    Every configuration value (groups, blocks, features, reduction, scale) is inferred from the tensors; the
    checkpoint's never-used keys are dropped, and its mean-shift layers are kept as trained (except for RCAN, whose
    BasicSR network has none).

    Args:
        checkpoint (str | Path | dict): Path of an authors' ``.pt`` file, or its state dict.

    Returns:
        nn.Module: The network.
    """
    state_dict = checkpoint if isinstance(checkpoint, dict) else load_weights_file(checkpoint)
    arch, state, config, _ = convert_original_state(state_dict)
    net = build_network({'type': arch, **config})
    net.load_state_dict(state, strict=True)
    return net.eval()
