"""Prepare super-resolution data the way BasicSR reads it: MATLAB-bicubic LR, sub-images, LMDB and benchmark sets.

Training data (``prepare_train``), from a folder of HR images, under ``<output_root>/<name>/``::

    <name>_train_LR_bicubic/X{s}/<stem>.png                  MATLAB bicubic of modcrop(HR, s), per HR image
    <name>_train_HR_sub/<stem>_y0000_x0240.png                HR sub-images (crop_size square), named by position
    <name>_train_LR_bicubic/X{s}_sub/<stem>_y0000_x0240.png   their LR partners (crop_size / s), same names
    <name>_train_HR_sub.lmdb                                  the HR sub-images, with BasicSR's meta_info.txt
    <name>_train_LR_bicubic_X{s}_sub.lmdb                     the LR sub-images of scale s, same keys

Benchmark sets (``prepare_benchmark``), under ``<output_root>/<name>/``: ``HR/x{s}/<stem>.png`` (HR modcropped to a
multiple of s) and ``LR_bicubic/x{s}/<stem>.png`` (MATLAB bicubic of it).

Sub-image corners lie on a grid of ``CROP_ALIGN`` pixels (the least common multiple of the supported scales), so one
HR sub-image set serves every scale and scales can be added later. Every file and database is written under a
temporary name in its own folder and renamed when complete, so a killed run leaves nothing that looks finished, and a
re-run skips what is already complete. One run at a time writes an output folder: a second run on the same folder
stops with a message instead of overwriting the first one's files (:func:`exclusive_output`).
"""

import contextlib
import logging
import math
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import cv2
import lmdb
import numpy as np
import torch
from basicsr.data.transforms import mod_crop
from filelock import FileLock, Timeout
from tqdm import tqdm

from san_plugin.data.images import (
    IMAGE_SUFFIXES,
    ImageError,
    bicubic_resize,
    display_path,
    list_images,
    read_image,
    write_image,
)
from san_plugin.utils.atomic_save import atomic_path, is_temporary, remove_temporaries

SUPPORTED_SCALES = (2, 3, 4, 8)
CROP_ALIGN = math.lcm(*SUPPORTED_SCALES)
PNG_COMPRESSION = 1  # BasicSR's LMDB default: fast to decode while training
PNG_PARAMS = (cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION)
LMDB_BATCH = 1000
LOCK_NAME = '.prepare_data.lock'

logger = logging.getLogger(__name__)


class PrepareDataError(Exception):
    """A problem with the inputs or options of a data preparation run; the message names the file or option."""


def check_scales(scales):
    """Raise ``PrepareDataError`` unless ``scales`` is a non-empty list of supported scales.

    Args:
        scales (list[int]): Scale factors.

    Returns:
        list[int]: The scales, sorted and without repeats.
    """
    if not scales:
        raise PrepareDataError('--scales is empty; give at least one of 2, 3, 4, 8')
    for scale in scales:
        if scale not in SUPPORTED_SCALES:
            raise PrepareDataError(f'scale {scale} in --scales is not supported; choose from 2, 3, 4, 8')
    return sorted(set(scales))


