"""The constructor arguments of a network class, as BasicSR's ``build_network`` passes options to them."""

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
