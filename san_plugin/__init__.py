"""SAN (Second-order Attention Network, Dai et al., CVPR 2019) as a BasicSR plugin.

Importing this package makes ``import basicsr`` work on current torchvision, registers the plugin's archs, models and
datasets into BasicSR's registries, and applies the plugin's narrow BasicSR 1.4.2 fixes (see ``san_plugin.compat``).
"""

from _san_plugin_autoload import install_torchvision_shim

install_torchvision_shim()

import san_plugin.compat  # noqa: E402, F401  (import applies the BasicSR 1.4.2 fixes)
from san_plugin import archs, data, models, registry  # noqa: E402, F401  (BasicSR and MMEngine registration)
from san_plugin.convert import from_original  # noqa: E402, F401
from san_plugin.version import __version__  # noqa: E402, F401