def list_input_images(folder):
    """The images of an input folder (``--input``), checked: the folder exists, holds images, no two share a stem.

    Args:
        folder (str | Path): Input folder.

    Returns:
        list[Path]: Its images (:func:`san_plugin.data.images.list_images`).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise PrepareDataError(f'input folder {display_path(folder)} (--input) does not exist or is not a folder')
    paths = list_images(folder)
    if not paths:
        raise PrepareDataError(
            f'no images ({", ".join(IMAGE_SUFFIXES)}) in input folder {display_path(folder)} (--input)'
        )
    by_stem = {}
    for path in paths:
        if path.stem in by_stem:
            raise PrepareDataError(
                f'{display_path(by_stem[path.stem])} and {display_path(path)} would both be written as '
                f'{display_path(path.stem)}.png'
            )
        by_stem[path.stem] = path
    return paths


def write_png(path, img):
    """Write ``img`` as a PNG at ``path`` with BasicSR's LMDB compression (:func:`san_plugin.data.images.write_image`).

    Args:
        path (Path): Destination (its folder is created).
        img (ndarray): uint8 image.
    """
    write_image(path, img, PNG_PARAMS)


def read_complete_image(path, shape):
    """The image at ``path`` if it exists, decodes, and has ``shape`` (h, w, c); else None."""
    if not path.is_file():
        return None
    try:
        img = read_image(path)
    except ImageError:
        return None
    return img if img.shape == tuple(shape) else None


def crop_starts(length, crop_size, step, thresh_size):
    """Sub-image start positions along one side, BasicSR style, on a grid of ``CROP_ALIGN`` pixels.

    A window every ``step`` pixels, plus one flush with the end (moved back onto the grid) when more than
    ``thresh_size`` pixels would otherwise be left out.

    Args:
        length (int): Side length of the image.
        crop_size (int): Side length of a sub-image.
        step (int): Distance between windows.
        thresh_size (int): Largest left-over that is dropped.

    Returns:
        list[int]: Start positions, increasing; empty when the side is shorter than ``crop_size``.
    """
    starts = list(range(0, length - crop_size + 1, step))
    if starts and length - (starts[-1] + crop_size) > thresh_size:
        last = (length - crop_size) // CROP_ALIGN * CROP_ALIGN
        if last > starts[-1]:
            starts.append(last)
    return starts


def _single_thread():
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


class _ImageMap:
    """``[func(item) for item in items]`` with a progress bar, over one pool of ``workers`` processes for a whole run.

    The pool starts at the first map with more than one item and serves every later one (each spawned worker imports
    the plugin, seconds each); it stops when the ``with`` block ends. With ``workers`` 1 everything runs here.

    Args:
        workers (int): Processes; 1 or less maps in this process.
    """

    def __init__(self, workers):
        self.workers = workers
        self.pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()

    def __call__(self, func, items, desc):
        if self.workers <= 1 or len(items) <= 1:
            results = map(func, items)
        else:
            if self.pool is None:
                # Spawned, not forked: a worker forked from a process whose thread pools are running (after
                # torch.compile, for one) can hang for ever in its first torch call.
                self.pool = get_context('spawn').Pool(self.workers, initializer=_single_thread)
            results = self.pool.imap(func, items)
        # Closed on an error too, so that the bar ends its line before the error's message.
        with tqdm(results, total=len(items), desc=desc, unit='image') as progress:
            return list(progress)


def _image_shape(path):
    return read_image(path).shape


def train_lmdb_path(output_root, name, scale):
    """Where ``prepare_train`` puts one LMDB.

    Args:
        output_root (str | Path): Output root, e.g. ``datasets``.
        name (str): Data set name, e.g. ``DIV2K``.
        scale (int): 1 for the HR sub-images, else the LR scale.

    Returns:
        Path: ``<output_root>/<name>/<name>_train_HR_sub.lmdb`` or ``.../<name>_train_LR_bicubic_X<scale>_sub.lmdb``.
    """
    kind = 'HR' if scale == 1 else f'LR_bicubic_X{scale}'
    return Path(output_root) / name / f'{name}_train_{kind}_sub.lmdb'


class SubImageSet:
    """One LMDB of sub-images (HR when ``scale`` is 1) and the folders it is made from.

    Args:
        output_root (str | Path): Output root.
        name (str): Data set name.
        scale (int): 1 for HR, else the LR scale.
        crop_size (int): HR sub-image size; this set's sub-images are ``crop_size // scale``.
    """

    def __init__(self, output_root, name, scale, crop_size):
        self.scale = scale
        self.crop_size = crop_size // scale
        self.lmdb_path = train_lmdb_path(output_root, name, scale)
        root = Path(output_root) / name
        if scale == 1:
            self.full_folder = None
            self.sub_folder = root / f'{name}_train_HR_sub'
        else:
            self.full_folder = root / f'{name}_train_LR_bicubic' / f'X{scale}'
            self.sub_folder = root / f'{name}_train_LR_bicubic' / f'X{scale}_sub'

    def meta_info(self, keys):
        """BasicSR's meta_info.txt lines for ``keys``: ``<key>.png (h,w,c) <compression level>``."""
        return [f'{key}.png ({self.crop_size},{self.crop_size},3) {PNG_COMPRESSION}' for key in keys]

    def source_image(self, hr, stem):
        """The whole image this set crops from: ``hr`` itself, or its LR (read back if complete, else made)."""
        if self.scale == 1:
            return hr
        path = self.full_folder / f'{stem}.png'
        shape = (hr.shape[0] // self.scale, hr.shape[1] // self.scale, hr.shape[2])
        low = read_complete_image(path, shape)
        if low is not None:
            return low
        low = bicubic_resize(mod_crop(hr, self.scale), 1 / self.scale)
        write_png(path, low)
        return low


def _sub_image_keys(stem, boxes):
    """Sub-image names: the HR image's stem and the HR position of the top-left corner, e.g. ``0001_y0240_x0480``.

    A name says where its pixels come from, so sub-images left by a run with another ``step`` are never taken for
    this run's.
    """
    return [f'{stem}_y{top:04d}_x{left:04d}' for top, left in boxes]


def _make_sub_images(job, sets):
    """Write the whole LR images and sub-images of one HR image for ``sets``, keeping those that are complete."""
    path, boxes = job
    keys = _sub_image_keys(path.stem, boxes)
    hr = None
    for image_set in sets:
        size = image_set.crop_size
        files = [image_set.sub_folder / f'{key}.png' for key in keys]
        todo = [(box, file) for box, file in zip(boxes, files) if read_complete_image(file, (size, size, 3)) is None]
        if not todo:
            continue
        if hr is None:
            hr = read_image(path)
        source = image_set.source_image(hr, path.stem)
        for (top, left), file in todo:
            top, left = top // image_set.scale, left // image_set.scale
            write_png(file, np.ascontiguousarray(source[top : top + size, left : left + size]))


def lmdb_is_complete(lmdb_path, meta_lines):
    """Whether ``lmdb_path`` holds exactly ``meta_lines`` in its meta_info.txt and as many entries in its data.

    Args:
        lmdb_path (Path): LMDB folder.
        meta_lines (list[str]): Expected meta_info.txt lines.

    Returns:
        bool: True if complete.
    """
    meta = lmdb_path / 'meta_info.txt'
    if not (lmdb_path / 'data.mdb').is_file() or not meta.is_file():
        return False
    if meta.read_text(encoding='ascii', errors='replace').splitlines() != meta_lines:
        return False
    try:
        env = lmdb.open(str(lmdb_path), readonly=True, lock=False)
    except lmdb.Error:
        return False
    try:
        return env.stat()['entries'] == len(meta_lines)
    finally:
        env.close()


def write_lmdb(lmdb_path, files, keys, meta_lines):
    """Pack image files, as they are, into an LMDB that BasicSR's ``lmdb`` io_backend reads.

    The database is written under a temporary name (:func:`san_plugin.utils.atomic_save.atomic_path`) and renamed to
    ``lmdb_path`` only after it has been re-opened and its entries counted against ``meta_lines``; an incomplete
    database at ``lmdb_path`` from an earlier run is replaced.

    Args:
        lmdb_path (Path): Final LMDB folder (ends with ``.lmdb``).
        files (list[Path]): PNG files.
        keys (list[str]): LMDB key of each file.
        meta_lines (list[str]): meta_info.txt lines, one per key.
    """
    map_size = sum(file.stat().st_size for file in files) * 2 + len(files) * 16384 + 2**24
    with atomic_path(lmdb_path, replace_folder=True) as partial_path:
        env = lmdb.open(str(partial_path), map_size=map_size)
        try:
            txn = env.begin(write=True)
            entries = tqdm(zip(keys, files), total=len(keys), desc=f'LMDB {lmdb_path.name}', unit='image')
            for index, (key, file) in enumerate(entries):
                txn.put(key.encode('ascii'), file.read_bytes())
                if (index + 1) % LMDB_BATCH == 0:
                    txn.commit()
                    txn = env.begin(write=True)
            txn.commit()
        finally:
            env.close()
        (partial_path / 'meta_info.txt').write_text(''.join(f'{line}\n' for line in meta_lines), encoding='ascii')
        if not lmdb_is_complete(partial_path, meta_lines):
            raise RuntimeError(f'{partial_path} does not hold the {len(keys)} entries written to it')


@contextlib.contextmanager
def exclusive_output(root):
    """Hold the output folder ``root`` for this run alone, and clear what killed runs left in it.

    Two runs writing the same outputs would replace each other's files and databases under their feet. The first run
    takes an exclusive lock on ``<root>/.prepare_data.lock`` with the ``filelock`` package (an operating-system lock,
    released by the system when the run ends, killed or not); a second run stops at once with a message naming the
    folder. While it holds the lock, the run removes the temporary files and folders
    (:func:`san_plugin.utils.atomic_save.is_temporary`) that killed runs left below ``root``.

    Args:
        root (Path): The output folder, ``<output_root>/<name>``; created if missing.
    """
    root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(root / LOCK_NAME, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise PrepareDataError(
            f'another prepare_data run is writing {display_path(root)} (it holds {display_path(root / LOCK_NAME)}); '
            'wait for it to finish, then run this command again: it will skip what is complete'
        ) from None
    try:
        for folder in [root, *(path for path in root.rglob('*') if path.is_dir() and not is_temporary(path.name))]:
            remove_temporaries(folder)
        yield
    finally:
        lock.release()


def _check_train_options(crop_size, step, thresh_size):
    for flag, value in (('--crop-size', crop_size), ('--step', step)):
        if value <= 0 or value % CROP_ALIGN:
            raise PrepareDataError(
                f'{flag} {value} must be a positive multiple of {CROP_ALIGN}, so that every HR sub-image has an exact '
                f'LR partner at each scale {SUPPORTED_SCALES}'
            )
    if thresh_size < 0:
        raise PrepareDataError(f'--thresh-size {thresh_size} must be 0 or more')


def _check_keys(paths):
    for path in paths:
        stem = path.stem
        if not stem.isascii() or '.' in stem or any(char.isspace() for char in stem):
            raise PrepareDataError(
                f'{display_path(path)}: LMDB keys are the file names without extension and must be ASCII with no '
                'dots or spaces; rename the file'
            )


def prepare_train(
    input_folder,
    name='DIV2K',
    output_root='datasets',
    scales=SUPPORTED_SCALES,
    crop_size=480,
    step=240,
    thresh_size=0,
    workers=1,
):
    """Make the training LMDBs (HR sub-images and their MATLAB-bicubic LR partners) from a folder of HR images.

    Every input is decoded before anything is written. An LMDB that is already complete for these inputs and settings
    is skipped; sub-images and whole LR images already on disk are reused when they decode with the right size.

    Args:
        input_folder (str | Path): Folder of HR images (e.g. ``DIV2K_train_HR``).
        name (str): Data set name, the prefix of every output. Default: 'DIV2K'.
        output_root (str | Path): Root of the output; files go to ``<output_root>/<name>``. Default: 'datasets'.
        scales (list[int]): LR scales, among 2, 3, 4, 8. Default: all four.
        crop_size (int): HR sub-image size, a multiple of 24. Default: 480.
        step (int): Distance between sub-images, a multiple of 24. Default: 240.
        thresh_size (int): A left-over strip at the bottom or right up to this size gets no sub-image of its own.
            Default: 0.
        workers (int): Processes that decode, resize and crop in parallel. Default: 1.

    Returns:
        dict[int, Path]: The LMDB of the HR sub-images (key 1) and of each scale's LR sub-images (key: scale).
    """
    scales = check_scales(scales)
    _check_train_options(crop_size, step, thresh_size)
    paths = list_input_images(input_folder)
    _check_keys(paths)
    with _ImageMap(min(workers, len(paths))) as image_map:
        shapes = image_map(_image_shape, paths, 'Check HR images')
        boxes = {}
        for path, (height, width, _) in zip(paths, shapes):
            tops, lefts = (crop_starts(side, crop_size, step, thresh_size) for side in (height, width))
            boxes[path] = [(top, left) for top in tops for left in lefts]
            if not boxes[path]:
                logger.warning(
                    '%s (%dx%d) is smaller than --crop-size %d: no sub-images', path, width, height, crop_size
                )
        keys = [key for path in paths for key in _sub_image_keys(path.stem, boxes[path])]
        if not keys:
            raise PrepareDataError(
                f'no image in {display_path(input_folder)} is at least {crop_size}x{crop_size} (--crop-size)'
            )
        with exclusive_output(Path(output_root) / name):
            return _write_train_sets(paths, boxes, keys, name, output_root, scales, crop_size, image_map)


def _write_train_sets(paths, boxes, keys, name, output_root, scales, crop_size, image_map):
    """The writing part of :func:`prepare_train`, run while the output folder is held."""
    keys_sorted = sorted(keys)
    sets = [SubImageSet(output_root, name, scale, crop_size) for scale in [1, *scales]]
    todo = []
    for image_set in sets:
        if lmdb_is_complete(image_set.lmdb_path, image_set.meta_info(keys_sorted)):
            logger.info('Skipped %s: already complete (%d sub-images)', image_set.lmdb_path, len(keys))
        else:
            todo.append(image_set)
    if todo:
        image_map(partial(_make_sub_images, sets=todo), [(path, boxes[path]) for path in paths], 'Sub-images')
    for image_set in todo:
        files = [image_set.sub_folder / f'{key}.png' for key in keys_sorted]
        write_lmdb(image_set.lmdb_path, files, keys_sorted, image_set.meta_info(keys_sorted))
        logger.info('Wrote %s (%d sub-images)', image_set.lmdb_path, len(keys))
    return {image_set.scale: image_set.lmdb_path for image_set in sets}


def _make_benchmark_image(path, root, scales):
    """Write the missing modcropped HR and LR images of one benchmark image; return how many files were written."""
    hr = read_image(path)
    written = 0
    for scale in scales:
        cropped = mod_crop(hr, scale)
        hr_file = root / 'HR' / f'x{scale}' / f'{path.stem}.png'
        lr_file = root / 'LR_bicubic' / f'x{scale}' / f'{path.stem}.png'
        if read_complete_image(hr_file, cropped.shape) is None:
            write_png(hr_file, cropped)
            written += 1
        lr_shape = (cropped.shape[0] // scale, cropped.shape[1] // scale, cropped.shape[2])
        if read_complete_image(lr_file, lr_shape) is None:
            write_png(lr_file, bicubic_resize(cropped, 1 / scale))
            written += 1
    return written


def prepare_benchmark(input_folder, name, output_root='datasets', scales=SUPPORTED_SCALES, workers=1):
    """Make a benchmark set: per scale, the HR images modcropped to a multiple of it and their MATLAB-bicubic LR.

    Every input is decoded before anything is written; outputs that already decode with the right size are kept.

    Args:
        input_folder (str | Path): Folder of HR images (e.g. Set5's originals).
        name (str): Set name; files go to ``<output_root>/<name>/HR/x{s}`` and ``<output_root>/<name>/LR_bicubic/x{s}``.
        output_root (str | Path): Root of the output. Default: 'datasets'.
        scales (list[int]): Scales, among 2, 3, 4, 8. Default: all four.
        workers (int): Processes that resize in parallel. Default: 1.

    Returns:
        Path: ``<output_root>/<name>``.
    """
    scales = check_scales(scales)
    paths = list_input_images(input_folder)
    root = Path(output_root) / name
    with _ImageMap(min(workers, len(paths))) as image_map:
        image_map(_image_shape, paths, 'Check HR images')
        with exclusive_output(root):
            written = image_map(partial(_make_benchmark_image, root=root, scales=scales), paths, f'Benchmark {name}')
    total = 2 * len(scales) * len(paths)
    logger.info('%s: wrote %d images, skipped %d already complete', root, sum(written), total - sum(written))
    return root
