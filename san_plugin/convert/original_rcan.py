"""The authors' RCAN checkpoint format (yulunzhang/RCAN ``rcan.py``) and BasicSR's ``RCAN``: detection, conversion.

The authors' file keeps each group's closing conv and the conv after the body as the last entries of the group's and
the body's ``nn.Sequential`` (``body.<i>.body.<num_block>``, ``body.<num_group>``), so their names depend on the
configuration: the key table is built for the counts read from the keys. BasicSR's RCAN has no mean-shift layers
(it subtracts and adds a fixed ``rgb_mean``), so the authors' trainable ``sub_mean``/``add_mean`` convs are dropped,
and ``mean_shift_distance`` says how far they are from what BasicSR's RCAN assumes.
"""

import re

import torch
from basicsr.archs.rcan_arch import RCAN

from san_plugin.convert.common import (
    check_against_network,
    count_indices,
    expected_state,
    require_key,
    upscale_from_upsampler,
)
from san_plugin.convert.key_rules import KeyRules

WHAT = "authors' RCAN checkpoint"
MEAN_SHIFT_KEYS = ('sub_mean.weight', 'sub_mean.bias', 'add_mean.weight', 'add_mean.bias')
DETECTION_KEYS = (
    'head.0.weight',
    'body.0.body.0.body.0.weight',
    'body.0.body.0.body.3.conv_du.0.weight',
    'tail.1.weight',
)
# What BasicSR's RCAN assumes (its defaults, which are also the authors' code's).
IMG_RANGE = 255.0
RGB_MEAN = (0.4488, 0.4371, 0.4040)


def rcan_rules(num_group, num_block):
    """The key table between the authors' RCAN and BasicSR's for ``num_group`` groups of ``num_block`` blocks."""
    return KeyRules(
        pairs=[
            ('head.0.{p}', 'conv_first.{p}'),
            ('body.{i}.body.{j}.body.0.{p}', 'body.{i}.residual_group.{j}.rcab.0.{p}'),
            ('body.{i}.body.{j}.body.2.{p}', 'body.{i}.residual_group.{j}.rcab.2.{p}'),
            ('body.{i}.body.{j}.body.3.conv_du.0.{p}', 'body.{i}.residual_group.{j}.rcab.3.attention.1.{p}'),
            ('body.{i}.body.{j}.body.3.conv_du.2.{p}', 'body.{i}.residual_group.{j}.rcab.3.attention.3.{p}'),
            (f'body.{{i}}.body.{num_block}.{{p}}', 'body.{i}.conv.{p}'),
            (f'body.{num_group}.{{p}}', 'conv_after_body.{p}'),
            ('tail.0.{k}.{p}', 'upsample.{k}.{p}'),
            ('tail.1.{p}', 'conv_last.{p}'),
        ],
        unused=['sub_mean.{p}', 'add_mean.{p}'],
    )


def is_original_rcan(state_dict):
    """Whether ``state_dict`` is in the authors' RCAN format."""
    return all(key in state_dict for key in DETECTION_KEYS)


def rcan_config_from_original(state_dict):
    """Infer BasicSR ``RCAN`` constructor arguments from an authors' RCAN state dict.

    Args:
        state_dict (dict[str, Tensor]): Authors'-format weights.

    Returns:
        dict: ``num_in_ch``, ``num_out_ch``, ``num_feat``, ``num_group``, ``num_block``, ``squeeze_factor``,
        ``upscale``: what the tensors show (``res_scale``, ``img_range`` and ``rgb_mean`` are not in them).
    """
    num_feat, num_in_ch = require_key(state_dict, 'head.0.weight', WHAT).shape[:2]
    upsampler_keys = sorted(
        (key for key in state_dict if re.match(r'^tail\.0\.\d+\.weight$', key)), key=lambda key: int(key.split('.')[2])
    )
    return {
        'num_in_ch': int(num_in_ch),
        'num_out_ch': int(require_key(state_dict, 'tail.1.weight', WHAT).shape[0]),
        'num_feat': int(num_feat),
        'num_group': count_indices(state_dict, r'^body\.(\d+)\.body\.'),
        'num_block': count_indices(state_dict, r'^body\.0\.body\.(\d+)\.body\.'),
        'squeeze_factor': int(
            num_feat // require_key(state_dict, 'body.0.body.0.body.3.conv_du.0.weight', WHAT).shape[0]
        ),
        'upscale': upscale_from_upsampler({key: state_dict[key] for key in upsampler_keys}, num_feat, WHAT),
    }


