"""Make every BasicSR entry point see san_plugin, and make BasicSR 1.4.2 importable on current torchvision.

This module is imported at interpreter start-up by ``san_plugin-autoload.pth``, which ``pip install`` puts into
site-packages. It must stay cheap: it imports nothing heavy and only adds one finder to ``sys.meta_path``. Programs
that never import ``basicsr`` pay for that finder's name comparison and nothing else.

When ``basicsr`` is imported (``python -m basicsr.train``, a BasicSR source checkout's ``basicsr/train.py``, or any
script), the finder:

1. installs the ``torchvision.transforms.functional_tensor`` alias that BasicSR 1.4.2 needs (see
   :func:`install_torchvision_shim`), before BasicSR's own ``__init__`` runs;
2. lets BasicSR import as usual;
3. imports ``san_plugin``, which registers its archs, models and datasets and applies its BasicSR fixes. If that
   import fails, BasicSR stays as it is without the plugin (see :func:`load_plugin`) and one warning says why.

``SAN_PLUGIN_AUTOLOAD=0`` skips step 3, so BasicSR runs exactly as without the plugin; step 1 stays, because it only
adds a module that is missing and BasicSR cannot be imported without it. An explicit ``import san_plugin`` still
loads the plugin.
"""

import importlib
import importlib.abc
import os
import sys
import types
import warnings

AUTOLOAD_VARIABLE = 'SAN_PLUGIN_AUTOLOAD'
# BasicSR's registries (module basicsr.utils.registry), restored when the plugin fails half-way through registering.
_REGISTRIES = ('ARCH_REGISTRY', 'MODEL_REGISTRY', 'DATASET_REGISTRY', 'LOSS_REGISTRY', 'METRIC_REGISTRY')


class SanPluginLoadWarning(RuntimeWarning):
    """san_plugin could not be loaded when BasicSR was imported; BasicSR runs without it."""


def install_torchvision_shim():
    """Alias ``torchvision.transforms.functional_tensor`` to its new private home, only if it is missing.

    BasicSR 1.4.2 (``basicsr/data/degradations.py``) does ``from torchvision.transforms.functional_tensor import
    rgb_to_grayscale`` at import time. torchvision 0.17 removed that public module (its content lives on as
    ``torchvision.transforms._functional_tensor``), so ``import basicsr`` fails on any current torchvision. We do not
    edit installed files: we register the old name in ``sys.modules`` as an alias of the new module. On an old
    torchvision that still has the module, or without torchvision, nothing is done.
    """
    name = 'torchvision.transforms.functional_tensor'
    if name in sys.modules:
        return
    try:
        importlib.import_module(name)
        return
    except ModuleNotFoundError:
        pass
    try:
        new_home = importlib.import_module('torchvision.transforms._functional_tensor')
    except ModuleNotFoundError:
        return  # no torchvision: BasicSR's own import says so
    alias = types.ModuleType(name, 'Alias of torchvision.transforms._functional_tensor, installed by san_plugin.')
    alias.__dict__.update({k: v for k, v in vars(new_home).items() if not k.startswith('__')})
    sys.modules[name] = alias


def autoload_enabled():
    """False when ``SAN_PLUGIN_AUTOLOAD=0``: importing BasicSR then leaves the plugin out."""
    return os.environ.get(AUTOLOAD_VARIABLE, '1') != '0'


def _registry_snapshot():
    registry = sys.modules.get('basicsr.utils.registry')
    if registry is None:
        return {}
    return {name: dict(getattr(registry, name)._obj_map) for name in _REGISTRIES if hasattr(registry, name)}


def _restore_registries(snapshot):
    registry = sys.modules['basicsr.utils.registry']
    for name, obj_map in snapshot.items():
        current = getattr(registry, name)._obj_map
        current.clear()
        current.update(obj_map)


def load_plugin():
    """Import ``san_plugin``; if that fails, undo what it did and warn instead of failing BasicSR's import.

    A broken plugin (a partial install, a broken dependency, a bug) must not break BasicSR for every program in the
    environment. On failure the plugin's modules are dropped from ``sys.modules`` and BasicSR's registries are put
    back as they were, so BasicSR works exactly as without the plugin (the plugin applies its BasicSR fixes last,
    after everything that can fail); one :class:`SanPluginLoadWarning` names the error and how to see its traceback.

    Returns:
        bool: Whether the plugin is loaded.
    """
    snapshot = _registry_snapshot()
    try:
        importlib.import_module('san_plugin')
        return True
    except Exception as error:
        for name in [name for name in sys.modules if name == 'san_plugin' or name.startswith('san_plugin.')]:
            del sys.modules[name]
        if snapshot:
            _restore_registries(snapshot)
        warnings.warn(
            f'san_plugin could not be loaded, so BasicSR runs without it ({type(error).__name__}: {error}). '
            f'See the traceback with: python -c "import san_plugin"; set {AUTOLOAD_VARIABLE}=0 to stop loading it.',
            SanPluginLoadWarning,
            stacklevel=2,
        )
        return False


class _LoaderThatLoadsPlugin(importlib.abc.Loader):
    """Wraps BasicSR's own loader: shim first, BasicSR's ``__init__`` next, san_plugin last."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        install_torchvision_shim()
        self._loader.exec_module(module)
        if autoload_enabled():
            load_plugin()

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
    """Add the finder once, unless ``basicsr`` is already imported."""
    if 'basicsr' in sys.modules:
        return
    if not any(isinstance(finder, BasicsrFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, BasicsrFinder())


install()
