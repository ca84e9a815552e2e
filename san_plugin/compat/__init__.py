"""Narrow run-time fixes for BasicSR 1.4.2, applied when ``san_plugin`` is imported; no BasicSR file is edited.

``san_plugin`` is imported right after ``basicsr`` (see ``_san_plugin_autoload``), before BasicSR's ``train.py`` or
``test.py`` runs as ``__main__``, so the fixes hold for ``python -m basicsr.train``, a source checkout's
``basicsr/train.py`` and ``tools/train.py`` alike:

- ``parse_options`` (:mod:`san_plugin.compat.entry_points`): outputs of an installed BasicSR go to the current
  working directory; ``network_*`` options are checked against the arch; BasicSR's training script gets the resume
  below.
- ``load_resume_state`` (:mod:`san_plugin.compat.resume`): resumes on CPU, loads states with ``weights_only=True``,
  and ``--auto_resume`` takes the newest complete checkpoint of the run.
- ``init_dist`` (:mod:`san_plugin.compat.dist`): Gloo without CUDA, so ``torchrun ... --launcher pytorch`` trains
  on CPU.

``SANModel`` (``model_type: SANModel``) adds atomic checkpoint writing and DDP on CPU on the model side.
"""

import sys

from basicsr.utils import dist_util, options

from san_plugin.compat.dist import init_dist
from san_plugin.compat.entry_points import wrap_parse_options


def _replace_in_basicsr(original, replacement):
    """Point every name in a loaded ``basicsr`` module that refers to ``original`` at ``replacement``.

    Functions are bound by ``from ... import`` in several modules (``basicsr.train``, ``basicsr.test``, the package
    itself through ``import *``), so replacing the one in the defining module is not enough.
    """
    for name, module in list(sys.modules.items()):
        if module is None or not (name == 'basicsr' or name.startswith('basicsr.')):
            continue
        for attr, value in list(vars(module).items()):
            if value is original:
                setattr(module, attr, replacement)


def apply_basicsr_fixes():
    """Install the fixes listed in this module's docstring; calling it again does nothing."""
    if getattr(options.parse_options, 'san_plugin_fix', False):
        return
    _replace_in_basicsr(options.parse_options, wrap_parse_options(options.parse_options))
    _replace_in_basicsr(dist_util.init_dist, init_dist)


apply_basicsr_fixes()
