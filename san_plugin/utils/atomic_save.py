"""Write files so that a reader sees either the previous content or the complete new one, never a part."""

import contextlib
import os
import uuid

import torch


def _fsync_folder(folder):
    """Make a rename in ``folder`` durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    if os.name == 'nt':
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_torch_save(obj, path):
    """``torch.save(obj, path)``, atomically: a process killed at any moment leaves no partial ``path``.

    The data goes to a hidden temporary file in the same folder (``.<name>.<random>.tmp``: it ends neither in
    ``.pth`` nor ``.state``, and BasicSR's ``scandir`` skips hidden files), is flushed to disk, then renamed over
    ``path`` with ``os.replace``. The temporary file is removed if writing fails.

    Args:
        obj (object): What to save.
        path (str): Destination file; its folder must exist.
    """
    folder = os.path.dirname(os.path.abspath(path))
    tmp_path = os.path.join(folder, f'.{os.path.basename(path)}.{uuid.uuid4().hex[:12]}.tmp')
    try:
        with open(tmp_path, 'xb') as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp_path)
        if isinstance(error, OSError):
            raise OSError(f'Cannot save {path}: {error}') from error
        raise
    _fsync_folder(folder)
