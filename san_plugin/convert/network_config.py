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

import yaml
from basicsr.utils.registry import ARCH_REGISTRY

from san_plugin.utils.arch_arguments import constructor_arguments as arch_arguments

RECORD_KEY = 'network_config'
FORMAT_VERSION = 1
# How a user gives settings that a weight file neither records nor holds in its tensors.
OVERRIDE_HINT = '--network-opt key=value, or a network_g block in an options file'


class AssumedSettingWarning(UserWarning):
    """A network setting that a weight file neither records nor reveals in its tensors was given its default."""


def arch_class(arch_type, where):
    """The registered arch class named ``arch_type``; a ValueError naming ``where`` if there is none."""
    try:
        return ARCH_REGISTRY.get(arch_type)
    except KeyError:
        raise ValueError(f'{where}: type {arch_type!r} is not a registered arch') from None


def constructor_arguments(arch_type, where):
    """The constructor arguments of a registered arch (:func:`san_plugin.utils.arch_arguments.constructor_arguments`).

    Returns:
        tuple[dict, bool]: Name -> default (``inspect.Parameter.empty`` when required) of every named argument, and
        whether the constructor also takes ``**kwargs``.
    """
    return arch_arguments(arch_class(arch_type, where))


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
        config (dict): Known arguments (without ``type``).
        where (str): What the configuration comes from, for messages.

    Returns:
        dict: The complete arguments, as plain (JSON-serialisable) values.
    """
    arguments, takes_any = constructor_arguments(arch_type, where)
    unknown = [] if takes_any else [name for name in config if name not in arguments]
    if unknown:
        raise ValueError(f'{where}: {arch_type} has no argument {unknown[0]!r}; it takes {list(arguments)}')
    missing = [name for name, default in arguments.items() if default is inspect.Parameter.empty and name not in config]
    if missing:
        raise ValueError(f'{where}: {arch_type} needs the argument(s) {missing}')
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
    if not isinstance(arch_type, str):
        raise ValueError(f'{where}: the option "type" (the arch name) is missing')
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
    if not isinstance(value.get('type'), str):
        raise ValueError(f'{where}.type is {value.get("type")!r}, not an arch name')
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


def parse_network_opt(text):
    """Parse one ``key=value`` of ``--network-opt`` (the value read as YAML: ``1``, ``1.``, ``[0.5, 0.5, 0.5]``).

    Returns:
        tuple[str, object]: Key and value.
    """
    key, sep, value = text.partition('=')
    if not sep or not key.strip():
        raise ValueError(f'--network-opt {text!r}: expected key=value, e.g. img_range=1.')
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as error:
        raise ValueError(f'--network-opt {text!r}: the value is not valid YAML: {error}') from error


def network_opts(items):
    """``--network-opt`` items (``key=value`` strings) as a dict; a repeated key is an error."""
    opts = {}
    for text in items or ():
        key, value = parse_network_opt(text)
        if key in opts:
            raise ValueError(f'--network-opt {key} is given twice')
        opts[key] = value
    return opts
