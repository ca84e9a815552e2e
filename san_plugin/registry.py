"""SAN, SOCA, RegionNonLocal and DRLN in MMEngine's ``MODELS`` registry, for MMEngine/MMagic pipelines.

They live in a child registry of ``mmengine.registry.MODELS`` with the scope ``san_plugin``, so their names never
clash with those of MMagic (scope ``mmagic``) or any other OpenMMLab package; MMEngine imports ``<scope>.registry``
when it switches to a scope, hence this module's name. After ``import san_plugin.registry``, build them either with
the scope in the type::

    from mmengine.registry import MODELS
    net = MODELS.build(dict(type='san_plugin.SAN', upscale=2))

or by making ``san_plugin`` the default scope (``default_scope = 'san_plugin'`` in an MMEngine config, or
``mmengine.registry.init_default_scope('san_plugin')``) and writing ``type='SAN'``. In an MMagic config, where the
default scope is ``mmagic``, use ``type='san_plugin.SAN'`` and add ``custom_imports = dict(imports=['san_plugin'])``.
The constructor arguments are those of the BasicSR archs (``num_feat``, ``upscale``, ...).
"""

from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

from san_plugin.archs.drln_arch import DRLN
from san_plugin.archs.region_nonlocal_arch import RegionNonLocal
from san_plugin.archs.san_arch import SAN
from san_plugin.archs.soca_arch import SOCA

SCOPE = 'san_plugin'
MODELS = Registry('model', parent=MMENGINE_MODELS, scope=SCOPE, locations=['san_plugin.registry'])

for _module in (SAN, SOCA, RegionNonLocal, DRLN):
    MODELS.register_module(module=_module)
