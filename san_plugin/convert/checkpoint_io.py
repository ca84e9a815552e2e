"""Read and write weight files safely: tensors only, never code, with errors that name the file."""

import io
import pickletools
import zipfile
from pathlib import Path

import torch

from san_plugin.utils.atomic_save import atomic_path

SAFETENSORS_SUFFIX = '.safetensors'
TORCH_SUFFIXES = ('.pth', '.pt')


def _pickled_imports(path):
    """``module.name`` of every global that the pickle in ``path`` would import, read with ``pickletools``.

    Nothing is executed: the opcodes are only listed. For a ``torch.save`` zip archive, its ``data.pkl`` is read.
    """
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = [name for name in archive.namelist() if name.endswith('data.pkl')]
            data = archive.read(names[0]) if names else b''
    else:
        data = path.read_bytes()
    stream, imports = io.BytesIO(data), []
    try:
        while stream.tell() < len(data):
            strings, memo = [], {}
            for opcode, arg, _ in pickletools.genops(stream):
                if opcode.name in ('GLOBAL', 'INST'):
                    imports.append(arg.replace(' ', '.'))
                elif opcode.name == 'STACK_GLOBAL' and len(strings) >= 2:
                    imports.append(f'{strings[-2]}.{strings[-1]}')
                elif opcode.name == 'MEMOIZE' and strings:
                    memo[len(memo)] = strings[-1]
                elif opcode.name in ('GET', 'BINGET', 'LONG_BINGET') and arg in memo:
                    strings.append(memo[arg])
                if isinstance(arg, str) and 'UNICODE' in opcode.name:
                    strings.append(arg)
    except Exception:  # the rest is not a pickle (tensor data of a legacy file, or garbage)
        pass
    return imports


def _code_imports(path):
    """The imports of the pickle in ``path`` beyond what a plain tensor checkpoint needs (torch, collections)."""
    return [name for name in _pickled_imports(path) if name.split('.')[0] not in ('torch', 'collections', 'builtins')]


def _error_detail(error):
    """The informative line of a ``torch.load`` error (its ``weights_only`` boilerplate left out)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    detail = next((line for line in lines if 'nsupported' in line), lines[0] if lines else '')
    return f'{type(error).__name__}: {detail}'


def load_weights_file(path):
    """Load a ``.pt``/``.pth`` (``torch.load(weights_only=True)``) or ``.safetensors`` file on the CPU.

    A pickle that would import or call Python objects other than tensors and containers is refused before anything
    in it runs.

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
    if path.suffix == SAFETENSORS_SUFFIX:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device='cpu')
        except SafetensorError as error:
            raise ValueError(f'weights file {path} is not a readable safetensors file: {error}') from error
    try:
        loaded = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # weights_only: nothing in the file ran, whatever the failure
        code = _code_imports(path)
        if code:
            raise ValueError(
                f'refused to load {path}: it holds Python objects that would run code when unpickled '
                f'({", ".join(code)}), and only plain tensor checkpoints are loaded (nothing in it was run)'
            ) from error
        raise ValueError(
            f'weights file {path} is truncated, corrupt or not a PyTorch checkpoint: {_error_detail(error)}'
        ) from error
    if not isinstance(loaded, dict):
        raise ValueError(f'weights file {path} holds a {type(loaded).__name__}, not a dict of tensors')
    return loaded


def save_weights_file(state_dict, path, source=None, param_key='params'):
    """Write a state dict as a BasicSR checkpoint (``{'params': state_dict}``) or a ``.safetensors`` file.

    The format follows the suffix of ``path``. The file is written under a temporary name in the same folder and
    then moved into place, so an interrupted write leaves no partial file.

    Args:
        state_dict (dict[str, Tensor]): The weights.
        path (str | Path): Output file: ``.pth``/``.pt`` or ``.safetensors``.
        source (str | Path | None): The file the weights were read from; writing over it is refused.
        param_key (str | None): Key of the state dict in a ``.pth``/``.pt`` file; None writes the bare state dict
            (the authors' format). Default: 'params'.
    """
    path = Path(path)
    if source is not None and path.resolve() == Path(source).resolve():
        raise ValueError(f'refusing to overwrite the input file {source}; choose another output path')
    if path.suffix not in (SAFETENSORS_SUFFIX, *TORCH_SUFFIXES):
        raise ValueError(f'output file {path}: unknown suffix {path.suffix!r}; use .pth, .pt or .safetensors')
    if not path.parent.is_dir():
        raise FileNotFoundError(f'output folder {path.parent} does not exist')
    # Own, contiguous CPU copies: safetensors refuses shared or strided storage.
    tensors = {key: tensor.detach().cpu().contiguous().clone() for key, tensor in state_dict.items()}
    with atomic_path(path) as temp_name:
        if path.suffix == SAFETENSORS_SUFFIX:
            from safetensors.torch import save_file

            save_file(tensors, str(temp_name))
        else:
            torch.save(tensors if param_key is None else {param_key: tensors}, temp_name)
