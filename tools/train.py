"""Train with BasicSR's own training pipeline, with san_plugin's archs, models and fixes.

Same command line as BasicSR's ``basicsr/train.py``, e.g. (from the repository root)::

    python tools/train.py -opt options/train/train_SAN_x4_paper.yml [--auto_resume] [--debug] [--force_yml k:k=v]
    torchrun --nproc_per_node=4 tools/train.py -opt options/train/train_SAN_x4_paper.yml --launcher pytorch

``experiments/`` and ``tb_logger/`` are created in the current working directory, which is also what relative
dataset paths in option files are relative to.
"""

import sys

import san_plugin  # noqa: F401  (first: makes BasicSR importable on current torchvision, applies the plugin)

# isort: split
from basicsr.train import train_pipeline

from san_plugin.compat.entry_points import run_pipeline


def main(argv=None):
    """Run BasicSR's ``train_pipeline`` with ``argv`` (default: ``sys.argv[1:]``); see
    :func:`san_plugin.compat.entry_points.run_pipeline`."""
    return run_pipeline(train_pipeline, argv)


if __name__ == '__main__':
    sys.exit(main())