def rcan_state_from_original(state_dict):
    """Convert an authors' RCAN state dict to BasicSR's ``RCAN``, checked against a network of the inferred config.

    Args:
        state_dict (dict[str, Tensor]): Authors'-format weights.

    Returns:
        tuple[dict, dict, list[str]]: BasicSR state dict, the inferred configuration, the dropped mean-shift keys
        (see ``mean_shift_distance`` for how much they matter).
    """
    config = rcan_config_from_original(state_dict)
    rules = rcan_rules(config['num_group'], config['num_block'])
    converted, dropped = rules.rename_to_ours(state_dict, WHAT)
    check_against_network(converted, expected_state(RCAN, config), rules.to_original, WHAT)
    return converted, config, dropped


def rcan_state_to_original(state_dict, rgb_mean=RGB_MEAN, img_range=IMG_RANGE):
    """Write a BasicSR ``RCAN`` state dict in the authors' format, so their code loads it.

    The mean-shift layers BasicSR's RCAN lacks are written as the fixed shift it applies (identity weights, biases
    ``-/+ img_range * rgb_mean``), so the authors' network computes the same function.

    Args:
        state_dict (dict[str, Tensor]): BasicSR RCAN weights.
        rgb_mean (Sequence[float]): The network's ``rgb_mean``. Default: DIV2K's.
        img_range (float): The network's ``img_range``. Default: 255.

    Returns:
        dict[str, Tensor]: Authors'-format weights.
    """
    num_group = count_indices(state_dict, r'^body\.(\d+)\.residual_group\.')
    num_block = count_indices(state_dict, r'^body\.0\.residual_group\.(\d+)\.')
    rules = rcan_rules(num_group, num_block)
    original = {}
    for key, tensor in state_dict.items():
        original_key = rules.to_original(key)
        if original_key is None:
            raise KeyError(f"RCAN state dict: key {key!r} has no counterpart in the authors' format")
        original[original_key] = tensor
    num_ch = len(rgb_mean)
    shift = img_range * torch.tensor(rgb_mean, dtype=torch.float32)
    identity = torch.eye(num_ch).view(num_ch, num_ch, 1, 1)
    mean_shift = {'sub_mean.weight': identity, 'sub_mean.bias': -shift, 'add_mean.weight': identity.clone()}
    return {**mean_shift, 'add_mean.bias': shift.clone(), **original}


def mean_shift_distance(state_dict, rgb_mean=RGB_MEAN, img_range=IMG_RANGE):
    """How far an authors' RCAN file's mean-shift layers are from the fixed shift of BasicSR's RCAN.

    Args:
        state_dict (dict[str, Tensor]): Authors'-format weights.
        rgb_mean (Sequence[float]): The ``rgb_mean`` of the BasicSR network. Default: DIV2K's.
        img_range (float): The ``img_range`` of the BasicSR network. Default: 255.

    Returns:
        dict[str, float]: Per mean-shift key, the largest absolute difference to BasicSR's assumption (biases in
        ``[0, img_range]`` units).
    """
    num_ch = len(rgb_mean)
    shift = img_range * torch.tensor(rgb_mean, dtype=torch.float64)
    assumed = {
        'sub_mean.weight': torch.eye(num_ch, dtype=torch.float64),
        'sub_mean.bias': -shift,
        'add_mean.weight': torch.eye(num_ch, dtype=torch.float64),
        'add_mean.bias': shift,
    }
    distance = {}
    for key, value in assumed.items():
        found = require_key(state_dict, key, WHAT).double()
        if found.numel() != value.numel():
            raise ValueError(f'{WHAT}: key {key!r} has shape {tuple(found.shape)}, expected {num_ch} channels')
        distance[key] = (found.reshape(value.shape) - value).abs().max().item()
    return distance
