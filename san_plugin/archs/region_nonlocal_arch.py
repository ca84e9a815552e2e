import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn


def region_bounds(size, grid):
    """Start/end indices of ``grid`` regions along one side, split at ``i * size // grid`` (authors': ``size // 2``).

    Args:
        size (int): Length of the side.
        grid (int): Number of regions along it.

    Returns:
        list[tuple[int, int]]: ``grid`` (start, end) pairs; a region is empty when ``size < grid``.
    """
    cuts = [i * size // grid for i in range(grid + 1)]
    return list(zip(cuts[:-1], cuts[1:]))


def pool_keys(x):
    """2x2 max-pool of keys/values, as the authors' block; a side of 1 pixel is kept instead of pooled to nothing."""
    return F.max_pool2d(x, kernel_size=(min(2, x.shape[-2]), min(2, x.shape[-1])))


def embedded_gaussian_attention(query, key, value):
    """Non-local attention inside each region of a batch of regions.

    Args:
        query (Tensor): Embedded features of shape (n, d, h, w).
        key (Tensor): Embedded features of shape (n, d, h, w), pooled here.
        value (Tensor): Embedded features of shape (n, d, h, w), pooled here.

    Returns:
        Tensor: Attended values, shape (n, d, h, w).
    """
    n, d, h, w = query.shape
    # (n, 1, positions, d), contiguous: fused kernels need a unit stride on the last dimension, else PyTorch falls
    # back to the math path that materialises the (hw x hw/4) map.
    q, k, v = (
        t.flatten(2).transpose(1, 2).unsqueeze(1).contiguous() for t in (query, pool_keys(key), pool_keys(value))
    )
    if d == 1:
        # Inductor (PyTorch 2.14, dynamic shapes, CPU) computes a wrong attention for a single channel once a region
        # pools to one key. A zero channel changes neither q k^T nor the attended values, and only ever costs
        # networks with fewer than `reduction` * 2 features.
        q, k, v = (F.pad(t, (0, 1)) for t in (q, k, v))
    # softmax(q k^T) v without the 1/sqrt(d) scale, as the authors' block.
    out = F.scaled_dot_product_attention(q, k, v, scale=1.0)[..., :d]
    return out.squeeze(1).transpose(1, 2).reshape(n, d, h, w)


def regions_to_batch(x, grid):
    """(b, c, h, w) with h and w divisible by ``grid`` -> (b * grid^2, c, h / grid, w / grid), row-major regions."""
    b, c, h, w = x.shape
    x = x.view(b, c, grid, h // grid, grid, w // grid)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(b * grid * grid, c, h // grid, w // grid)


def batch_to_regions(x, grid):
    """Inverse of :func:`regions_to_batch`."""
    n, c, rh, rw = x.shape
    b = n // (grid * grid)
    x = x.view(b, grid, grid, c, rh, rw)
    return x.permute(0, 3, 1, 4, 2, 5).reshape(b, c, grid * rh, grid * rw)


@ARCH_REGISTRY.register()
class RegionNonLocal(nn.Module):
    """Region-level non-local module (RL-NL) of SAN.

    The feature map is split into a ``grid`` x ``grid`` grid of regions; each region goes through the same
    embedded-Gaussian non-local block (keys and values 2x2 max-pooled, no 1/sqrt(d) scale) and the block's output
    projection is added to the input. Equal regions are attended as one batch through fused attention (region by
    region in a compiled or exported graph, which must hold for every input size).

    Args:
        num_feat (int): Channel number of features. Default: 64.
        reduction (int): Channel reduction of the embeddings (``num_feat // reduction`` channels). Default: 8.
        grid (int): Regions per side. Default: 2.
    """

    def __init__(self, num_feat=64, reduction=8, grid=2):
        super().__init__()
        inter_feat = num_feat // reduction
        if inter_feat < 1:
            raise ValueError(f'reduction ({reduction}) must not exceed num_feat ({num_feat})')
        if grid < 1:
            raise ValueError(f'grid must be >= 1, got {grid}')
        self.grid = grid
        self.theta = nn.Conv2d(num_feat, inter_feat, 1)
        self.phi = nn.Conv2d(num_feat, inter_feat, 1)
        self.g = nn.Conv2d(num_feat, inter_feat, 1)
        self.conv_out = nn.Conv2d(inter_feat, num_feat, 1)
        # The output projection starts at zero, so the module starts as the identity (authors' initialisation).
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x):
        h, w = x.shape[-2:]
        # 1x1 embeddings are per pixel, so they are computed once on the whole map; pooling stays per region.
        query, key, value = self.theta(x), self.phi(x), self.g(x)
        # A compiled or exported graph must serve every input size, so it takes the per-region path, whose bounds
        # follow the symbolic size; the batched path is only valid for sizes divisible by the grid, and choosing it
        # would guard the graph on the parity of the size (a recompilation, or a wrong ONNX graph).
        tracing = torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export()
        if not tracing and h % self.grid == 0 and w % self.grid == 0:
            attended = batch_to_regions(
                embedded_gaussian_attention(*(regions_to_batch(t, self.grid) for t in (query, key, value))), self.grid
            )
        else:
            rows = []
            for top, bottom in region_bounds(h, self.grid):
                row = []
                for left, right in region_bounds(w, self.grid):
                    region = (..., slice(top, bottom), slice(left, right))
                    if bottom > top and right > left:
                        row.append(embedded_gaussian_attention(query[region], key[region], value[region]))
                    else:
                        row.append(query[region])
                rows.append(torch.cat(row, dim=3))
            attended = torch.cat(rows, dim=2)
        return x + self.conv_out(attended)
