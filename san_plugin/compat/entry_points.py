"""BasicSR's option parsing, as its ``train.py`` and ``test.py`` call it, with the plugin's fixes around it."""

import functools
import os
import sys
from pathlib import Path

from basicsr.utils import get_root_logger

from san_plugin.compat.network_options import check_network_options
from san_plugin.compat.paths import check_path_options, output_root
from san_plugin.compat.resume import ResumeReport, load_resume_state
from san_plugin.compat.weights_check import check_weights
from san_plugin.utils.cli import print_error
from san_plugin.utils.network_options import NetworkOptionError


class OptionsCheckError(ValueError):
    """A path or ImageNet-weights option that the plugin's start-up checks refuse, before BasicSR writes anything."""


# What the start-up checks raise: the network check names the file itself; the others are named here.
OPTION_CHECK_ERRORS = (NetworkOptionError, OptionsCheckError)


def check_options(opt, source):
    """Run the plugin's start-up checks on options BasicSR parsed from the file ``source``.

    Raises:
        NetworkOptionError: A ``network_*`` section its arch cannot take.
        OptionsCheckError: A ``path`` value BasicSR cannot make a folder of, or ImageNet weights that are missing or
            bad; the message names ``source`` and the key.
    """
    check_network_options(opt, source)
    try:
        check_path_options(opt)
        check_weights(opt)
    except (ValueError, FileNotFoundError) as error:
        raise OptionsCheckError(f'{source}: {error}') from error


def _is_basicsr_train_pipeline(frame):
    """True if ``frame`` runs ``train_pipeline`` of a ``basicsr/train.py``, imported or run as ``__main__``."""
    code = frame.f_code
    return code.co_name == 'train_pipeline' and Path(code.co_filename).parts[-2:] == ('basicsr', 'train.py')


def wrap_parse_options(parse_options):
    """Wrap ``basicsr.utils.options.parse_options`` (BasicSR 1.4.2) with the plugin's fixes.

    The wrapper

    1. passes :func:`san_plugin.compat.paths.output_root` of ``root_path``, so that an installed BasicSR writes
       ``experiments/`` and ``results/`` under the current working directory instead of ``site-packages``;
    2. checks every ``network_*`` section (:func:`san_plugin.compat.network_options.check_network_options`), the
       ``path`` values BasicSR makes folders of (:func:`san_plugin.compat.paths.check_path_options`) and the
       ImageNet weights of perceptual losses and metrics (:func:`san_plugin.compat.weights_check.check_weights`),
       so that a bad option or a missing file stops the run before BasicSR creates any folder;
    3. when called by BasicSR's ``train_pipeline``, points that module's ``load_resume_state`` at the plugin's
       (:func:`san_plugin.compat.resume.load_resume_state`), which ``train_pipeline`` calls next, and its
       ``get_root_logger`` at one that also writes the checkpoints ``--auto_resume`` rejected into the run's log
       file (:class:`san_plugin.compat.resume.ResumeReport`). This is the one place that sees every way of running
       BasicSR's ``train.py``: ``python -m basicsr.train`` and a source checkout's ``python basicsr/train.py``
       execute the file as ``__main__``, a new module that only exists once it runs, while ``tools/train.py`` calls
       the imported ``basicsr.train``.

    Args:
        parse_options (callable): BasicSR's ``parse_options(root_path, is_train=True)``.

    Returns:
        callable: The wrapper, with the same signature and return value ``(opt, args)``.
    """

    @functools.wraps(parse_options)
    def parse_options_with_fixes(root_path, is_train=True):
        opt, args = parse_options(output_root(root_path), is_train)
        check_options(opt, args.opt)
        caller = sys._getframe(1)
        if _is_basicsr_train_pipeline(caller):
            report = ResumeReport()
            caller.f_globals['load_resume_state'] = functools.partial(load_resume_state, report=report)
            caller.f_globals['get_root_logger'] = report.wrap_get_root_logger(get_root_logger)
        return opt, args

    parse_options_with_fixes.san_plugin_fix = True
    return parse_options_with_fixes


def run_pipeline(pipeline, argv=None):
    """Run BasicSR's ``train_pipeline`` or ``test_pipeline`` with ``argv`` as its command line, for the plugin's
    ``tools/train.py`` and ``tools/test.py``.

    An option that the start-up checks refuse (before anything is written: a ``network_*`` block, a ``path`` value,
    missing ImageNet weights) ends with one line naming the options file and the key, and exit status 1; everything
    else is BasicSR's own behaviour.

    Args:
        pipeline (callable): ``basicsr.train.train_pipeline`` or ``basicsr.test.test_pipeline``.
        argv (list[str] | None): The command line without the program name. Default: ``sys.argv[1:]``.

    Returns:
        int: The exit status.
    """
    command_line = sys.argv
    if argv is not None:
        sys.argv = [command_line[0], *argv]
    try:
        pipeline(os.getcwd())
    except OPTION_CHECK_ERRORS as error:
        print_error(error)
        return 1
    finally:
        sys.argv = command_line
    return 0
