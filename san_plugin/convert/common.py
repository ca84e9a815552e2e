"""Checks shared by the converters: every tensor present, with the shape our network expects."""


def strip_module_prefix(state_dict):
    """Drop the ``module.`` prefix that ``DataParallel`` adds, if every key has it."""
    if state_dict and all(key.startswith('module.') for key in state_dict):
        return {key[len('module.') :]: value for key, value in state_dict.items()}
    return dict(state_dict)


def check_against_network(converted, expected, original_name, what):
    """Raise unless ``converted`` has exactly the keys and shapes of ``expected``.

    Args:
        converted (dict[str, Tensor]): Converted state dict, our key names.
        expected (dict[str, Tensor]): ``state_dict()`` of a network built with the inferred configuration.
        original_name (Callable[[str], str]): Our key -> its name in the source format, for messages.
        what (str): What is being converted, for messages (e.g. ``"authors' SAN checkpoint"``).
    """
    for key, tensor in expected.items():
        if key not in converted:
            raise KeyError(f'{what}: missing key {original_name(key)!r}')
        found = tuple(converted[key].shape)
        if found != tuple(tensor.shape):
            raise ValueError(f'{what}: key {original_name(key)!r} has shape {found}, expected {tuple(tensor.shape)}')
    extra = sorted(set(converted) - set(expected))
    if extra:
        raise KeyError(f'{what}: keys the network does not have: {[original_name(k) for k in extra]}')
