"""The authors' DRLN checkpoint format (saeed-anwar/DRLN ``drln.py``): detection, configuration inference, conversion.

The authors number their 20 blocks ``b1``..``b20`` and the cascades' fusion convs ``c1``..``c20`` across the whole
network; ours sit in cascades (``body.<cascade>.blocks.<i>``, ``body.<cascade>.fusions.<i>``). One table of module
paths, in the order of the authors' state dict and built from the arch's cascade constants, renames in both
directions. The authors' ``c4`` is computed by their forward but never read (block 5 takes the cascade input), so
our network has no counterpart: it is dropped on the way in and written as zeros on the way out.
"""

import re

from san_plugin.archs.drln_arch import CASCADE_INPUT_BLOCKS, CASCADE_SIZES, DRLN
from san_plugin.convert.common import (
    check_against_network,
    count_indices,
    expected_state,
    require_key,
    upscale_from_upsampler,
)
from san_plugin.convert.key_rules import KeyRules

WHAT = "authors' DRLN checkpoint"

# Inside one block: the authors' module path -> ours.
BLOCK_MODULES = [
    ('r1.body.0', 'res_units.0.conv1'),
    ('r1.body.2', 'res_units.0.conv2'),
    ('r2.body.0', 'res_units.1.conv1'),
    ('r2.body.2', 'res_units.1.conv2'),
    ('r3.body.0', 'res_units.2.conv1'),
    ('r3.body.2', 'res_units.2.conv2'),
    ('g.body.0', 'compress'),
    ('ca.c1.body.0', 'attention.branches.0'),
    ('ca.c2.body.0', 'attention.branches.1'),
    ('ca.c3.body.0', 'attention.branches.2'),
    ('ca.c4.body.0', 'attention.conv_out'),
]

# Sequential indices of the authors' upsampler convs (conv, ReLU, PixelShuffle per stage; at most three stages).
UPSAMPLER_INDICES = (0, 3, 6)


def _module_table():
    """Return ``(authors' module path, ours or None when their forward never reads it, input width in features)``
    for every conv of the authors' DRLN, in the order of their state dict."""
    table = [
        ('sub_mean.shifter', 'sub_mean', None),
        ('add_mean.shifter', 'add_mean', None),
        ('head', 'conv_first', None),
    ]
    places = [(cascade, index) for cascade, size in enumerate(CASCADE_SIZES) for index in range(size)]
    for number, (cascade, index) in enumerate(places, 1):
        table += [(f'b{number}.{orig}', f'body.{cascade}.blocks.{index}.{ours}', None) for orig, ours in BLOCK_MODULES]
    for number, (cascade, index) in enumerate(places, 1):
        fusion = index - (CASCADE_INPUT_BLOCKS[cascade] - 1)
        ours = f'body.{cascade}.fusions.{fusion}' if fusion >= 0 else None
        table.append((f'c{number}.body.0', ours, index + 2))
    table += [(f'upsample.up.body.{k}', f'upsample.{k}', None) for k in UPSAMPLER_INDICES]
    table.append(('tail', 'conv_last', None))
    return table


MODULE_TABLE = _module_table()
RULES = KeyRules(
    pairs=[(f'{orig}.{{p}}', f'{ours}.{{p}}') for orig, ours, _ in MODULE_TABLE if ours is not None],
    unused=[f'{orig}.{{p}}' for orig, ours, _ in MODULE_TABLE if ours is None],
)
# Never-read fusion convs: module path -> input width in features (their output width is one feature map).
UNUSED_FUSIONS = {orig: width for orig, ours, width in MODULE_TABLE if ours is None}
MODULE_RANK = {orig: rank for rank, (orig, _, _) in enumerate(MODULE_TABLE)}

UPSAMPLER_WEIGHT = re.compile(r'^upsample\.up\.body\.\d+\.weight$')
DETECTION_KEYS = ('head.weight', 'b1.r1.body.0.weight', 'b1.ca.c4.body.0.weight', 'c20.body.0.weight', 'tail.weight')


def is_original_drln(state_dict):
    """Whether ``state_dict`` is in the authors' DRLN format."""
    return all(key in state_dict for key in DETECTION_KEYS)


def drln_config_from_original(state_dict):
    """Infer our ``DRLN`` constructor arguments from an authors' DRLN state dict.

    Args:
        state_dict (dict[str, Tensor]): Authors'-format weights.

    Returns:
        dict: ``num_in_ch``, ``num_out_ch``, ``num_feat``, ``squeeze_factor``, ``upscale``.
    """
    num_feat, num_in_ch = require_key(state_dict, 'head.weight', WHAT).shape[:2]
    upsampler = {key: tensor for key, tensor in state_dict.items() if UPSAMPLER_WEIGHT.match(key)}
    return {
        'num_in_ch': int(num_in_ch),
        'num_out_ch': int(require_key(state_dict, 'tail.weight', WHAT).shape[0]),
        'num_feat': int(num_feat),
        'squeeze_factor': int(num_feat // require_key(state_dict, 'b1.ca.c1.body.0.weight', WHAT).shape[0]),
        'upscale': upscale_from_upsampler(upsampler, num_feat, WHAT),
    }


def drln_state_from_original(state_dict):
    """Convert an authors' DRLN state dict to ours, checked against a network of the inferred configuration.

    Args:
        state_dict (dict[str, Tensor]): Authors'-format weights.

    Returns:
        tuple[dict, list[str]]: Our state dict (the same tensors, in the original's order) and the dropped keys of
        the never-read fusion conv ``c4``.
    """
    converted, dropped = RULES.rename_to_ours(state_dict, WHAT)
    check_against_network(
        converted, expected_state(DRLN, drln_config_from_original(state_dict)), RULES.to_original, WHAT
    )
    return converted, dropped


def drln_state_to_original(state_dict):
    """Write our DRLN state dict in the authors' format, in the order of their state dict, so their code loads it.

    The inverse of ``drln_state_from_original``, except that the never-read ``c4`` conv, which ours lacks, is written
    as zeros of its shape. Only the authors' depth has an authors' format (their code builds its 20 blocks by name).

    Args:
        state_dict (dict[str, Tensor]): Our weights.

    Returns:
        dict[str, Tensor]: Authors'-format weights (the same tensors).
    """
    num_cascade = count_indices(state_dict, r'^body\.(\d+)\.')
    sizes = tuple(count_indices(state_dict, rf'^body\.{c}\.blocks\.(\d+)\.') for c in range(num_cascade))
    if sizes != CASCADE_SIZES:
        raise ValueError(
            f"DRLN state dict: cascade_sizes {list(sizes)}; the authors' format exists only for their depth, "
            f'{list(CASCADE_SIZES)}'
        )
    original = {}
    for key, tensor in state_dict.items():
        original_key = RULES.to_original(key)
        if original_key is None:
            raise KeyError(f"DRLN state dict: key {key!r} has no counterpart in the authors' format")
        original[original_key] = tensor
    check_against_network(state_dict, expected_state(DRLN, drln_config_from_original(original)), str, 'DRLN state dict')
    head = original['head.weight']
    num_feat = head.shape[0]
    for path, width in UNUSED_FUSIONS.items():
        original[f'{path}.weight'] = head.new_zeros(num_feat, width * num_feat, 3, 3)
        original[f'{path}.bias'] = head.new_zeros(num_feat)
    return dict(sorted(original.items(), key=lambda item: _authors_rank(item[0])))


def _authors_rank(key):
    module, param = key.rsplit('.', 1)
    return MODULE_RANK[module], param != 'weight'
