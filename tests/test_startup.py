"""The start-up hook: BasicSR always imports, with the plugin, without it (SAN_PLUGIN_AUTOLOAD=0), or with a broken one.

Each case runs in a fresh interpreter, as a user's program would.
"""

import json

import pytest
from helpers.workflow import describe, run_python

pytestmark = pytest.mark.slow  # each case starts a fresh interpreter (about 7 s of imports)

# What a program sees of the plugin after ``import basicsr``: printed as JSON by the child process.
PROBE = """
import json, sys, warnings
warnings.simplefilter('always')
with warnings.catch_warnings(record=True) as caught:
    import basicsr
from basicsr.archs import build_network
from basicsr.models.base_model import BaseModel
from basicsr.models.realesrnet_model import RealESRNetModel
from basicsr.utils import options
from basicsr.utils.registry import ARCH_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY
net = build_network({'type': 'MSRResNet', 'num_feat': 4, 'num_block': 1, 'upscale': 2})
print(json.dumps({
    'plugin_loaded': 'san_plugin' in sys.modules,
    'SAN': 'SAN' in ARCH_REGISTRY, 'SANModel': 'SANModel' in MODEL_REGISTRY,
    'LPIPS': 'calculate_lpips' in METRIC_REGISTRY,
    'Broken': 'BrokenPluginNet' in ARCH_REGISTRY,
    'fixes': any(hasattr(fixed, 'san_plugin_fix') for fixed in (options.parse_options, BaseModel.model_to_device,
                                                                 RealESRNetModel.__init__)),
    'alias': 'torchvision.transforms.functional_tensor' in sys.modules,
    'heavy': sorted(m for m in ('mmengine', 'san_plugin.convert', 'san_plugin.benchmark', 'torchmetrics')
                    if m in sys.modules),
    'warnings': [f'{w.category.__name__}: {w.message}' for w in caught if 'san_plugin' in str(w.message)],
}))
"""

BROKEN_PLUGIN = """
from basicsr.utils.registry import ARCH_REGISTRY


@ARCH_REGISTRY.register()
class BrokenPluginNet:
    pass


raise RuntimeError('boom: a half-installed dependency')
"""


def probe(tmp_path, env=None):
    proc = run_python(['-c', PROBE], cwd=tmp_path, env=env)
    assert proc.returncode == 0, describe(proc)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_basicsr_loads_the_plugin_lazily(tmp_path):
    seen = probe(tmp_path)
    assert seen['plugin_loaded'] and seen['SAN'] and seen['SANModel'] and seen['LPIPS'] and seen['fixes']
    assert seen['alias']
    assert seen['heavy'] == [] and seen['warnings'] == []


def test_autoload_off_keeps_only_the_torchvision_alias(tmp_path):
    seen = probe(tmp_path, env={'SAN_PLUGIN_AUTOLOAD': '0'})
    assert seen == {'plugin_loaded': False, 'SAN': False, 'SANModel': False, 'LPIPS': False, 'Broken': False,
                    'fixes': False, 'alias': True, 'heavy': [], 'warnings': []}  # fmt: skip


def test_a_broken_plugin_leaves_basicsr_as_without_it_and_says_why(tmp_path):
    (tmp_path / 'shadow' / 'san_plugin').mkdir(parents=True)
    (tmp_path / 'shadow' / 'san_plugin' / '__init__.py').write_text(BROKEN_PLUGIN)
    seen = probe(tmp_path, env={'PYTHONPATH': str(tmp_path / 'shadow')})
    assert seen['warnings'] == [
        'SanPluginLoadWarning: san_plugin could not be loaded, so BasicSR runs without it (RuntimeError: boom: a '
        'half-installed dependency). See the traceback with: python -c "import san_plugin"; set '
        'SAN_PLUGIN_AUTOLOAD=0 to stop loading it.'
    ]
    assert not seen['plugin_loaded'] and not seen['Broken'] and not seen['fixes'] and seen['alias']


@pytest.mark.parametrize('scope', ['san_plugin.SAN', 'SAN'])
def test_mmengine_finds_the_plugin_scope_on_its_own(tmp_path, scope):
    code = (
        'import sys, san_plugin; from mmengine.registry import MODELS, DefaultScope; '
        "assert 'san_plugin.registry' not in sys.modules; "
        "DefaultScope.get_instance('t', scope_name='san_plugin'); "
        f"cfg = dict(type='{scope}', num_feat=16, squeeze_factor=4, num_group=1, num_block=1, upscale=2); "
        'print(type(MODELS.build(cfg)).__name__)'
    )
    proc = run_python(['-c', code], cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == 'SAN', describe(proc)
