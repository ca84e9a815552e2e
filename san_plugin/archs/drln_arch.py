import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn
from torch.nn import functional as F

from san_plugin.archs.common import SUPPORTED_SCALES, mean_shift

# Blocks per cascade of the authors' DRLN (20 blocks in all).
CASCADE_SIZES = (3, 3, 3, 3, 4, 4)


def cascade_input_blocks(cascade_sizes):
    """How many leading blocks of each cascade read the cascade input.

    One everywhere but in the second cascade, whose second block reads the cascade input too instead of the previous
    fused features: a quirk of the authors' code that their released weights depend on, kept at every depth.

    Args:
        cascade_sizes (Sequence[int]): Blocks in each cascade.

    Returns:
        tuple[int, ...]: One count per cascade.
    """
    return tuple(min(2, size) if index == 1 else 1 for index, size in enumerate(cascade_sizes))


CASCADE_INPUT_BLOCKS = cascade_input_blocks(CASCADE_SIZES)

# Dilations of the Laplacian attention's three branches.
ATTENTION_DILATIONS = (3, 5, 7)


class ResidualUnit(nn.Module):
    """Conv-ReLU-conv, plus the input, then ReLU.

    Args:
        num_feat (int): Channel number of the input and output.
    """

    def __init__(self, num_feat):
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)

    def forward(self, x):
        return F.relu(self.conv2(F.relu(self.conv1(x))) + x)


class LaplacianAttention(nn.Module):
    """Channel attention from the pooled features through three dilated 3x3 convs (ReLU), concatenated, then a 3x3
    conv and a sigmoid.

    The convs run on the 1x1 pooled map as the authors' code runs them, so only their centre taps see data; the
    other taps get zero gradients.

    Args:
        num_feat (int): Channel number of the features.
        squeeze_factor (int): Channel reduction of each dilated branch.
    """

    def __init__(self, num_feat, squeeze_factor):
        super().__init__()
        width = num_feat // squeeze_factor
        self.branches = nn.ModuleList(nn.Conv2d(num_feat, width, 3, 1, d, d) for d in ATTENTION_DILATIONS)
        self.conv_out = nn.Conv2d(width * len(ATTENTION_DILATIONS), num_feat, 3, 1, 1)

    def forward(self, x):
        pooled = F.adaptive_avg_pool2d(x, 1)
        pyramid = torch.cat([F.relu(branch(pooled)) for branch in self.branches], dim=1)
        return x * torch.sigmoid(self.conv_out(pyramid))


class DRLM(nn.Module):
    """Dense residual Laplacian module: three densely connected residual units (C, 2C and 4C wide), a 1x1
    compression 8C -> C with ReLU, and Laplacian attention.

    Args:
        num_feat (int): Channel number of the input and output.
        squeeze_factor (int): Channel reduction of the attention.
    """

    def __init__(self, num_feat, squeeze_factor):
        super().__init__()
        self.res_units = nn.ModuleList(ResidualUnit(num_feat * 2**i) for i in range(3))
        self.compress = nn.Conv2d(num_feat * 8, num_feat, 1)
        self.attention = LaplacianAttention(num_feat, squeeze_factor)

    def forward(self, x):
        dense = x
        for unit in self.res_units:
            dense = torch.cat([dense, unit(dense)], dim=1)
        return self.attention(F.relu(self.compress(dense)))


class Cascade(nn.Module):
    """Cascading blocks: each DRLM's output is appended to a running concatenation, which a 3x3 conv with ReLU fuses
    back to C channels for the next DRLM; the last fused features plus the cascade input are the output.

    Args:
        num_feat (int): Channel number of the features.
        num_block (int): DRLMs in the cascade.
        squeeze_factor (int): Channel reduction of the attention.
        num_input_blocks (int): How many leading DRLMs read the cascade input rather than the previous fused
            features (1 except for the authors' second cascade). The fusions before the last of them would feed
            nothing, so they are not built (the authors' ``c4``, which their forward computes and never reads).
    """

    def __init__(self, num_feat, num_block, squeeze_factor, num_input_blocks=1):
        super().__init__()
        self.num_input_blocks = num_input_blocks
        self.blocks = nn.ModuleList(DRLM(num_feat, squeeze_factor) for _ in range(num_block))
        self.fusions = nn.ModuleList(
            nn.Conv2d((i + 2) * num_feat, num_feat, 3, 1, 1) for i in range(num_input_blocks - 1, num_block)
        )

    def forward(self, x, dense):
        """Run the cascade.

        Args:
            x (Tensor): Cascade input.
            dense (Tensor): First member of the concatenation: the previous cascade's last fused features (``x``
                itself for the first cascade).

        Returns:
            tuple[Tensor, Tensor]: The output (last fused features + ``x``) and the last fused features.
        """
        unfused = self.num_input_blocks - 1
        fused = x
        for i, block in enumerate(self.blocks):
            dense = torch.cat([dense, block(x if i < self.num_input_blocks else fused)], dim=1)
            if i >= unfused:
                fused = F.relu(self.fusions[i - unfused](dense))
        return fused + x, fused


