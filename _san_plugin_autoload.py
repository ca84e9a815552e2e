"""Make every BasicSR entry point see san_plugin, and make BasicSR 1.4.2 importable on current torchvision.

This module is imported at interpreter start-up by ``san_plugin-autoload.pth``, which ``pip install`` puts into
site-packages. It must stay cheap: it imports nothing heavy and only adds one finder to ``sys.meta_path``. Programs
that never import ``basicsr`` pay for that finder's name comparison and nothing else.

When ``basicsr`` is imported (``python -m basicsr.train``, a BasicSR source checkout's ``basicsr/train.py``, or any
script), the finder:

1. installs the ``torchvision.transforms.functional_tensor`` alias that BasicSR 1.4.2 needs (see
   :func:`install_torchvision_shim`), before BasicSR's own ``__init__`` runs;
2. lets BasicSR import as usual;
3. imports ``san_plugin``, which registers its archs, models and datasets and applies its BasicSR fixes.

Set ``SAN_PLUGIN_AUTOLOAD=0`` to turn this off; ``import san_plugin`` then still does steps 1 and 3 itself.
"""

import importlib
import importlib.abc
import os
import sys
import types


def install_torchvision_shim():
    """Alias ``torchvision.transforms.functional_tensor`` to its new private home, only if it is missing.

    BasicSR 1.4.2 (``basicsr/data/degradations.py``) does ``from torchvision.transforms.functional_tensor import
    rgb_to_grayscale`` at import time. torchvision 0.17 removed that public module (its content lives on as
    ``torchvision.transforms._functional_tensor``), so ``import basicsr`` fails on any current torchvision. We do not
    edit installed files: we register the old name in ``sys.modules`` as an alias of the new module. On an old
    torchvision that still has the module, nothing is done.
    """
    name = 'torchvision.transforms.functional_tensor'
    if name in sys.modules:
        return
    try:
        importlib.import_module(name)
        return
    except ModuleNotFoundError:
        pass
    new_home = importlib.import_module('torchvision.transforms._functional_tensor')
    alias = types.ModuleType(name, 'Alias of torchvision.transforms._functional_tensor, installed by san_plugin.')
    alias.__dict__.update({k: v for k, v in vars(new_home).items() if not k.startswith('__')})
    sys.modules[name] = alias


class _LoaderThatLoadsPlugin(importlib.abc.Loader):
    """Wraps BasicSR's own loader: shim first, BasicSR's ``__init__`` next, san_plugin last."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        install_torchvision_shim()
        self._loader.exec_module(module)
        importlib.import_module('san_plugin')

    def __getattr__(self, name):
        return getattr(self._loader, name)


class BasicsrFinder(importlib.abc.MetaPathFinder):
    """Finds ``basicsr`` through the other finders and wraps its loader; ignores every other name."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != 'basicsr':
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, 'find_spec'):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _LoaderThatLoadsPlugin(spec.loader)
                return spec
        return None


def install():
    """Add the finder once, unless ``SAN_PLUGIN_AUTOLOAD=0`` or ``basicsr`` is already imported."""
    if os.environ.get('SAN_PLUGIN_AUTOLOAD', '1') == '0' or 'basicsr' in sys.modules:
        return
    if not any(isinstance(finder, BasicsrFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, BasicsrFinder())


install()
