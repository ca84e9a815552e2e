"""``torch.compile`` for super-resolution networks whose input size changes (training crops, test images, tiles).

Dynamic height and width break Inductor's layout optimisation in PyTorch 2.14: a convolution after a pixel shuffle
(every upsampler of SAN, RCAN, DRLN, EDSR) makes it compare symbolic strides and fail with ``cannot determine truth
value of Relational: 64*s0*s1 < 16``. The networks are therefore compiled with that optimisation off; everything else
of the chosen mode is kept.
"""

from torch._inductor import list_mode_options

COMPILE_MODES = ('default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs')


def compile_options(mode='default', dynamic=None):
    """Inductor options of ``mode`` with the layout optimisation off (see the module docstring).

    Args:
        mode (str): One of :data:`COMPILE_MODES`. Default: 'default'.
        dynamic (bool | None): ``torch.compile``'s ``dynamic``. Default: None.

    Returns:
        dict: Options for ``torch.compile(..., options=...)``.
    """
    if mode not in COMPILE_MODES:
        raise ValueError(f'compile mode {mode!r} is not one of {", ".join(COMPILE_MODES)}')
    return {**list_mode_options(mode, dynamic), 'layout_optimization': False}


def compile_network(net, mode='default', dynamic=None, fullgraph=False):
    """Compile ``net`` in place (``nn.Module.compile``): its ``state_dict`` keys keep their names (no ``_orig_mod.``).

    Args:
        net (nn.Module): Network.
        mode (str): One of :data:`COMPILE_MODES`. Default: 'default'.
        dynamic (bool | None): None: static for the first size, dynamic once the size changes. Default: None.
        fullgraph (bool): Raise on a graph break instead of splitting the graph. Default: False.

    Returns:
        nn.Module: ``net`` itself.
    """
    net.compile(dynamic=dynamic, fullgraph=fullgraph, options=compile_options(mode, dynamic))
    return net
