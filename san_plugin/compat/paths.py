"""Where a run's ``experiments/``, ``results/`` and ``tb_logger/`` folders go."""

import os
import sysconfig


def _is_site_packages(path):
    """Return True if ``path`` is a folder that installed packages live in (``site-packages``, ``dist-packages``)."""
    real = os.path.realpath(path)
    install_dirs = {os.path.realpath(sysconfig.get_path(key)) for key in ('purelib', 'platlib')}
    return real in install_dirs or os.path.basename(real) in ('site-packages', 'dist-packages')


def output_root(root_path):
    """Return the folder that should hold ``experiments/``, ``results/`` and ``tb_logger/`` for ``root_path``.

    BasicSR's ``train.py`` and ``test.py`` pass the folder above the ``basicsr`` package as ``root_path``. In a source
    checkout that is the checkout, which is also where BasicSR expects you to run from. For the PyPI package
    (``python -m basicsr.train``) it is ``site-packages``: runs would be written inside the Python installation, while
    ``--auto_resume`` would look for them under the current working directory. Outputs of an installed BasicSR
    therefore go to the current working directory, like dataset paths in option files, which are relative to it too.

    Args:
        root_path (str): The root path BasicSR computed.

    Returns:
        str: ``os.getcwd()`` when ``root_path`` is an installation folder, otherwise ``root_path`` unchanged.
    """
    return os.getcwd() if _is_site_packages(root_path) else root_path


# Keys of ``path`` that BasicSR 1.4.2's ``make_exp_dirs`` does not turn into folders (a key containing any of these).
NOT_FOLDERS = ('strict_load', 'pretrain_network', 'resume', 'param_key')
# Settings that belong in another section, by the ``path`` key a user might put them under.
MOVED_KEYS = {'allow_scale_change_g': 'train.allow_scale_change_g'}


def check_path_options(opt):
    """Raise a ValueError naming the key if a ``path`` value is one that BasicSR would crash on.

    BasicSR creates a folder for every ``path`` value whose key does not contain one of :data:`NOT_FOLDERS`, so any
    other value that is not a string (``true``, a number, ``~``) ends in ``TypeError: expected str, bytes or
    os.PathLike object`` after the run's folders and log exist. The check runs before anything is written.

    Args:
        opt (dict): Options as BasicSR's ``parse_options`` returns them.
    """
    for key, value in (opt.get('path') or {}).items():
        if isinstance(value, str) or any(part in key for part in NOT_FOLDERS):
            continue
        hint = f'; this setting is {MOVED_KEYS[key]}' if key in MOVED_KEYS else ''
        raise ValueError(f'path.{key}: BasicSR creates a folder for every path value, got {value!r}{hint}')
