"""The device a user names (``--device``, ``device:`` of an options file), checked against this machine."""

import torch

SUPPORTED = 'cpu, cuda, cuda:N or mps'


def check_device(name, where='--device'):
    """The ``torch.device`` named ``name``, if this machine has it; a ValueError naming ``where`` otherwise.

    Args:
        name (str): ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        where (str): The flag or option key it comes from, for messages. Default: '--device'.

    Returns:
        torch.device: The device.
    """
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f'{where} {name!r}: not a device name; expected {SUPPORTED}') from None
    if device.type == 'cpu':
        return device
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            raise ValueError(
                f'{where} {name}: PyTorch finds no CUDA GPU on this machine (torch.cuda.is_available() is False); '
                'use cpu'
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(f'{where} {name}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}')
        return device
    if device.type == 'mps':
        if not torch.backends.mps.is_available():
            raise ValueError(f'{where} {name}: PyTorch finds no Apple MPS device on this machine; use cpu')
        return device
    raise ValueError(f'{where} {name}: {device.type} devices are not supported; expected {SUPPORTED}')
