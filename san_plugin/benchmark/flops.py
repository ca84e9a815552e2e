"""FLOPs of a network with MMEngine's ``FlopAnalyzer``, attention products included.

MMEngine counts one multiply-accumulate as one FLOP (the convention of fvcore and of most SR papers). It counts
convolutions (without biases), ``mm``/``bmm``/``matmul``/``einsum`` (so SOCA's covariance and Newton-Schulz products)
and adaptive average pooling (one per input element), but not fused attention; :data:`EXTRA_OP_HANDLES` adds it.
Element-wise operations, means, max pooling and the softmax are not counted.
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


def _analyzer(net, input_size, device):
    inputs = torch.rand(1, *input_size, device=device)
    analyzer = FlopAnalyzer(net, (inputs,)).set_op_handle(**EXTRA_OP_HANDLES)
    return analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings('none')


def count_flops(net, input_size, device='cpu'):
    """Count the FLOPs (multiply-accumulates) of one forward pass on a zero-free random input.

    Args:
        net (nn.Module): The network, in eval mode.
        input_size (tuple[int, int, int]): (channels, height, width) of one input image.
        device (str | torch.device): Where to run the traced forward. Default: 'cpu'.

    Returns:
        tuple[int, dict]: The total and the counts by operator.
    """
    analyzer = _analyzer(net, input_size, device)
    with torch.no_grad():
        total = analyzer.total()
    return int(total), {op: int(count) for op, count in analyzer.by_operator().items()}


def count_flops_by_module(net, input_size, depth=1, device='cpu'):
    """FLOPs of one forward pass per submodule, to see where a network spends them.

    A module called several times (SAN's region non-local module, applied before and after the groups) gets the sum
    of its calls.

    Args:
        net (nn.Module): The network, in eval mode.
        input_size (tuple[int, int, int]): (channels, height, width) of one input image.
        depth (int): Submodules down to this depth are listed (1: the network's children). Default: 1.
        device (str | torch.device): Where to run the traced forward. Default: 'cpu'.

    Returns:
        dict[str, dict[str, int]]: Module name -> operator -> FLOPs, in the order of ``net.named_modules()``, for
        the modules with at least one counted operator; ``''`` is the whole network.
    """
    if depth < 1:
        raise ValueError(f'depth must be >= 1, got {depth}')
    analyzer = _analyzer(net, input_size, device)
    with torch.no_grad():
        counts = analyzer.by_module_and_operator()
    return {
        name: {op: int(count) for op, count in counts[name].items()}
        for name, _ in net.named_modules()
        if (name == '' or name.count('.') < depth) and sum(counts.get(name, {}).values()) > 0
    }


def count_params(net):
    """Number of parameters of ``net``."""
    return sum(p.numel() for p in net.parameters())
