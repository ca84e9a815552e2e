"""Check ``network_*`` options against the constructor of the arch they name, before anything is built."""

import inspect

from basicsr.utils.registry import ARCH_REGISTRY

from san_plugin.utils.arch_arguments import constructor_arguments


def check_network_options(opt):
    """Raise a ValueError naming the option key if a ``network_*`` section cannot build its registered arch.

    ``build_network`` passes every key but ``type`` to the arch constructor, so a misspelt or unknown key ends as a
    bare ``TypeError: __init__() got an unexpected keyword argument`` that names neither the section nor the file.
    Archs whose constructor takes ``**kwargs`` are not checked for unknown keys. A type that is not registered yet is
    left to BasicSR: projects may register their archs after the options are parsed, and every run that BasicSR
    accepts must stay accepted.

    Args:
        opt (dict): Parsed options.
    """
    for section, net_opt in opt.items():
        if not section.startswith('network_') or not isinstance(net_opt, dict):
            continue
        arch_type = net_opt.get('type')
        if arch_type is None:
            raise ValueError(f'{section}: the option "type" (the arch name, e.g. SAN) is missing')
        if arch_type not in ARCH_REGISTRY:
            continue  # may be registered later (some projects do); BasicSR reports it if it never is
        arguments, takes_any = constructor_arguments(ARCH_REGISTRY.get(arch_type))
        accepted = list(arguments)
        given = [key for key in net_opt if key != 'type']
        unknown = [] if takes_any else [key for key in given if key not in accepted]
        missing = [
            name for name, default in arguments.items() if default is inspect.Parameter.empty and name not in given
        ]
        if unknown or missing:
            problems = [f'unknown option(s) {unknown}'] if unknown else []
            problems += [f'missing required option(s) {missing}'] if missing else []
            raise ValueError(f'{section} (type {arch_type}): {"; ".join(problems)}; {arch_type} accepts {accepted}')
