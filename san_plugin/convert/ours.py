"""Recognise weights of the plugin's own networks in our key names where the authors' format has no counterpart.

The authors' formats hold only their networks: the paper's SAN and DRLN at the authors' depth. The plugin also builds
SAN ablation variants (``channel_attention``, ``attention_placement``, ``use_nonlocal``, ``share_source_skip``) and
shallower DRLNs
(``cascade_sizes``). Their configuration is read here from the keys and shapes alone, and accepted only if a network
built with it has exactly the same keys and shapes, so no other arch's weights are ever taken for them.
"""

import re

from san_plugin.archs.drln_arch import DRLN
from san_plugin.archs.san_arch import SAN
from san_plugin.convert.common import count_indices, expected_state, upscale_from_upsampler

WHAT = 'weights in our key names'
# Keys every SAN variant has; the first conv of each kind of channel attention (its output width is
# num_feat // squeeze_factor), and where the attention module sits in the first group for each placement.
SAN_KEYS = ('sub_mean.weight', 'conv_first.weight', 'body.0.blocks.0.conv1.weight', 'body.0.conv.weight',
            'conv_last.weight', 'add_mean.weight')  # fmt: skip
SAN_ATTENTION_CONVS = {
    'second_order': 'soca.attention.0.weight',
    'first_order': 'channel_attention.attention.1.weight',
    'laplacian': 'laplacian_attention.branches.0.weight',
}
SAN_ATTENTION_PLACES = {'group': 'body.0.', 'block': 'body.0.blocks.0.'}
DRLN_KEYS = ('sub_mean.weight', 'conv_first.weight', 'body.0.blocks.0.res_units.0.conv1.weight',
             'body.0.fusions.0.weight', 'conv_last.weight', 'add_mean.weight')  # fmt: skip


def upscale_of_our_keys(state_dict, num_feat):
    """The scale of the upsampler ``upsample.<i>.weight`` (our key names, all three archs) for ``num_feat``."""
    index = re.compile(r'^upsample\.(\d+)\.weight$')
    convs = sorted((int(m.group(1)), m.string) for m in map(index.match, state_dict) if m)
    return upscale_from_upsampler({key: state_dict[key] for _, key in convs}, num_feat, WHAT)


def _san_config(state_dict):
    num_feat, num_in_ch = state_dict['conv_first.weight'].shape[:2]
    attention, placement, attention_key = next(
        (
            (kind, place, prefix + conv)
            for kind, conv in SAN_ATTENTION_CONVS.items()
            for place, prefix in SAN_ATTENTION_PLACES.items()
            if prefix + conv in state_dict
        ),
        ('none', None, None),
    )
    config = {
        'num_in_ch': int(num_in_ch),
        'num_out_ch': int(state_dict['conv_last.weight'].shape[0]),
        'num_feat': int(num_feat),
        'num_group': count_indices(state_dict, r'^body\.(\d+)\.'),
        'num_block': count_indices(state_dict, r'^body\.0\.blocks\.(\d+)\.'),
        'upscale': upscale_of_our_keys(state_dict, num_feat),
        'channel_attention': attention,
        'use_nonlocal': 'non_local.theta.weight' in state_dict,
        'share_source_skip': 'gamma' in state_dict,
    }
    if attention != 'none':
        config['attention_placement'] = placement
        config['squeeze_factor'] = int(num_feat // state_dict[attention_key].shape[0])
    if config['use_nonlocal']:
        config['nonlocal_reduction'] = int(num_feat // state_dict['non_local.theta.weight'].shape[0])
    return config


def _drln_config(state_dict):
    num_feat, num_in_ch = state_dict['conv_first.weight'].shape[:2]
    num_cascades = count_indices(state_dict, r'^body\.(\d+)\.')
    return {
        'num_in_ch': int(num_in_ch),
        'num_out_ch': int(state_dict['conv_last.weight'].shape[0]),
        'num_feat': int(num_feat),
        'squeeze_factor': int(num_feat // state_dict['body.0.blocks.0.attention.branches.0.weight'].shape[0]),
        'upscale': upscale_of_our_keys(state_dict, num_feat),
        'cascade_sizes': [count_indices(state_dict, rf'^body\.{c}\.blocks\.(\d+)\.') for c in range(num_cascades)],
    }


NETWORKS = {'SAN': (SAN, SAN_KEYS, _san_config), 'DRLN': (DRLN, DRLN_KEYS, _drln_config)}


def config_from_our_keys(state_dict):
    """Recognise a SAN (any ablation variant) or DRLN (any depth) state dict in our key names.

    Args:
        state_dict (dict[str, Tensor]): Weights with our key names.

    Returns:
        tuple[str | None, dict | None]: Arch type and the constructor arguments that the tensors show, or
        ``(None, None)`` if the weights are not exactly those of such a network.
    """
    for arch, (network_class, keys, read_config) in NETWORKS.items():
        if not all(key in state_dict for key in keys):
            continue
        try:
            config = read_config(state_dict)
            expected = expected_state(network_class, config)
        except (KeyError, ValueError, ZeroDivisionError):
            continue
        if {k: v.shape for k, v in expected.items()} == {k: v.shape for k, v in state_dict.items()}:
            return arch, config
    return None, None
