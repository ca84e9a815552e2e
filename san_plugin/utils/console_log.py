"""Show the plugin's log records on the console as plain lines, the way the tools print their progress.

The plugin's library code logs through :mod:`logging` (``logging.getLogger(__name__)``) and configures nothing; a
tool that shows progress calls :func:`log_to_console` for the loggers whose lines it shows. Code that runs inside a
BasicSR training run logs through BasicSR's ``get_root_logger`` instead: that is the run's log file.
"""

import logging
import sys


class ConsoleHandler(logging.Handler):
    """Writes each record's message alone on a line to the current ``sys.stdout`` and flushes it."""

    def emit(self, record):
        try:
            sys.stdout.write(self.format(record) + '\n')
            sys.stdout.flush()
        except Exception:  # noqa: BLE001  (logging's convention: a handler reports its own errors)
            self.handleError(record)


def log_to_console(*names):
    """Show the INFO records of the loggers ``names`` (and of their children) on the console, message only.

    Calling it again for the same logger adds no second handler.

    Args:
        *names (str): Logger names, e.g. ``'san_plugin.study'``.
    """
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(handler, ConsoleHandler) for handler in logger.handlers):
            logger.addHandler(ConsoleHandler())
        logger.setLevel(logging.INFO)
