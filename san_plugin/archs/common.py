"""Pieces shared by the plugin's networks (not an arch: BasicSR registers ``*_arch.py`` modules only)."""

import torch
from torch import nn

SUPPORTED_SCALES = (2, 3, 4, 8)


def mean_shift(num_ch, rgb_mean, img_range, sign):
    """A trainable 1x1 conv initialised to add ``sign * img_range * rgb_mean`` (the authors' ``MeanShift``).

    The authors' training left these layers trainable, so released weights can hold values away from this start;
    keeping a full conv lets converted checkpoints reproduce them exactly.

    Args:
        num_ch (int): Channel number (``len(rgb_mean)``).
        rgb_mean (Sequence[float]): Mean per channel, in [0, 1] units.
        img_range (float): Image range the network works in.
        sign (int): -1 to subtract the mean, +1 to add it.

    Returns:
        nn.Conv2d: The layer.
    """
    if len(rgb_mean) != num_ch:
        raise ValueError(f'rgb_mean has {len(rgb_mean)} values but the network has {num_ch} image channels')
    conv = nn.Conv2d(num_ch, num_ch, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(num_ch).view(num_ch, num_ch, 1, 1))
        conv.bias.copy_(sign * img_range * torch.tensor(rgb_mean, dtype=torch.float32))
    return conv
