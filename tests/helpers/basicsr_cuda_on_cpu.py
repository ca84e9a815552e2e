"""Test-only: BasicSR 1.4.2's own ``train.py`` with its two CUDA calls of ``load_resume_state`` pointed at the CPU.

BasicSR's resume maps the training state to ``torch.cuda.current_device()``, so on a machine without a GPU it cannot
resume at all. To compare the plugin's CPU resume with what BasicSR's own resume computes, this launcher makes
``torch.cuda.current_device()`` return 0 and a storage's ``.cuda()`` return the storage itself, then runs
``basicsr.train`` as ``__main__`` with the command-line arguments it was given. Nothing else changes.
"""

import runpy

import torch


def _stay_on_cpu(storage, *args, **kwargs):
    return storage


if __name__ == '__main__':
    torch.cuda.current_device = lambda: 0
    torch.UntypedStorage.cuda = _stay_on_cpu
    runpy.run_module('basicsr.train', run_name='__main__', alter_sys=True)
