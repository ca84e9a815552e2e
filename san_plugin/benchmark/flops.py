"""FLOPs of a network with MMEngine's ``FlopAnalyzer``, attention products included.

MMEngine counts one multiply-accumulate as one FLOP (the convention of fvcore and of most SR papers). It counts
convolutions, ``mm``/``bmm``/``matmul``/``einsum`` (so SOCA's covariance and Newton-Schulz products), but not fused
attention; :data:`EXTRA_OP_HANDLES` adds it.
"""

import math

import torch
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import get_shape


def sdpa_flop_jit(inputs, outputs):
    """Multiply-accumulates of ``aten::scaled_dot_product_attention``: ``q k^T`` plus ``softmax(.) v``.

    Args:
        inputs (list): Traced inputs; the first three are query (..., L, E), key (..., S, E) and value (..., S, Ev).
        outputs (list): Traced outputs (unused).

    Returns:
        int: ``batch * L * S * (E + Ev)``.
    """
    query, key, value = (get_shape(v) for v in inputs[:3])
    batch = math.prod(query[:-2])
    length, dim = query[-2:]
    return batch * length * key[-2] * (dim + value[-1])


EXTRA_OP_HANDLES = {'aten::scaled_dot_product_attention': sdpa_flop_jit}


def count_flops(net, input_size, device='cpu'):
    """Count the FLOPs (multiply-accumulates) of one forward pass on a zero-free random input.

    Args:
        net (nn.Module): The network, in eval mode.
        input_size (tuple[int, int, int]): (channels, height, width) of one input image.
        device (str | torch.device): Where to run the traced forward. Default: 'cpu'.

    Returns:
        tuple[int, dict]: The total and the counts by operator.
    """
    inputs = torch.rand(1, *input_size, device=device)
    analyzer = FlopAnalyzer(net, (inputs,)).set_op_handle(**EXTRA_OP_HANDLES)
    analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings('none')
    with torch.no_grad():
        total = analyzer.total()
    return int(total), {op: int(count) for op, count in analyzer.by_operator().items()}


def count_params(net):
    """Number of parameters of ``net``."""
    return sum(p.numel() for p in net.parameters())
