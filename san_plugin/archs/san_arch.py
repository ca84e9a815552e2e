import torch
from basicsr.archs.arch_util import ResidualBlockNoBN, Upsample
from basicsr.archs.rcan_arch import ChannelAttention
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from san_plugin.archs.region_nonlocal_arch import RegionNonLocal
from san_plugin.archs.soca_arch import SOCA

SUPPORTED_SCALES = (2, 3, 4, 8)

# Channel attention of the groups -> name of its module in each group (None: no attention). Second order is SAN's
# SOCA; first order is RCAN's (global average pooling and the same bottleneck), under its own name so that its weights
# are never mistaken for SOCA's.
CHANNEL_ATTENTIONS = {'second_order': 'soca', 'first_order': 'channel_attention', 'none': None}


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


class LSRAG(nn.Module):
    """Local-source residual attention group: residual blocks, channel attention, a conv, a skip.

    Args:
        num_feat (int): Channel number of intermediate features.
        num_block (int): Residual blocks in the group.
        squeeze_factor (int): Channel reduction of the channel attention.
        soca_crop (int): SOCA statistics crop size.
        soca_iter (int): SOCA Newton-Schulz iterations.
        channel_attention (str): A key of ``CHANNEL_ATTENTIONS``. Default: 'second_order'.
    """

    def __init__(self, num_feat, num_block, squeeze_factor, soca_crop, soca_iter, channel_attention='second_order'):
        super().__init__()
        self.blocks = nn.Sequential(*(ResidualBlockNoBN(num_feat, pytorch_init=True) for _ in range(num_block)))
        self.attention_name = CHANNEL_ATTENTIONS[channel_attention]
        if channel_attention == 'second_order':
            self.soca = SOCA(num_feat, squeeze_factor, stat_crop=soca_crop, num_iter=soca_iter)
        elif channel_attention == 'first_order':
            self.channel_attention = ChannelAttention(num_feat, squeeze_factor)
        self.conv = nn.Conv2d(num_feat, num_feat, 3, 1, 1)

    def forward(self, x):
        feat = self.blocks(x)
        if self.attention_name is not None:
            feat = getattr(self, self.attention_name)(feat)
        return self.conv(feat) + x


@ARCH_REGISTRY.register()
class SAN(nn.Module):
    """SAN: Second-order Attention Network for single image super-resolution.

    Paper: Second-order Attention Network for Single Image Super-Resolution (Dai et al., CVPR 2019). Computes what the
    authors' released code computes (see ``shared/REFERENCE.md``): one region non-local module applied after the first
    conv and again after the groups, local-source residual attention groups with a shared-source skip
    (``x_{i+1} = LSRAG_i(x_i) + gamma * x_0``), a long skip and an EDSR upsampler, between trainable mean-shift
    layers; with linear memory in the image size.

    Args:
        num_in_ch (int): Channel number of inputs. Default: 3.
        num_out_ch (int): Channel number of outputs. Default: 3.
        num_feat (int): Channel number of intermediate features. Default: 64.
        num_group (int): Number of LSRAG groups. Default: 20.
        num_block (int): Residual blocks in each group. Default: 10.
        squeeze_factor (int): Channel reduction of SOCA. Default: 16.
        upscale (int): Upsampling factor: 2, 3, 4 or 8. Default: 4.
        img_range (float): Image range the network works in. Default: 255.
        rgb_mean (Sequence[float]): Image mean in RGB order, in [0, 1] units. Default: DIV2K's.
        nonlocal_reduction (int): Channel reduction of the non-local embeddings. Default: 8.
        nonlocal_grid (int): Regions per side of the non-local module. Default: 2.
        soca_crop (int): SOCA statistics use the centred crop of this size of longer sides. Default: 1000.
        soca_iter (int): Newton-Schulz iterations of SOCA's matrix square root. Default: 5.
        channel_attention (str): Channel attention of the groups, for ablations: 'second_order' (SOCA),
            'first_order' (RCAN's: global average pooling and the same bottleneck) or 'none'. Default:
            'second_order'.
        use_nonlocal (bool): Apply the region non-local module (both places); False builds none. Default: True.
        share_source_skip (bool): Add ``gamma * x_0`` after each group; False builds no ``gamma``. Default: True.
    """

    def __init__(
        self,
        num_in_ch=3,
        num_out_ch=3,
        num_feat=64,
        num_group=20,
        num_block=10,
        squeeze_factor=16,
        upscale=4,
        img_range=255.0,
        rgb_mean=(0.4488, 0.4371, 0.4040),
        nonlocal_reduction=8,
        nonlocal_grid=2,
        soca_crop=1000,
        soca_iter=5,
        channel_attention='second_order',
        use_nonlocal=True,
        share_source_skip=True,
    ):
        super().__init__()
        if upscale not in SUPPORTED_SCALES:
            raise ValueError(f'upscale must be one of {SUPPORTED_SCALES}, got {upscale}')
        if channel_attention not in CHANNEL_ATTENTIONS:
            raise ValueError(f'channel_attention must be one of {list(CHANNEL_ATTENTIONS)}, got {channel_attention!r}')
        for name, value in (('use_nonlocal', use_nonlocal), ('share_source_skip', share_source_skip)):
            if not isinstance(value, bool):
                raise ValueError(f'{name} must be true or false, got {value!r}')
        if channel_attention != 'none' and num_feat // squeeze_factor < 1:
            raise ValueError(f'squeeze_factor ({squeeze_factor}) must not exceed num_feat ({num_feat})')
        self.img_range = img_range
        self.sub_mean = mean_shift(num_in_ch, rgb_mean, img_range, -1)
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.non_local = RegionNonLocal(num_feat, nonlocal_reduction, nonlocal_grid) if use_nonlocal else None
        self.body = nn.ModuleList(
            LSRAG(num_feat, num_block, squeeze_factor, soca_crop, soca_iter, channel_attention)
            for _ in range(num_group)
        )
        # Weight of the shared-source skip; starts at 0 as in the authors' code.
        self.gamma = nn.Parameter(torch.zeros(1)) if share_source_skip else None
        self.upsample = Upsample(upscale, num_feat)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.add_mean = mean_shift(num_out_ch, rgb_mean, img_range, 1)

    def forward(self, x):
        feat = self.conv_first(self.sub_mean(x * self.img_range))
        source = feat if self.non_local is None else self.non_local(feat)
        body = source
        for group in self.body:
            body = group(body)
            if self.gamma is not None:
                body = body + self.gamma * source
        if self.non_local is not None:
            body = self.non_local(body)
        body = body + feat
        return self.add_mean(self.conv_last(self.upsample(body))) / self.img_range
