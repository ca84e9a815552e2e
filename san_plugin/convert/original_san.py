"""The authors' SAN checkpoint format (daitao/SAN ``san.py``): detection, configuration inference, conversion."""

import re

import torch

from san_plugin.archs.san_arch import SAN
from san_plugin.convert.common import (
    check_against_network,
    count_indices,
    expected_state,
    require_key,
    upscale_from_upsampler,
)
from san_plugin.convert.key_rules import KeyRules

WHAT = "authors' SAN checkpoint"
# The ablation switches of our SAN at the paper's network, the only one the authors' format can hold.
PAPER_NETWORK = {'channel_attention': 'second_order', 'attention_placement': 'group', 'use_nonlocal': True,
                 'share_source_skip': True}  # fmt: skip

RULES = KeyRules(
    pairs=[
        ('sub_mean.{p}', 'sub_mean.{p}'),
        ('add_mean.{p}', 'add_mean.{p}'),
        ('head.0.{p}', 'conv_first.{p}'),
        ('gamma', 'gamma'),
        ('non_local.non_local.theta.{p}', 'non_local.theta.{p}'),
        ('non_local.non_local.phi.0.{p}', 'non_local.phi.{p}'),
        ('non_local.non_local.g.0.{p}', 'non_local.g.{p}'),
        ('non_local.non_local.W.{p}', 'non_local.conv_out.{p}'),
        ('RG.{i}.rcab.{j}.conv_first.0.{p}', 'body.{i}.blocks.{j}.conv1.{p}'),
        ('RG.{i}.rcab.{j}.conv_first.2.{p}', 'body.{i}.blocks.{j}.conv2.{p}'),
        ('RG.{i}.soca.conv_du.{k}.{p}', 'body.{i}.soca.attention.{k}.{p}'),
        ('RG.{i}.conv_last.{p}', 'body.{i}.conv.{p}'),
        ('tail.0.{k}.{p}', 'upsample.{k}.{p}'),
        ('tail.1.{p}', 'conv_last.{p}'),
    ],
    # Stored by the authors' code but never used by its forward pass.
    unused=['conv_last.{p}', 'non_local.soca.conv_du.{k}.{p}', 'RG.{i}.gamma'],
)

DETECTION_KEYS = ('head.0.weight', 'non_local.non_local.theta.weight', 'RG.0.soca.conv_du.0.weight', 'tail.1.weight')


def is_original_san(state_dict):
    """Whether ``state_dict`` is in the authors' SAN format."""
    return all(key in state_dict for key in DETECTION_KEYS)


def san_config_from_original(state_dict):
    """Infer our ``SAN`` constructor arguments from an authors' SAN state dict.

    Args:
        state_dict (dict[str, Tensor]): Authors'-format weights.

    Returns:
        dict: ``num_in_ch``, ``num_out_ch``, ``num_feat``, ``num_group``, ``num_block``, ``squeeze_factor``,
        ``upscale``, ``nonlocal_reduction``.
    """
    head = require_key(state_dict, 'head.0.weight', WHAT)
    num_feat, num_in_ch = head.shape[:2]
    upsampler = {
        k: state_dict[k] for k in sorted(state_dict, key=_tail_order) if re.match(r'^tail\.0\.\d+\.weight$', k)
    }
    return {
        'num_in_ch': int(num_in_ch),
        'num_out_ch': int(require_key(state_dict, 'tail.1.weight', WHAT).shape[0]),
        'num_feat': int(num_feat),
        'num_group': count_indices(state_dict, r'^RG\.(\d+)\.'),
        'num_block': count_indices(state_dict, r'^RG\.0\.rcab\.(\d+)\.'),
        'squeeze_factor': int(num_feat // require_key(state_dict, 'RG.0.soca.conv_du.0.weight', WHAT).shape[0]),
        'upscale': upscale_from_upsampler(upsampler, num_feat, WHAT),
        'nonlocal_reduction': int(
            num_feat // require_key(state_dict, 'non_local.non_local.theta.weight', WHAT).shape[0]
        ),
    }


def _tail_order(key):
    match = re.match(r'^tail\.0\.(\d+)\.', key)
    return int(match.group(1)) if match else -1


def san_state_from_original(state_dict):
    """Convert an authors' SAN state dict to ours, checked against a network of the inferred configuration.

    Args:
        state_dict (dict[str, Tensor]): Authors'-format weights.

    Returns:
        tuple[dict, dict, list[str]]: Our state dict, the inferred configuration, the dropped never-used keys.
    """
    config = san_config_from_original(state_dict)
    converted, dropped = RULES.rename_to_ours(state_dict, WHAT)
    check_against_network(converted, expected_state(SAN, config), RULES.to_original, WHAT)
    return converted, config, dropped


def san_state_to_original(state_dict, config):
    """Write our SAN state dict in the authors' format, so their code loads it.

    The never-used tensors the authors' modules still declare are written as zeros of the right shape.

    Args:
        state_dict (dict[str, Tensor]): Our weights.
        config (dict): Our ``SAN`` constructor arguments for these weights.

    Returns:
        dict[str, Tensor]: Authors'-format weights.
    """
    variant = {key: config[key] for key, paper in PAPER_NETWORK.items() if key in config and config[key] != paper}
    if variant:
        raise ValueError(
            f'SAN state dict of an ablation variant ({", ".join(f"{k}={v!r}" for k, v in variant.items())}): the '
            "authors' format holds only the paper's network"
        )
    original = {}
    for key, tensor in state_dict.items():
        original_key = RULES.to_original(key)
        if original_key is None:
            raise KeyError(f"SAN state dict: key {key!r} has no counterpart in the authors' format")
        original[original_key] = tensor
    num_feat = config['num_feat']
    unused_width = num_feat // 8  # the authors' unused SOCA inside the non-local module has reduction 8
    original['conv_last.weight'] = torch.zeros(num_feat, num_feat, 3, 3)
    original['conv_last.bias'] = torch.zeros(num_feat)
    original['non_local.soca.conv_du.0.weight'] = torch.zeros(unused_width, num_feat, 1, 1)
    original['non_local.soca.conv_du.0.bias'] = torch.zeros(unused_width)
    original['non_local.soca.conv_du.2.weight'] = torch.zeros(num_feat, unused_width, 1, 1)
    original['non_local.soca.conv_du.2.bias'] = torch.zeros(num_feat)
    for group in range(config['num_group']):
        original[f'RG.{group}.gamma'] = torch.zeros(1)
    return original
