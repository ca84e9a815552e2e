"""Test (PSNR/SSIM, saved images) with BasicSR's own test pipeline, with san_plugin's archs, models and fixes.

Same command line as BasicSR's ``basicsr/test.py``, e.g. (from the repository root)::

    python tools/test.py -opt options/test/test_SAN_x4.yml

``results/<name>/`` is created in the current working directory, which is also what relative dataset and weight
paths in option files are relative to.
"""

import os
import sys

import san_plugin  # noqa: F401  (first: makes BasicSR importable on current torchvision, applies the plugin)

# isort: split
from basicsr.test import test_pipeline

from san_plugin.compat.entry_points import OPTION_CHECK_ERRORS
from san_plugin.utils.cli import print_error


def main(argv=None):
    """Run BasicSR's ``test_pipeline`` with ``argv`` (default: ``sys.argv[1:]``) as its command line.

    An option that the plugin's start-up checks refuse (before anything is written: a ``network_*`` block, a ``path``
    value, missing ImageNet weights) ends with one line naming the options file and the key, and exit status 1;
    everything else is BasicSR's own behaviour.
    """
    command_line = sys.argv
    if argv is not None:
        sys.argv = [command_line[0], *argv]
    try:
        test_pipeline(os.getcwd())
    except OPTION_CHECK_ERRORS as error:
        print_error(error)
        return 1
    finally:
        sys.argv = command_line
    return 0


if __name__ == '__main__':
    sys.exit(main())
