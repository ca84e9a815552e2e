"""Output paths checked before any work, so that a tool never computes a result it then cannot write.

A missing folder is no problem: the writers create the folders above their outputs. What is refused: a file where a
folder is needed (the output itself, or one of the folders above it), a folder where a file is needed, and writing
over the input.
"""

from pathlib import Path


def _check_parents(path, where):
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f'{where} {path}: {parent} is a file, not a folder')
            return


def check_output_file(path, where, source=None):
    """Raise a ValueError naming ``where`` and ``path`` unless a file can be written at ``path``.

    Args:
        path (str | Path): The output file.
        where (str): The flag or argument it comes from, for messages.
        source (str | Path | None): The input file, which must not be overwritten. Default: None.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f'{where} {path}: is a folder; give the name of the file to write')
    if source is not None and path.exists() and path.resolve() == Path(source).resolve():
        raise ValueError(f'{where} {path}: refusing to overwrite the input file; choose another output path')
    _check_parents(path, where)


def check_output_folder(path, where):
    """Raise a ValueError naming ``where`` and ``path`` unless ``path`` is a folder or one can be created there.

    Args:
        path (str | Path): The output folder.
        where (str): The flag or option key it comes from, for messages.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f'{where} {path}: is a file, not a folder')
    _check_parents(path, where)
