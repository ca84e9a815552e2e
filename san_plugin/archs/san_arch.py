import torch
from basicsr.archs.arch_util import ResidualBlockNoBN, Upsample
from basicsr.archs.rcan_arch import ChannelAttention
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

from san_plugin.archs.common import SUPPORTED_SCALES, mean_shift
from san_plugin.archs.drln_arch import LaplacianAttention
from san_plugin.archs.region_nonlocal_arch import RegionNonLocal
from san_plugin.archs.soca_arch import SOCA

# Channel attention -> name of its module (None: no attention). Second order is SAN's SOCA; first order is RCAN's
# (global average pooling and the same bottleneck); laplacian is DRLN's (three dilated branches on the pooled
# features). Each has its own name, so that weights of one are never mistaken for another's.
CHANNEL_ATTENTIONS = {
    'second_order': 'soca',
    'first_order': 'channel_attention',
    'laplacian': 'laplacian_attention',
    'none': None,
}
# Where the channel attention sits: once at the end of each group (the authors' SAN), or on the residual branch of
# every residual block (RCAN's RCAB).
ATTENTION_PLACEMENTS = ('group', 'block')


def channel_attention_module(kind, num_feat, squeeze_factor, soca_crop, soca_iter):
    """A channel attention module of one of the kinds of ``CHANNEL_ATTENTIONS`` (not 'none').

    Args:
        kind (str): 'second_order', 'first_order' or 'laplacian'.
        num_feat (int): Channel number of the features.
        squeeze_factor (int): Channel reduction of its bottleneck.
        soca_crop (int): SOCA statistics crop size (second order only).
        soca_iter (int): SOCA Newton-Schulz iterations (second order only).

    Returns:
        nn.Module: The module; it maps features to features of the same shape.
    """
    if kind == 'second_order':
        return SOCA(num_feat, squeeze_factor, stat_crop=soca_crop, num_iter=soca_iter)
    if kind == 'first_order':
        return ChannelAttention(num_feat, squeeze_factor)
    return LaplacianAttention(num_feat, squeeze_factor)


class AttentionResidualBlock(ResidualBlockNoBN):
    """Residual block with channel attention on its residual branch: ``x + CA(conv2(relu(conv1(x))))`` (RCAN's RCAB).

    Args:
        num_feat (int): Channel number of the features.
        attention_name (str): Name of the attention module (a value of ``CHANNEL_ATTENTIONS``).
        attention (nn.Module): The attention module.
    """

    def __init__(self, num_feat, attention_name, attention):
        super().__init__(num_feat, pytorch_init=True)
        self.attention_name = attention_name
        self.add_module(attention_name, attention)

    def forward(self, x):
        return x + getattr(self, self.attention_name)(self.conv2(self.relu(self.conv1(x))))


class LSRAG(nn.Module):
    """Local-source residual attention group: residual blocks, channel attention, a conv, a skip.

    Args:
        num_feat (int): Channel number of intermediate features.
        num_block (int): Residual blocks in the group.
        squeeze_factor (int): Channel reduction of the channel attention.
        soca_crop (int): SOCA statistics crop size.
        soca_iter (int): SOCA Newton-Schulz iterations.
        channel_attention (str): A key of ``CHANNEL_ATTENTIONS``. Default: 'second_order'.
        attention_placement (str): 'group' (once, after the residual blocks) or 'block' (in every residual block,
            none after them). Default: 'group'.
    """

    def __init__(
        self,
        num_feat,
        num_block,
        squeeze_factor,
        soca_crop,
        soca_iter,
        channel_attention='second_order',
        attention_placement='group',
    ):
        super().__init__()
        name = CHANNEL_ATTENTIONS[channel_attention]
        in_blocks = name is not None and attention_placement == 'block'

        def attention():
            return channel_attention_module(channel_attention, num_feat, squeeze_factor, soca_crop, soca_iter)

        self.blocks = nn.Sequential(
            *(
                AttentionResidualBlock(num_feat, name, attention())
                if in_blocks
                else ResidualBlockNoBN(num_feat, pytorch_init=True)
                for _ in range(num_block)
            )
        )
        self.attention_name = None if in_blocks else name
        if self.attention_name is not None:
            self.add_module(name, attention())
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
        channel_attention (str): Channel attention, for ablations: 'second_order' (SOCA), 'first_order' (RCAN's:
            global average pooling and the same bottleneck), 'laplacian' (DRLN's Laplacian attention, with
            ``squeeze_factor`` as its branch reduction) or 'none'. Default: 'second_order'.
        use_nonlocal (bool): Apply the region non-local module (both places); False builds none. Default: True.
        share_source_skip (bool): Add ``gamma * x_0`` after each group; False builds no ``gamma``. Default: True.
        attention_placement (str): Where the channel attention sits: 'group' (once at the end of each LSRAG, the
            authors' SAN) or 'block' (on the residual branch of every residual block, as in RCAN's RCAB, and not at
            the end of the groups). Default: 'group'.
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
        attention_placement='group',
    ):
        super().__init__()
        if upscale not in SUPPORTED_SCALES:
            raise ValueError(f'upscale must be one of {SUPPORTED_SCALES}, got {upscale}')
        if channel_attention not in CHANNEL_ATTENTIONS:
            raise ValueError(f'channel_attention must be one of {list(CHANNEL_ATTENTIONS)}, got {channel_attention!r}')
        if attention_placement not in ATTENTION_PLACEMENTS:
            raise ValueError(
                f'attention_placement must be one of {list(ATTENTION_PLACEMENTS)}, got {attention_placement!r}'
            )
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
            LSRAG(num_feat, num_block, squeeze_factor, soca_crop, soca_iter, channel_attention, attention_placement)
            for _ in range(num_group)
        )
        # Weight of the shared-source skip; starts at 0 as in the authors' code.
        self.gamma = nn.Parameter(torch.zeros(1)) if share_source_skip else None
        self.upsample = Upsample(upscale, num_feat)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.add_mean = mean_shift(num_out_ch, rgb_mean, img_range, 1)

    @staticmethod
    def unused_arguments(config):
        """Constructor arguments that change nothing in the network ``config`` builds (e.g. ``nonlocal_reduction``
        without RL-NL), so that nobody is warned about their values.

        Args:
            config (dict): Constructor arguments (missing ones take the defaults).

        Returns:
            list[str]: The arguments without effect.
        """
        unused = []
        if not config.get('use_nonlocal', True):
            unused += ['nonlocal_reduction', 'nonlocal_grid']
        attention = config.get('channel_attention', 'second_order')
        if attention != 'second_order':
            unused += ['soca_crop', 'soca_iter']
        if attention == 'none':
            unused += ['squeeze_factor', 'attention_placement']
        return unused

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
