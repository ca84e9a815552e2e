"""The constructor arguments of a network class, as BasicSR's ``build_network`` passes options to them, and the
options such a callable cannot take."""

import inspect

_ARGUMENT_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def constructor_arguments(network_class):
    """Name and default of every named constructor argument, and whether it also takes ``**kwargs``.

    Args:
        network_class (type): The network class.

    Returns:
        tuple[dict, bool]: Name -> default (``inspect.Parameter.empty`` when required), and whether the constructor
        takes ``**kwargs`` (then any key is accepted).
    """
    params = inspect.signature(network_class).parameters.values()
    named = {param.name: param.default for param in params if param.kind in _ARGUMENT_KINDS}
    return named, any(param.kind is inspect.Parameter.VAR_KEYWORD for param in params)


def option_problems(function, options, set_by_caller=(), any_key_with_kwargs=True):
    """The options that ``function`` (a network class or a metric) cannot take, and the arguments they lack.

    Args:
        function (callable): What the options are passed to as keyword arguments.
        options (Collection[str]): The names of the options given.
        set_by_caller (tuple[str]): Arguments the caller passes itself: neither accepted as options nor missing.
            Default: ().
        any_key_with_kwargs (bool): Accept any option when ``function`` takes ``**kwargs``, as BasicSR's
            ``build_network`` does. Default: True.

    Returns:
        tuple[dict, list[str], list[str]]: The arguments accepted as options (name -> default,
        ``inspect.Parameter.empty`` when required), the unknown options, and the required arguments not given.
    """
    arguments, takes_any = constructor_arguments(function)
    accepted = {name: default for name, default in arguments.items() if name not in set_by_caller}
    accept_any = takes_any and any_key_with_kwargs
    unknown = [name for name in options if name in set_by_caller or not (name in accepted or accept_any)]
    missing = [name for name, default in accepted.items() if default is inspect.Parameter.empty and name not in options]
    return accepted, unknown, missing
