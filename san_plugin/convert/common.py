"""Pieces shared by the converters: reading configuration values off tensors, and checking the result."""

import re

import torch


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


def require_key(state_dict, key, what):
    """Return ``state_dict[key]``, or raise a KeyError naming the key and what is being converted."""
    if key not in state_dict:
        raise KeyError(f'{what}: missing key {key!r}')
    return state_dict[key]


def count_indices(keys, pattern):
    """Number of distinct values of the first group of ``pattern`` among ``keys`` (e.g. groups, blocks)."""
    regex = re.compile(pattern)
    return len({match.group(1) for match in map(regex.match, keys) if match})


def upscale_from_upsampler(conv_weights, num_feat, what):
    """Scale factor of an EDSR-style upsampler from its convs' output channels (4C per x2 stage, or 9C for x3).

    Args:
        conv_weights (dict[str, Tensor]): Upsampler conv weights by key, in order.
        num_feat (int): Channel number of the features.
        what (str): What is being converted, for messages.

    Returns:
        int: The scale.
    """
    out_channels = [weight.shape[0] for weight in conv_weights.values()]
    if out_channels == [9 * num_feat]:
        return 3
    if out_channels and all(c == 4 * num_feat for c in out_channels):
        return 2 ** len(out_channels)
    found = ', '.join(f'{key!r} {weight.shape[0]}' for key, weight in conv_weights.items()) or 'none'
    raise ValueError(
        f'{what}: the output channels of the upsampler convs ({found}) match no scale of 2, 3, 4 or 8 with '
        f'{num_feat} features (4 x {num_feat} per x2 stage, or 9 x {num_feat} for x3)'
    )


def expected_state(network_class, config):
    """``network_class(**config).state_dict()`` built on the meta device: the shapes, with nothing allocated."""
    with torch.device('meta'):
        return network_class(**config).state_dict()
