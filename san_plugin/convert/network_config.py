"""Weight files that describe themselves: the network configuration the plugin records beside the tensors.

A record is ``{'format_version': 1, 'type': ARCH, 'args': {...every constructor argument...}, 'writer': ...}``, built
from the ``network_g`` options (or a configuration read from tensors) merged with the arch constructor's defaults, so
that arguments added to an arch later are recorded without any change here. Where it lives:

- ``.pth`` files: the top-level key ``network_config`` beside ``params``/``params_ema`` (a dict of plain values, which
  ``torch.load(weights_only=True)`` reads). BasicSR's ``load_network`` reads ``params``/``params_ema`` only, and
  spandrel unwraps them before detecting the architecture, so both ignore it;
- ``.safetensors`` files: the metadata entry ``network_config``, the record as a JSON string (metadata holds strings
  only; safetensors readers that load tensors never look at it).

The authors' formats stay bare state dicts, as their code loads them.
"""

import inspect
import json

from san_plugin.utils.arch_arguments import constructor_arguments
from san_plugin.utils.network_options import check_network_opt, parse_options_text, registered_arch

RECORD_KEY = 'network_config'
FORMAT_VERSION = 1
# How a user gives settings that a weight file neither records nor holds in its tensors.
OVERRIDE_HINT = '--network-opt key=value, or a network_g block in an options file'


class AssumedSettingWarning(UserWarning):
    """A network setting that a weight file neither records nor reveals in its tensors was given its default."""


def plain_value(value, where):
    """``value`` as JSON-serialisable data (tuples become lists); a ValueError naming ``where`` otherwise."""
    if isinstance(value, (tuple, list)):
        return [plain_value(item, where) for item in value]
    if isinstance(value, dict):
        return {str(key): plain_value(item, f'{where}.{key}') for key, item in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f'{where}: {value!r} ({type(value).__name__}) cannot be recorded in a weight file')


def complete_config(arch_type, config, where):
    """Every constructor argument of ``arch_type``: ``config``'s values, the constructor's defaults for the rest.

    Args:
        arch_type (str): Registered arch name.
        config (dict): Known arguments (without ``type``), checked by
            :func:`san_plugin.utils.network_options.check_network_opt`.
        where (str): What the configuration comes from, for messages.

    Returns:
        dict: The complete arguments, as plain (JSON-serialisable) values.
    """
    arguments, _ = constructor_arguments(check_network_opt({'type': arch_type, **config}, where))
    complete = {name: default for name, default in arguments.items() if default is not inspect.Parameter.empty}
    complete.update(config)
    return {name: plain_value(value, f'{where}: {name}') for name, value in complete.items()}


def network_record(network_opt, where='network_g'):
    """The record of a network built from ``network_opt`` (a ``network_g`` block: ``type`` and arguments).

    Args:
        network_opt (dict): ``type`` and constructor arguments.
        where (str): Option section, for messages. Default: 'network_g'.

    Returns:
        dict: ``format_version``, ``type``, ``args`` (every constructor argument), ``writer``.
    """
    from san_plugin.version import __version__

    config = dict(network_opt)
    arch_type = config.pop('type', None)
    return {
        'format_version': FORMAT_VERSION,
        'type': arch_type,
        'args': complete_config(arch_type, config, where),
        'writer': f'san_plugin {__version__}',
    }


def parse_record(value, path):
    """Read and check the record found in weight file ``path`` (a dict, or a JSON string from safetensors metadata).

    Returns:
        dict: The record.
    """
    where = f'weights file {path}: {RECORD_KEY}'
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ValueError(f'{where} is not valid JSON: {error}') from error
    if not isinstance(value, dict):
        raise ValueError(f'{where} is a {type(value).__name__}, not a mapping')
    version = value.get('format_version')
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f'{where}.format_version is {version!r}, not an integer')
    if version > FORMAT_VERSION:
        raise ValueError(
            f'{where}.format_version is {version}, newer than the {FORMAT_VERSION} this san_plugin reads; update it'
        )
    registered_arch(value.get('type'), where)
    if not isinstance(value.get('args'), dict):
        raise ValueError(f'{where}.args is {value.get("args")!r}, not a mapping of constructor arguments')
    return value


def add_network_opt_argument(parser):
    """Add the repeatable ``--network-opt KEY=VALUE`` flag of the tools to an ``argparse`` parser."""
    parser.add_argument(
        '--network-opt',
        action='append',
        default=[],
        metavar='KEY=VALUE',
        help='a network constructor argument that the weights neither record nor show in their tensors, e.g. '
        'img_range=1. (value read as YAML; repeat the flag for more)',
    )


def network_opts(items):
    """``--network-opt`` items (``key=value`` strings) as a dict (see
    :func:`san_plugin.utils.network_options.parse_options_text`)."""
    return parse_options_text(items or (), '--network-opt')