class UpsampleReLU(nn.Sequential):
    """EDSR-style upsampler with a ReLU after each conv: (conv C -> 4C, ReLU, PixelShuffle(2)) per factor 2, or
    (conv C -> 9C, ReLU, PixelShuffle(3)).

    Args:
        scale (int): 2, 3, 4 or 8.
        num_feat (int): Channel number of the features.
        relu (bool): The ReLU after each conv (the authors'); without it, an identity keeps the layer indices and so
            the state-dict keys. Default: True.
    """

    def __init__(self, scale, num_feat, relu=True):
        factors = [3] if scale == 3 else [2] * (scale.bit_length() - 1)
        layers = []
        for factor in factors:
            layers += [
                nn.Conv2d(num_feat, factor**2 * num_feat, 3, 1, 1),
                nn.ReLU(inplace=True) if relu else nn.Identity(),
                nn.PixelShuffle(factor),
            ]
        super().__init__(*layers)


@ARCH_REGISTRY.register()
class DRLN(nn.Module):
    """DRLN: Densely Residual Laplacian Network for image super-resolution.

    Paper: Densely Residual Laplacian Super-Resolution (Anwar and Barnes, TPAMI 2020). Computes what the authors'
    released code computes, so their checkpoints load through ``san_plugin.convert.original_drln``: 20 dense residual
    Laplacian modules in six cascades of 3, 3, 3, 3, 4 and 4 (``cascade_sizes`` makes it shallower for studies at
    equal size; the second cascade keeps the authors' wiring at any depth, see ``cascade_input_blocks``), each cascade
    with a residual skip, a long skip over all cascades, and an upsampler whose convs are followed by ReLU, between
    trainable mean-shift layers.

    Args:
        num_in_ch (int): Channel number of inputs. Default: 3.
        num_out_ch (int): Channel number of outputs. Default: 3.
        num_feat (int): Channel number of intermediate features. Default: 64.
        squeeze_factor (int): Channel reduction of each Laplacian attention branch. Default: 16.
        upscale (int): Upsampling factor: 2, 3, 4 or 8. Default: 4.
        img_range (float): Image range the network works in. Default: 255.
        rgb_mean (Sequence[float]): Image mean in RGB order. As in the authors' code, it is subtracted in [0, 1]
            units from the input scaled to [0, img_range] (and added back at the end). Default: DIV2K's.
        cascade_sizes (Sequence[int]): Dense residual Laplacian modules in each cascade. Only the authors' depth has
            an authors' checkpoint format. Default: (3, 3, 3, 3, 4, 4), the authors'.
        upsample_relu (bool): The ReLU after each upsampler conv. Small networks trained briefly learn faster
            without it; the weights do not show it, so the authors' format and spandrel assume the authors' True.
            Default: True, the authors'.
    """

    def __init__(
        self,
        num_in_ch=3,
        num_out_ch=3,
        num_feat=64,
        squeeze_factor=16,
        upscale=4,
        img_range=255.0,
        rgb_mean=(0.4488, 0.4371, 0.4040),
        cascade_sizes=CASCADE_SIZES,
        upsample_relu=True,
    ):
        super().__init__()
        if upscale not in SUPPORTED_SCALES:
            raise ValueError(f'upscale must be one of {SUPPORTED_SCALES}, got {upscale}')
        if (
            not isinstance(cascade_sizes, (list, tuple))
            or not cascade_sizes
            or not all(isinstance(size, int) and not isinstance(size, bool) and size >= 1 for size in cascade_sizes)
        ):
            raise ValueError(f'cascade_sizes must be a non-empty list of block counts >= 1, got {cascade_sizes!r}')
        if not isinstance(upsample_relu, bool):
            raise ValueError(f'upsample_relu must be true or false, got {upsample_relu!r}')
        self.img_range = img_range
        # img_range 1: the authors' mean is in [0, 1] units although the features are in [0, img_range].
        self.sub_mean = mean_shift(num_in_ch, rgb_mean, 1.0, -1)
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.ModuleList(
            Cascade(num_feat, size, squeeze_factor, num_input_blocks)
            for size, num_input_blocks in zip(cascade_sizes, cascade_input_blocks(cascade_sizes))
        )
        self.upsample = UpsampleReLU(upscale, num_feat, upsample_relu)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.add_mean = mean_shift(num_out_ch, rgb_mean, 1.0, 1)

    def forward(self, x):
        feat = self.conv_first(self.sub_mean(x * self.img_range))
        body = dense = feat
        for cascade in self.body:
            body, dense = cascade(body, dense)
        return self.add_mean(self.conv_last(self.upsample(body + feat))) / self.img_range
