"""Read weight files safely: tensors only, never code, with errors that name the file."""

import pickle
from pathlib import Path

import torch


def load_weights_file(path):
    """Load a ``.pt``/``.pth`` (``torch.load(weights_only=True)``) or ``.safetensors`` file on the CPU.

    Args:
        path (str | Path): The file.

    Returns:
        dict: What the file holds (a state dict, or a dict wrapping one).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'weights file {path} does not exist')
    if path.stat().st_size == 0:
        raise ValueError(f'weights file {path} is empty')
    if path.suffix == '.safetensors':
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device='cpu')
        except SafetensorError as error:
            raise ValueError(f'weights file {path} is not a readable safetensors file: {error}') from error
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f'refused to load {path}: it holds Python objects that would run code when unpickled, and only plain '
            f'tensor checkpoints are loaded (nothing in it was run). Detail: {str(error).splitlines()[0]}'
        ) from error
    except (RuntimeError, EOFError, OSError) as error:
        raise ValueError(f'weights file {path} is truncated or not a PyTorch checkpoint: {error}') from error
