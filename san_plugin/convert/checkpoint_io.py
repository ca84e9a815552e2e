"""Read and write weight files safely: tensors only, never code, with errors that name the file."""

import io
import json
import pickletools
import warnings
import zipfile
from pathlib import Path

import torch

from san_plugin.convert.network_config import RECORD_KEY
from san_plugin.utils.atomic_save import atomic_path
from san_plugin.utils.output_paths import check_output_file

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
        dict: What the file holds (a state dict, or a dict wrapping one), without its network record.
    """
    return load_weights_and_record(path)[0]


def load_weights_and_record(path):
    """Load a weight file as :func:`load_weights_file` does, and the network record it holds, if any.

    Args:
        path (str | Path): The file.

    Returns:
        tuple[dict, dict | str | None]: What the file holds without the record, and the raw record (the ``.pth``'s
        top-level ``network_config`` value, or the JSON string of the ``.safetensors`` metadata entry; see
        :mod:`san_plugin.convert.network_config`), or None.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f'weights file {path} is a folder, not a file')
    if not path.is_file():
        raise FileNotFoundError(f'weights file {path} does not exist')
    try:
        path.open('rb').close()
    except OSError as error:
        raise ValueError(f'weights file {path} cannot be read: {error.strerror}') from error
    if path.stat().st_size == 0:
        raise ValueError(f'weights file {path} is empty')
    if path.suffix == SAFETENSORS_SUFFIX:
        from safetensors import SafetensorError, safe_open
        from safetensors.torch import load_file

        try:
            with safe_open(str(path), framework='pt') as opened:
                metadata = opened.metadata() or {}
            return load_file(str(path), device='cpu'), metadata.get(RECORD_KEY)
        except SafetensorError as error:
            raise ValueError(f'weights file {path} is not a readable safetensors file: {error}') from error
    try:
        with warnings.catch_warnings():  # torch's note on pickles it did not write: the refusal below says more
            warnings.filterwarnings('ignore', message='Detected pickle protocol')
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
    record = loaded.get(RECORD_KEY)
    if record is None or torch.is_tensor(record):  # a tensor of that name would be a weight: not a record
        return loaded, None
    del loaded[RECORD_KEY]
    return loaded, record


def check_weights_output(path, source=None):
    """Raise a ValueError naming ``path`` unless :func:`save_weights_file` can write it (before any work).

    Args:
        path (str | Path): Output file: ``.pth``/``.pt`` or ``.safetensors``; missing folders are created.
        source (str | Path | None): The file the weights are read from, which must not be overwritten.
    """
    path = Path(path)
    check_output_file(path, 'output file', source)
    if path.suffix not in (SAFETENSORS_SUFFIX, *TORCH_SUFFIXES):
        raise ValueError(f'output file {path}: unknown suffix {path.suffix!r}; use .pth, .pt or .safetensors')


def save_weights_file(state_dict, path, source=None, param_key='params', record=None):
    """Write a state dict as a BasicSR checkpoint (``{'params': state_dict}``) or a ``.safetensors`` file.

    The format follows the suffix of ``path``; missing folders above it are created. The file is written under a
    temporary name in the same folder and then moved into place, so an interrupted write leaves no partial file.

    Args:
        state_dict (dict[str, Tensor]): The weights.
        path (str | Path): Output file: ``.pth``/``.pt`` or ``.safetensors``.
        source (str | Path | None): The file the weights were read from; writing over it is refused.
        param_key (str | None): Key of the state dict in a ``.pth``/``.pt`` file; None writes the bare state dict
            (the authors' format). Default: 'params'.
        record (dict | None): Network record (:func:`san_plugin.convert.network_config.network_record`), written as
            the ``.pth``'s top-level ``network_config`` or the ``.safetensors`` metadata entry. Default: None.
    """
    path = Path(path)
    check_weights_output(path, source)
    if record is not None and param_key is None and path.suffix != SAFETENSORS_SUFFIX:
        raise ValueError(f"output file {path}: a bare state dict (the authors' format) cannot hold a network record")
    # Own, contiguous CPU copies: safetensors refuses shared or strided storage.
    tensors = {key: tensor.detach().cpu().contiguous().clone() for key, tensor in state_dict.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temp_name:
        if path.suffix == SAFETENSORS_SUFFIX:
            from safetensors.torch import save_file

            metadata = {'format': 'pt'} if record is None else {'format': 'pt', RECORD_KEY: json.dumps(record)}
            save_file(tensors, str(temp_name), metadata=metadata)
        elif param_key is None:
            torch.save(tensors, temp_name)
        else:
            torch.save({param_key: tensors} if record is None else {param_key: tensors, RECORD_KEY: record}, temp_name)
