"""Network options: a BasicSR ``network_*`` block checked against the arch it names, and options read from text.

The one checker of the plugin (:func:`check_network_opt`) serves BasicSR's start-up (``network_*`` sections of an
options file), the study file (``networks:``), the converters (records of weight files, ``--network-opt``) and the
benchmark (``models:`` blocks, ``NAME=type:ARCH,key:value`` specs); the one parser (:func:`parse_options_text`)
reads ``--network-opt key=value`` and the ``key:value`` items of those specs.

Every message names where the block comes from (a file and its key path, or a flag) and the key at fault:
``train.yml: network_g.num_feats: SAN has no option 'num_feats' (options: ...)``.
"""

import yaml
from basicsr.utils.registry import ARCH_REGISTRY

from san_plugin.utils.arch_arguments import option_problems
from san_plugin.utils.yaml_errors import describe_yaml_error


class NetworkOptionError(ValueError):
    """A network block that cannot build its arch, or option text that cannot be read.

    Args:
        where (str): The block (``train.yml: network_g``) or flag (``--network-opt``).
        problem (str): What is wrong.
        item (str | None): The key (or option text) at fault, named after ``where`` (see :func:`key_path`).
            Default: None.
    """

    def __init__(self, where, problem, item=None):
        self.where, self.problem, self.item = where, problem, item
        super().__init__(f'{where if item is None else key_path(where, item)}: {problem}')


def key_path(where, key):
    """How messages name ``key`` of the block at ``where``: ``where.key``, or ``--flag key`` after a flag."""
    return f'{where} {key}' if where.startswith('-') else f'{where}.{key}'


def _lookup(arch_type):
    """The class that BasicSR's ``build_network`` builds for ``arch_type``, or None.

    BasicSR's registry also takes ``<name>`` for ``<name>_basicsr``, the name BasicSR 1.4.2 registers some of its own
    archs under (``SRVGGNetCompact_basicsr``, so that Real-ESRGAN can register ``SRVGGNetCompact``).
    """
    name = next((name for name in (arch_type, f'{arch_type}_basicsr') if name in ARCH_REGISTRY), None)
    return None if name is None else ARCH_REGISTRY.get(name)


def registered_arch(arch_type, where):
    """The arch class registered as ``arch_type``; a :class:`NetworkOptionError` on ``where``'s ``type`` if none."""
    if not isinstance(arch_type, str):
        raise NetworkOptionError(where, f'expected an arch name, got {arch_type!r}', 'type')
    network_class = _lookup(arch_type)
    if network_class is None:
        registered = sorted(ARCH_REGISTRY.keys())
        raise NetworkOptionError(where, f'unknown network type {arch_type!r} (registered: {registered})', 'type')
    return network_class


def check_network_opt(network_opt, where, allow_unregistered=False):
    """Check that ``network_opt`` builds the arch its ``type`` names, as BasicSR's ``build_network`` calls it.

    The rules, the same for every caller:

    - the block is a mapping with a ``type``, the name of an arch;
    - the arch is registered. Only BasicSR's own start-up passes ``allow_unregistered``: a project may register its
      archs after the options are parsed, and BasicSR then reports a type that never is registered, so every run
      that BasicSR accepts stays accepted. Everywhere else (study, converters, tools) the plugin builds the network
      itself, and nothing can register it later;
    - every other key is an argument of the arch's constructor (any key, if the constructor takes ``**kwargs``);
    - every constructor argument without a default is given. The study and the benchmark set ``upscale`` per scale
      themselves, which needs no exception: every registered arch that takes ``upscale`` has a default for it.

    Args:
        network_opt (dict): ``type`` and constructor arguments.
        where (str): Where the block comes from: a file and key path (``train.yml: network_g``), or a flag.
        allow_unregistered (bool): Pass a type that is not registered (BasicSR's start-up). Default: False.

    Returns:
        type | None: The arch class; None for an unregistered type that is allowed.
    """
    if not isinstance(network_opt, dict):
        raise NetworkOptionError(
            where, f'expected a network_g mapping with a type key, got {type(network_opt).__name__}'
        )
    if 'type' not in network_opt:
        raise NetworkOptionError(where, 'missing (the arch name, e.g. SAN)', 'type')
    arch_type = network_opt['type']
    if allow_unregistered and isinstance(arch_type, str) and _lookup(arch_type) is None:
        return None
    network_class = registered_arch(arch_type, where)
    arguments, unknown, missing = option_problems(network_class, [key for key in network_opt if key != 'type'])
    if unknown:
        others = f', nor {", ".join(map(repr, unknown[1:]))}' if unknown[1:] else ''
        raise NetworkOptionError(
            where, f'{arch_type} has no option {unknown[0]!r}{others} (options: {", ".join(arguments)})', unknown[0]
        )
    if missing:
        raise NetworkOptionError(where, f'missing option(s) {", ".join(missing)} ({arch_type} has no default for them)')
    return network_class


def parse_option_text(text, where, separator='='):
    """Read one ``key=value`` (``key:value`` with ``separator=':'``), the value as YAML: ``1``, ``1.``, ``[1, 2]``.

    Args:
        text (str): The item.
        where (str): The flag or spec it comes from, for messages.
        separator (str): Between key and value. Default: '='.

    Returns:
        tuple[str, object]: Key and value.
    """
    key, found, value = text.partition(separator)
    if not found or not key.strip():
        raise NetworkOptionError(where, f'expected key{separator}value, e.g. img_range{separator}1.', repr(text))
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as error:
        problem = f'the value is not valid YAML ({describe_yaml_error(error)})'
        raise NetworkOptionError(where, problem, repr(text)) from None


def parse_options_text(items, where, separator='='):
    """Read ``key=value`` items (see :func:`parse_option_text`) into a dict; a key given twice is an error.

    Args:
        items (Iterable[str]): The items.
        where (str): The flag or spec they come from, for messages.
        separator (str): Between key and value. Default: '='.

    Returns:
        dict: Key -> value, in the order given.
    """
    options = {}
    for text in items:
        key, value = parse_option_text(text, where, separator)
        if key in options:
            raise NetworkOptionError(where, 'given twice', key)
        options[key] = value
    return options
