"""Import every module of a sub-package whose file name ends with a suffix, the way BasicSR registers its parts."""

import importlib
from pathlib import Path


def import_modules_with_suffix(package_name, package_file, suffix):
    """Import ``package_name.<stem>`` for every ``<stem><suffix>`` file beside ``package_file``, sorted by name.

    Args:
        package_name (str): Dotted name of the package, e.g. ``'san_plugin.archs'``.
        package_file (str): The package's ``__init__.py`` path (its ``__file__``).
        suffix (str): File-name ending to look for, e.g. ``'_arch.py'``.

    Returns:
        list[module]: The imported modules.
    """
    folder = Path(package_file).resolve().parent
    stems = sorted(path.name[: -len('.py')] for path in folder.glob(f'*{suffix}'))
    return [importlib.import_module(f'{package_name}.{stem}') for stem in stems]
