"""What the command-line tools share: argument types that check a number's range, and the one-line error report.

A tool's usage errors (a malformed flag, a number out of range) are argparse's: the usage line, then one line naming
the flag, exit status 2. Every other user error (a missing or corrupt file, an unavailable device, a bad key of an
options file) is one line ``error: ...`` naming the file, flag or key, exit status 1.
"""

import argparse
import sys


def _integer(text, least):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not an integer') from None
    if value < least:
        raise argparse.ArgumentTypeError(f'{value} is not an integer >= {least}')
    return value


def positive_int(text):
    """``argparse`` type: an integer >= 1."""
    return _integer(text, 1)


def non_negative_int(text):
    """``argparse`` type: an integer >= 0."""
    return _integer(text, 0)


def non_negative_float(text):
    """``argparse`` type: a number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a number') from None
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f'{text} is not a number >= 0')
    return value


def print_error(error):
    """Print ``error: <message>`` to stderr on one line (a message that spans lines is joined).

    Args:
        error (BaseException): The error; a KeyError's message is its argument (``str`` would quote it).
    """
    message = error.args[0] if isinstance(error, KeyError) and error.args else error
    print(f'error: {" ".join(str(message).split())}', file=sys.stderr)
