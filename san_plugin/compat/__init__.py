"""Narrow run-time fixes for BasicSR 1.4.2, applied by ``import san_plugin``; no BasicSR file is edited.

``san_plugin`` is imported right after ``basicsr`` (see ``_san_plugin_autoload``), before BasicSR's ``train.py`` or
``test.py`` runs as ``__main__``, so the fixes hold for ``python -m basicsr.train``, a source checkout's
``basicsr/train.py`` and ``tools/train.py`` alike:

- ``parse_options`` (:mod:`san_plugin.compat.entry_points`): outputs of an installed BasicSR go to the current
  working directory; ``network_*`` options are checked against the arch; the ImageNet weights of perceptual losses
  and metrics are checked (:mod:`san_plugin.compat.weights_check`); BasicSR's training script gets the resume
  below.
- ``load_resume_state`` (:mod:`san_plugin.compat.resume`): resumes on CPU, loads states with ``weights_only=True``,
  and ``--auto_resume`` takes the newest complete checkpoint of the run (chosen by rank 0 for every rank), or stops
  with the reasons when there are checkpoints and none is usable.
- ``init_dist`` (:mod:`san_plugin.compat.dist`): Gloo without CUDA, so ``torchrun ... --launcher pytorch`` and
  ``srun ... --launcher slurm`` start on CPU, and ``BaseModel.model_to_device`` (:mod:`san_plugin.compat.ddp`):
  DDP without a CUDA device there, so every BasicSR model trains that way.
- ``RealESRNetModel`` and ``RealESRGANModel`` (:mod:`san_plugin.compat.real_esr`): on the CPU, their JPEG simulator,
  sharpener and pool of training pairs go to the model's device instead of ``.cuda()``.

Nothing else of BasicSR changes; the README's compatibility table lists each difference and the runs it touches.
``SANModel`` and ``SANGANModel`` (``model_type``) add atomic checkpoint writing on the model side.
"""

import sys

from basicsr.utils import dist_util, options

from san_plugin.compat.ddp import apply_ddp_fix
from san_plugin.compat.dist import init_dist
from san_plugin.compat.entry_points import wrap_parse_options
from san_plugin.compat.real_esr import apply_real_esr_fix


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
    """Install the fixes listed in this module's docstring; calling it again does nothing.

    ``import san_plugin`` calls it last, after everything that could fail, so a plugin that fails to import leaves
    BasicSR's behaviour as it was.
    """
    if getattr(options.parse_options, 'san_plugin_fix', False):
        return
    _replace_in_basicsr(options.parse_options, wrap_parse_options(options.parse_options))
    _replace_in_basicsr(dist_util.init_dist, init_dist)
    apply_ddp_fix()
    apply_real_esr_fix()
