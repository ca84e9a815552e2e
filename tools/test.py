"""Test (PSNR/SSIM, saved images) with BasicSR's own test pipeline, with san_plugin's archs, models and fixes.

Same command line as BasicSR's ``basicsr/test.py``, e.g. (from the repository root)::

    python tools/test.py -opt options/test/test_SAN_x4.yml

``results/<name>/`` is created in the current working directory, which is also what relative dataset and weight
paths in option files are relative to.
"""

import sys

import san_plugin  # noqa: F401  (first: makes BasicSR importable on current torchvision, applies the plugin)

# isort: split
from basicsr.test import test_pipeline

from san_plugin.compat.entry_points import run_pipeline


def main(argv=None):
    """Run BasicSR's ``test_pipeline`` with ``argv`` (default: ``sys.argv[1:]``); see
    :func:`san_plugin.compat.entry_points.run_pipeline`."""
    return run_pipeline(test_pipeline, argv)


if __name__ == '__main__':
    sys.exit(main())
