"""Autocast dtypes by the names used in options and on command lines."""

import contextlib

import torch

AMP_DTYPES = {'bfloat16': torch.bfloat16, 'float16': torch.float16}


def autocast(device_type, amp=None):
    """Autocast to the dtype named ``amp`` on ``device_type``, or a no-op for None (float32).

    Args:
        device_type (str): 'cpu', 'cuda', ...
        amp (str | None): A key of :data:`AMP_DTYPES`, or None. Default: None.

    Returns:
        contextlib.AbstractContextManager: The context.
    """
    if amp is None:
        return contextlib.nullcontext()
    if amp not in AMP_DTYPES:
        raise ValueError(f'amp dtype {amp!r} is not one of {", ".join(AMP_DTYPES)}')
    return torch.autocast(device_type=device_type, dtype=AMP_DTYPES[amp])
