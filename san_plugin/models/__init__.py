"""Registers every ``*_model.py`` module of this folder into BasicSR's registries on import."""

from san_plugin.utils.module_scan import import_modules_with_suffix

_modules = import_modules_with_suffix(__name__, __file__, '_model.py')
