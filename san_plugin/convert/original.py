"""Checkpoints in the authors' own formats (SAN, DRLN): detection and conversion to our networks."""

from basicsr.archs import build_network

from san_plugin.convert.checkpoint_io import load_weights_file
from san_plugin.convert.common import strip_module_prefix
from san_plugin.convert.original_san import is_original_san, san_state_from_original


def convert_original_state(state_dict):
    """Detect the authors' architecture of ``state_dict`` and convert it.

    Args:
        state_dict (dict[str, Tensor]): Weights in the authors' SAN or DRLN format (a ``module.`` prefix is accepted).

    Returns:
        tuple[str, dict, dict, list[str]]: Arch type, our state dict, our constructor arguments, dropped keys.
    """
    state_dict = strip_module_prefix(state_dict)
    if is_original_san(state_dict):
        state, config, dropped = san_state_from_original(state_dict)
        return 'SAN', state, config, dropped
    raise ValueError(
        "not an authors' SAN or DRLN checkpoint: none of the keys that identify them (e.g. 'head.0.weight', "
        f"'non_local.non_local.theta.weight') was found; first keys: {list(state_dict)[:5]}"
    )


def from_original(checkpoint):
    """Build our network from an authors' checkpoint, with its weights, in eval mode, taking [0, 1] input.

    Every configuration value (groups, blocks, features, reduction, scale) is inferred from the tensors; the
    checkpoint's never-used keys are dropped, and its mean-shift layers are kept as trained.

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
