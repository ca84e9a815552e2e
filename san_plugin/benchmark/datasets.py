"""Benchmark data sets: an HR folder with an LR folder, or LR made from the HR by MATLAB-compatible bicubic.

Spec ``NAME=HR_DIR[:LR_DIR]``; ``{scale}`` in a folder is replaced by the scale (``Set5=Set5/HR/x{scale}``). HR images
are cropped to a multiple of the scale (MATLAB ``modcrop``). LR files pair with HR files by name: the same stem, or
the stem followed by ``x{scale}`` (BasicSR's DIV2K naming).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from basicsr.data.transforms import mod_crop

from san_plugin.data.images import IMAGE_SUFFIXES, bicubic_resize, list_images, read_image


@dataclass
class DatasetSpec:
    """One data set of a benchmark.

    Args:
        name (str): Name shown in reports.
        hr_dir (str): HR folder, ``{scale}`` replaced by the scale.
        lr_dir (str | None): LR folder, or None to make LR from the HR by MATLAB bicubic.
        origin (str): Flag or option key of the spec, named in errors.
    """

    name: str
    hr_dir: str
    lr_dir: str | None = None
    origin: str = '--dataset'

    def folders(self, scale):
        """(HR folder, LR folder or None) at ``scale``; raises if one is missing."""
        folders = []
        for role, folder in (('HR', self.hr_dir), ('LR', self.lr_dir)):
            if folder is None:
                folders.append(None)
                continue
            path = Path(folder.format(scale=scale))
            if not path.is_dir():
                raise FileNotFoundError(f'{self.origin} {self.name}: {role} folder {path} does not exist')
            folders.append(path)
        return tuple(folders)


@dataclass
class ImagePair:
    """An HR image and its LR input, uint8 BGR (HxWx3) as OpenCV reads them."""

    name: str
    hr: np.ndarray
    lr: np.ndarray


def parse_dataset_spec(text, origin='--dataset'):
    """Parse ``NAME=HR_DIR[:LR_DIR]`` into a :class:`DatasetSpec`."""
    name, sep, folders = text.partition('=')
    if not sep or not name or not folders:
        raise ValueError(f'{origin} {text!r}: expected NAME=HR_DIR or NAME=HR_DIR:LR_DIR')
    hr_dir, _, lr_dir = folders.partition(':')
    return DatasetSpec(name, hr_dir, lr_dir or None, origin)


def images_by_stem(folder):
    """The images of ``folder`` (:func:`san_plugin.data.images.list_images`) by file name without suffix."""
    return {path.stem: path for path in list_images(folder)}


def pair_names(hr_files, lr_files, scale, spec, lr_dir):
    """Map each HR stem to its LR file; raises naming the unmatched files."""
    pairs, missing = {}, []
    for stem in hr_files:
        match = lr_files.get(stem) or lr_files.get(f'{stem}x{scale}')
        if match is None:
            missing.append(stem)
        else:
            pairs[stem] = match
    extra = sorted(set(lr_files) - {p.stem for p in pairs.values()})
    if missing or extra:
        raise ValueError(
            f'{spec.origin} {spec.name}: LR/HR name mismatch between {lr_dir} and the HR folder: '
            f'no LR for {missing[:5]}, no HR for {extra[:5]}'
        )
    return pairs


def load_dataset(spec, scale):
    """Load the image pairs of ``spec`` at ``scale``.

    Args:
        spec (DatasetSpec): The data set.
        scale (int): Upscaling factor.

    Returns:
        list[ImagePair]: Pairs in file-name order; HR modcropped, LR of exactly HR size / scale.
    """
    hr_dir, lr_dir = spec.folders(scale)
    hr_files = images_by_stem(hr_dir)
    if not hr_files:
        raise ValueError(f'{spec.origin} {spec.name}: HR folder {hr_dir} holds no images ({", ".join(IMAGE_SUFFIXES)})')
    lr_files = pair_names(hr_files, images_by_stem(lr_dir), scale, spec, lr_dir) if lr_dir else {}
    pairs = []
    for stem, hr_path in hr_files.items():
        hr = mod_crop(read_image(hr_path), scale)
        if lr_dir is None:
            lr = bicubic_resize(hr, 1 / scale)
        else:
            lr = read_image(lr_files[stem])
            if lr.shape[0] * scale != hr.shape[0] or lr.shape[1] * scale != hr.shape[1]:
                raise ValueError(
                    f'{spec.origin} {spec.name}: {lr_files[stem]} is {lr.shape[1]}x{lr.shape[0]} but {hr_path} '
                    f'cropped to a multiple of {scale} is {hr.shape[1]}x{hr.shape[0]}: wrong scale?'
                )
        pairs.append(ImagePair(stem, hr, lr))
    return pairs
