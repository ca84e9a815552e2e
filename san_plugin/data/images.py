"""Image files for every tool of the plugin: list, read and write them, and resize them with MATLAB's bicubic.

Files are read with Python's own file functions and decoded in memory (``cv2.imdecode``); they are encoded in memory
(``cv2.imencode``) and written with :func:`san_plugin.utils.atomic_save.atomic_write_bytes`. ``cv2.imread`` and
``cv2.imwrite`` are never used: they crash the process (segmentation fault) on a file name that is not UTF-8.

Every problem with a file (missing, a folder, unreadable, empty, truncated, corrupt, not an image, a header claiming
more pixels than OpenCV decodes) raises :class:`ImageError`, whose one-line message names the file. What the C
libraries behind OpenCV print while decoding (libpng's ``libpng error: ...``, OpenCV's warnings) is discarded, so
that this message is all a user sees.
"""

import contextlib
import os
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
from basicsr.utils.matlab_functions import imresize

from san_plugin.utils.atomic_save import atomic_write_bytes

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')
READ_FLAGS = {'color': cv2.IMREAD_COLOR, 'unchanged': cv2.IMREAD_UNCHANGED}

_NATIVE_STDERR = threading.Lock()


class ImageError(ValueError):
    """A file that cannot be read, decoded or encoded as an image; the message names the file."""


def display_path(path):
    """``path`` as text that any terminal or log prints: bytes of the name that are not UTF-8 shown as ``\\xNN``.

    Args:
        path (str | Path): A path, possibly holding such bytes (Python decodes them to lone surrogates).

    Returns:
        str: E.g. ``photos/caf\\xe9.png`` for a name whose bytes are ``caf`` and latin-1 ``é``.
    """
    return os.fsencode(path).decode('utf-8', errors='backslashreplace')


def list_images(folder):
    """The entries of ``folder`` whose name ends with one of ``IMAGE_SUFFIXES`` (any case), sorted by name.

    Hidden names (``.x.png``, macOS's ``._x.png``) are left out, as BasicSR's ``scandir`` leaves them out; a folder
    named like an image is listed, so that reading it reports it.

    Args:
        folder (str | Path): An existing folder.

    Returns:
        list[Path]: The image paths.
    """
    return sorted(
        path
        for path in Path(folder).iterdir()
        if not path.name.startswith('.') and path.suffix.lower() in IMAGE_SUFFIXES
    )


@contextlib.contextmanager
def _native_stderr_discarded():
    """Send what C code writes to file descriptor 2 during the block to the null device."""
    with _NATIVE_STDERR:
        if sys.stderr is not None:
            sys.stderr.flush()  # what Python holds back is printed now, not lost
        saved = os.dup(2)
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(null)


def read_image(path, flag='color'):
    """Read and decode an image file.

    Args:
        path (str | Path): Image file.
        flag (str): 'color': uint8 BGR, (h, w, 3), as BasicSR's datasets read images (``cv2.IMREAD_COLOR``: grey
            becomes three equal channels, alpha is dropped, 16 bits become 8). 'unchanged': as stored
            (``cv2.IMREAD_UNCHANGED``): (h, w), (h, w, 3) BGR or (h, w, 4) BGRA, in the file's bit depth.
            Default: 'color'.

    Returns:
        ndarray: The image.
    """
    shown = display_path(path)
    try:
        content = Path(path).read_bytes()
    except IsADirectoryError:
        raise ImageError(f'{shown} is a folder, not an image file') from None
    except OSError as error:
        raise ImageError(f'cannot read {shown}: {error.strerror}') from None
    return decode_image(content, shown, flag)


def decode_image(content, name, flag='color'):
    """Decode the bytes of an image file (read from disk, an LMDB, ...).

    Args:
        content (bytes): The file's bytes.
        name (str): What to call the image in a message (its path, or an LMDB key and its database).
        flag (str): 'color' or 'unchanged', as for :func:`read_image`. Default: 'color'.

    Returns:
        ndarray: The image.
    """
    if not content:
        raise ImageError(f'{name} is empty (0 bytes), not an image')
    try:
        with _native_stderr_discarded():
            img = cv2.imdecode(np.frombuffer(content, np.uint8), READ_FLAGS[flag])
    except cv2.error as error:
        if 'CV_IO_MAX_IMAGE_PIXELS' in str(error):
            raise ImageError(
                f'{name}: its header claims more pixels than OpenCV decodes (2**30 unless the environment variable '
                'OPENCV_IO_MAX_IMAGE_PIXELS says otherwise); a corrupt header or too large an image'
            ) from None
        raise ImageError(f'{name} is not a readable image: {str(error).strip().splitlines()[-1]}') from None
    if img is None:
        raise ImageError(f'{name} is not a readable image (truncated, corrupt, or not an image OpenCV decodes)')
    return img


def write_image(path, img, params=()):
    """Encode ``img`` in the format of ``path``'s suffix and write it atomically, creating its folder.

    Args:
        path (str | Path): Destination, e.g. ``out/0001.png``.
        img (ndarray): Image as :func:`read_image` returns it.
        params (Sequence[int]): ``cv2.imencode`` parameters, e.g. ``(cv2.IMWRITE_PNG_COMPRESSION, 1)``. Default: ().
    """
    path = Path(path)
    try:
        ok, encoded = cv2.imencode(path.suffix, img, list(params))
    except cv2.error:
        ok = False
    if not ok:
        raise ImageError(f'cannot encode a {img.dtype} image of shape {img.shape} as {display_path(path)}')
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, encoded.tobytes())


def matlab_round(values):
    """Round to the nearest integer, halves away from zero, as MATLAB's ``round`` does (NumPy's rounds to even).

    Args:
        values (ndarray): Floating-point values.

    Returns:
        ndarray: The rounded values, same dtype.
    """
    whole = np.trunc(values)
    return whole + np.sign(values) * (np.abs(values - whole) >= 0.5)


def bicubic_resize(img, scale):
    """MATLAB ``imresize(img, scale, 'bicubic')`` of a uint8 image, as MATLAB returns it for uint8 input.

    BasicSR's port of MATLAB's ``imresize`` (antialiased when down-scaling) on ``img / 255``, times 255, rounded
    with :func:`matlab_round` and saturated to 0-255.

    Args:
        img (ndarray): (h, w, c) uint8 image.
        scale (float): Factor, e.g. 1 / 4 to down-scale an HR image cropped to a multiple of 4, or 4 to up-scale.

    Returns:
        ndarray: (ceil(h * scale), ceil(w * scale), c) uint8 image.
    """
    resized = imresize(img.astype(np.float32) / 255.0, scale) * 255.0
    return np.clip(matlab_round(resized), 0, 255).astype(np.uint8)
