"""SAN's ablation switches and its zero-initialised parameters, for the tests that build SAN's variants."""

import itertools

import torch

# Every value of each of SAN's switches, and every combination of them (the defaults among them).
SWITCHES = {
    'channel_attention': ('second_order', 'first_order', 'laplacian', 'none'),
    'attention_placement': ('group', 'block'),
    'use_nonlocal': (True, False),
    'share_source_skip': (True, False),
}
COMBINATIONS = [dict(zip(SWITCHES, values)) for values in itertools.product(*SWITCHES.values())]


def randomise_zero_parameters(net):
    """Give parameters initialised to zero (SAN's non-local output and share-source weight) random values, so that the
    gradient reaches the layers behind them and their branches change the output.

    Args:
        net (torch.nn.Module): Any network; it is changed in place.

    Returns:
        torch.nn.Module: ``net``.
    """
    with torch.no_grad():
        for param in net.parameters():
            if not param.any():
                param.normal_(0, 0.1)
    return net
