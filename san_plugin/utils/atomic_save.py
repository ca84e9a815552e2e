"""The plugin's one way to write a file or folder safely: a reader sees the old content or the complete new one.

Every writer of the plugin goes through :func:`atomic_path`: checkpoints and training states, converted weights,
inference outputs, ONNX files, benchmark reports and figures, prepared images and LMDBs. The new content is written
under a hidden temporary name in the destination's folder, flushed to disk, and renamed over the destination with
``os.replace``; the folder is then flushed so that the rename survives a power cut.

Temporary names are ``.<name>.<pid>-<random>.tmp``: hidden (BasicSR's ``scandir`` skips them), unique per writer
(two processes writing the same destination never share one), and ending in ``.tmp``, not in the destination's
suffix, so that no reader that lists ``*.pth`` or ``*.png`` (``pathlib``'s glob includes hidden files) takes a
half-written one. A writer killed with ``SIGKILL`` cannot remove its temporary file; :func:`remove_temporaries`
does, and the training resume and checkpoint writing call it for their run's folders.
"""

import contextlib
import errno
import json
import os
import re
import shutil
import uuid
from pathlib import Path

import torch

# Errors of ``fsync`` on a folder that mean "not supported here" (some network and FUSE filesystems); the data itself
# was already flushed, so the write stands.
_FSYNC_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS})
_TEMPORARY_NAME = re.compile(r'^\..+\.\d+-[0-9a-f]{12}\.tmp$')


def temporary_name(path):
    """The hidden temporary path that :func:`atomic_path` writes before renaming it to ``path``.

    Args:
        path (Path): Destination.

    Returns:
        Path: ``<folder>/.<name>.<pid>-<random>.tmp``.
    """
    return path.with_name(f'.{path.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.tmp')


def is_temporary(name):
    """True if the file or folder name ``name`` is one that :func:`temporary_name` makes."""
    return bool(_TEMPORARY_NAME.match(name))


def fsync_folder(folder):
    """Make renames in ``folder`` durable (POSIX).

    Skipped on Windows, where folders cannot be opened, and on filesystems that refuse ``fsync`` on a folder; any
    other error is raised.

    Args:
        folder (str | Path): The folder.
    """
    if os.name == 'nt':
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as error:
        if error.errno not in _FSYNC_UNSUPPORTED:
            raise
    finally:
        os.close(fd)


def _fsync_tree(path):
    """Flush a written file, or every file of a written folder and the folder itself, to disk."""
    files = [path] if path.is_file() else [p for p in path.rglob('*') if p.is_file()]
    for file in files:
        fd = os.open(file, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    if path.is_dir():
        fsync_folder(path)


def _remove(path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path, replace_folder=False):
    """Give a temporary path to write; on success move it to ``path`` atomically, on any failure remove it.

    Usage::

        with atomic_path('out/net.pth') as tmp:
            torch.save(obj, tmp)

    The block may write one file or create one folder (an LMDB) at the temporary path. When the block returns, the
    content is flushed to disk and renamed to ``path``; when it raises (or the process is interrupted), the temporary
    file or folder is removed and ``path`` is left as it was. A folder can replace an existing folder only with
    ``replace_folder=True``; that old folder is removed right before the rename, so for that instant neither exists.

    Args:
        path (str | Path): Destination; its folder must exist.
        replace_folder (bool): Remove an existing folder at ``path`` before the rename. Default: False.

    Yields:
        Path: Where to write.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f'Cannot write {path}: the folder {path.parent} does not exist')
    tmp = temporary_name(path)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f'Cannot write {path}: nothing was written to {tmp}')
        _fsync_tree(tmp)
        if replace_folder and path.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException as error:
        _remove(tmp)
        if isinstance(error, OSError) and str(path) not in str(error):
            raise OSError(error.errno, f'Cannot write {path}: {error}') from error
        raise
    fsync_folder(path.parent)


def atomic_write_bytes(path, data):
    """Write ``data`` (bytes, or str as UTF-8) to ``path`` atomically (:func:`atomic_path`).

    Args:
        path (str | Path): Destination; its folder must exist.
        data (bytes | str): Content.
    """
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode('utf-8') if isinstance(data, str) else data)


def write_atomic(path, data):
    """Write ``data`` (bytes, or str as UTF-8) to ``path`` atomically (:func:`atomic_path`), creating its folder.

    Args:
        path (str | Path): Destination.
        data (bytes | str): Content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)


def write_json(path, obj):
    """Write ``obj`` as indented JSON to ``path`` atomically, creating its folder (:func:`write_atomic`).

    Args:
        path (str | Path): Destination.
        obj (object): A JSON-ready object.
    """
    write_atomic(path, json.dumps(obj, indent=2) + '\n')


def atomic_torch_save(obj, path):
    """``torch.save(obj, path)``, atomically (:func:`atomic_path`).

    Args:
        obj (object): What to save.
        path (str | Path): Destination; its folder must exist.
    """
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def remove_temporaries(folder):
    """Remove the temporary files and folders that killed writers left in ``folder`` (not in its subfolders).

    Call it only where no other process may be writing into ``folder`` at the same time, e.g. a training run's own
    ``models`` and ``training_states`` folders, which only that run's rank 0 writes.

    Args:
        folder (str | Path): The folder; a missing folder is fine.

    Returns:
        list[Path]: What was removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = [entry for entry in folder.iterdir() if is_temporary(entry.name)]
    for entry in removed:
        _remove(entry)
    return removed
