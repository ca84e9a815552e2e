"""Convert one weight file: authors' format -> BasicSR checkpoint or safetensors, or back to the authors' format."""

import yaml

from san_plugin.convert.checkpoint_io import save_weights_file
from san_plugin.convert.loading import read_any_checkpoint
from san_plugin.convert.original import state_to_original


def network_g_block(arch, config):
    """The ``network_g`` block of a BasicSR options file that builds the network of these weights."""
    return yaml.safe_dump({'network_g': {'type': arch, **config}}, sort_keys=False, default_flow_style=None)


def convert_file(src, dst, to_original=False, param_key='params'):
    """Convert the weight file ``src`` and write ``dst``, in the format that ``dst``'s suffix names.

    Args:
        src (str | Path): Any supported weight file (see ``read_any_checkpoint``).
        dst (str | Path): ``.pth``/``.pt`` (BasicSR ``{'params': ...}``) or ``.safetensors``; with ``to_original``,
            the bare authors'-format state dict.
        to_original (bool): Write the authors' format, which their own code loads. Default: False.
        param_key (str | None): Key of the state dict in a BasicSR ``src``. Default: 'params'.

    Returns:
        dict: ``arch``, ``config`` (None if the architecture is not recognised), ``num_params``, ``notes``.
    """
    arch, state, config, notes = read_any_checkpoint(src, param_key)
    if to_original:
        if arch is None:
            raise ValueError(f"weights file {src}: not a SAN, DRLN or RCAN network, so it has no authors' format")
        save_weights_file(state_to_original(arch, state, config), dst, source=src, param_key=None)
    else:
        if arch is None:
            notes.append('architecture not recognised (not SAN, DRLN or RCAN): tensors written unchanged')
        save_weights_file(state, dst, source=src)
    return {'arch': arch, 'config': config, 'num_params': sum(t.numel() for t in state.values()), 'notes': notes}
