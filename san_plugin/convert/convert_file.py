"""Convert one weight file: authors' format -> BasicSR checkpoint or safetensors, or back to the authors' format."""

import yaml

from san_plugin.convert.checkpoint_io import check_weights_output, save_weights_file
from san_plugin.convert.loading import read_network_file
from san_plugin.convert.network_config import network_record
from san_plugin.convert.original import FORMATS, convert_original_state, state_to_original


def network_g_block(arch, config):
    """The ``network_g`` block of a BasicSR options file that builds the network of these weights."""
    return yaml.safe_dump({'network_g': {'type': arch, **config}}, sort_keys=False, default_flow_style=None)


def convert_file(src, dst, to_original=False, param_key='params', network_opt=None):
    """Convert the weight file ``src`` and write ``dst``, in the format that ``dst``'s suffix names.

    A ``.pth`` or ``.safetensors`` output records the network's complete configuration (see
    :mod:`san_plugin.convert.network_config`); settings that ``src`` neither records nor shows in its tensors are
    warned about, and ``network_opt`` gives them.

    Args:
        src (str | Path): Any supported weight file (see ``read_any_checkpoint``).
        dst (str | Path): ``.pth``/``.pt`` (BasicSR ``{'params': ...}``) or ``.safetensors``; with ``to_original``,
            the bare authors'-format state dict.
        to_original (bool): Write the authors' format, which their own code loads. Default: False.
        param_key (str | None): Key of the state dict in a BasicSR ``src``. Default: 'params'.
        network_opt (dict | None): Constructor arguments to record instead of what ``src`` holds or the defaults
            (``--network-opt``). Default: None.

    Returns:
        dict: ``arch``, ``config``, ``num_params``, ``notes``.
    """
    check_weights_output(dst, source=src)
    arch, state, config, notes, _, _ = read_network_file(src, param_key, network_opt)
    if arch is None:
        raise ValueError(
            f'weights file {src}: the network is not recognised (the converter reads SAN, DRLN and RCAN weights); '
            'nothing written'
        )
    if to_original:
        original = state_to_original(arch, state, config)
        implied = convert_original_state(original)[2]  # what the authors' format stands for
        lost = {
            key: value for key, value in config.items() if implied[key] != value and key not in FORMATS[arch].carried
        }
        if lost:
            notes.append(
                f"the authors' format cannot hold {', '.join(f'{key}={value!r}' for key, value in lost.items())}: "
                f'their code assumes {", ".join(f"{key}={implied[key]!r}" for key in lost)} unless told otherwise'
            )
        save_weights_file(original, dst, source=src, param_key=None)
    else:
        save_weights_file(state, dst, source=src, record=network_record({'type': arch, **config}))
    return {'arch': arch, 'config': config, 'num_params': sum(t.numel() for t in state.values()), 'notes': notes}
