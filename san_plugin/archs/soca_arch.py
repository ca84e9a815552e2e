import torch
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn

# A covariance trace below this is treated as this: a constant feature map then gives a zero square root instead of
# the 0 / 0 = NaN of the authors' code. Real feature maps have traces many orders of magnitude larger.
MIN_TRACE = 1e-12


def centre_crop_long_sides(x, crop_size):
    """Centre-crop every spatial side of ``x`` that is longer than ``crop_size`` to ``crop_size``.

    Args:
        x (Tensor): Feature map of shape (b, c, h, w).
        crop_size (int): Longest side kept.

    Returns:
        Tensor: A view of ``x``.
    """
    h, w = x.shape[-2:]
    if torch.jit.is_tracing():
        # TorchScript tracing (FLOP counters) gives sizes as tensors, which sym_min refuses; its graph is one size's.
        kept_h, kept_w = min(h, crop_size), min(w, crop_size)
    else:
        # sym_min, not a branch: an exported graph keeps the crop for every input size, not for the traced one.
        kept_h, kept_w = torch.sym_min(h, crop_size), torch.sym_min(w, crop_size)
    top, left = (h - kept_h) // 2, (w - kept_w) // 2
    return x[..., top : top + kept_h, left : left + kept_w]


def covariance(x):
    """Biased covariance of the channels over all positions, without the (hw x hw) centring matrix.

    ``Sigma = (X - mean) (X - mean)^T / M`` with ``M = h * w``: O(c^2 M) time and O(c M) memory, where the authors'
    ``X I_bar X^T`` builds an M x M matrix.

    Args:
        x (Tensor): Feature map of shape (b, c, h, w).

    Returns:
        Tensor: Covariance matrices of shape (b, c, c).
    """
    feat = x.flatten(2)
    centred = feat - feat.mean(dim=2, keepdim=True)
    return torch.bmm(centred, centred.transpose(1, 2)) / feat.shape[2]


def sqrtm_newton_schulz(mat, num_iter):
    """Square root of symmetric positive semi-definite matrices by the coupled Newton-Schulz iteration.

    The matrices are pre-normalised by their trace, iterated ``num_iter`` times (``Y <- Y T``, ``Z <- T Z`` with
    ``T = (3I - Z Y) / 2``, the last step skipping the unused ``Z`` update) and post-compensated by the square root of
    the trace. Autograd through the iteration gives the gradient of the authors' hand-written backward.

    Args:
        mat (Tensor): Matrices of shape (b, c, c).
        num_iter (int): Number of iterations (>= 1).

    Returns:
        Tensor: Approximate square roots, shape (b, c, c).
    """
    if num_iter < 1:
        raise ValueError(f'num_iter must be >= 1, got {num_iter}')
    trace = mat.diagonal(dim1=1, dim2=2).sum(dim=1).clamp_min(MIN_TRACE).view(-1, 1, 1)
    identity = torch.eye(mat.shape[1], dtype=mat.dtype, device=mat.device).expand_as(mat)
    y = mat / trace
    z = identity
    for step in range(num_iter):
        t = 0.5 * (3.0 * identity - torch.bmm(z, y))
        if step < num_iter - 1:
            z = torch.bmm(t, z)
        y = torch.bmm(y, t)
    return y * trace.sqrt()


@ARCH_REGISTRY.register()
class SOCA(nn.Module):
    """Second-order channel attention of SAN.

    Channel weights come from the square-root-normalised covariance of the channels (computed in float32, also under
    autocast), averaged per channel and passed through a squeeze-excitation MLP.

    Args:
        num_feat (int): Channel number of features. Default: 64.
        squeeze_factor (int): Channel reduction of the MLP. Default: 16.
        stat_crop (int): Sides longer than this are centre-cropped to it for the statistics only, as in the authors'
            code. Default: 1000.
        num_iter (int): Newton-Schulz iterations of the matrix square root. Default: 5.
    """

    def __init__(self, num_feat=64, squeeze_factor=16, stat_crop=1000, num_iter=5):
        super().__init__()
        if num_feat // squeeze_factor < 1:
            raise ValueError(f'squeeze_factor ({squeeze_factor}) must not exceed num_feat ({num_feat})')
        self.stat_crop = stat_crop
        self.num_iter = num_iter
        self.attention = nn.Sequential(
            nn.Conv2d(num_feat, num_feat // squeeze_factor, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(num_feat // squeeze_factor, num_feat, 1),
            nn.Sigmoid(),
        )

    def channel_statistics(self, x):
        """Per-channel mean of the covariance square root, in float32; shape (b, c, 1, 1)."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            feat = centre_crop_long_sides(x, self.stat_crop).float()
            root = sqrtm_newton_schulz(covariance(feat), self.num_iter)
            return root.mean(dim=1)[..., None, None]

    def forward(self, x):
        stats = self.channel_statistics(x)
        weight = self.attention(stats.to(self.attention[0].weight.dtype))
        return x * weight.to(x.dtype)
