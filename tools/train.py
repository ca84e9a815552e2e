"""Train with BasicSR's own training pipeline, with san_plugin's archs, models and fixes.

Same command line as BasicSR's ``basicsr/train.py``, e.g. (from the repository root)::

    python tools/train.py -opt options/train/train_SAN_x4_paper.yml [--auto_resume] [--debug] [--force_yml k:k=v]
    torchrun --nproc_per_node=4 tools/train.py -opt options/train/train_SAN_x4_paper.yml --launcher pytorch

``experiments/`` and ``tb_logger/`` are created in the current working directory, which is also what relative
dataset paths in option files are relative to.
"""

import os
import sys

import san_plugin  # noqa: F401  (first: makes BasicSR importable on current torchvision, applies the plugin)

# isort: split
from basicsr.train import train_pipeline

from san_plugin.compat.entry_points import OPTION_CHECK_ERRORS
from san_plugin.utils.cli import print_error


def main(argv=None):
    """Run BasicSR's ``train_pipeline`` with ``argv`` (default: ``sys.argv[1:]``) as its command line.

    An option that the plugin's start-up checks refuse (before anything is written: a ``network_*`` block, a ``path``
    value, missing ImageNet weights) ends with one line naming the options file and the key, and exit status 1;
    everything else is BasicSR's own behaviour.
    """
    command_line = sys.argv
    if argv is not None:
        sys.argv = [command_line[0], *argv]
    try:
        train_pipeline(os.getcwd())
    except OPTION_CHECK_ERRORS as error:
        print_error(error)
        return 1
    finally:
        sys.argv = command_line
    return 0


if __name__ == '__main__':
    sys.exit(main())
