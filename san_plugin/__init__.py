"""SAN (Second-order Attention Network, Dai et al., CVPR 2019) as a BasicSR plugin.

Importing this package makes ``import basicsr`` work on current torchvision, registers the plugin's archs, models,
datasets and metrics into BasicSR's registries, and then applies the plugin's narrow BasicSR 1.4.2 fixes (see
``san_plugin.compat``): last, so that a failure anywhere before leaves BasicSR's behaviour untouched.

Heavy parts load when first used: the MMEngine registry (``san_plugin.registry``, which MMEngine imports itself when
it meets the scope ``san_plugin``), the converters (``san_plugin.from_original``), benchmarks and tools.
"""

from _san_plugin_autoload import install_torchvision_shim

install_torchvision_shim()

from san_plugin import archs, data, metrics, models  # noqa: E402, F401  (registration into BasicSR's registries)
from san_plugin.compat import apply_basicsr_fixes  # noqa: E402
from san_plugin.version import __version__  # noqa: E402, F401

apply_basicsr_fixes()


def __getattr__(name):
    """``san_plugin.from_original``, imported on first use (it loads the converters)."""
    if name == 'from_original':
        from san_plugin.convert import from_original

        return from_original
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
