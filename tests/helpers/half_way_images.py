"""Images whose MATLAB-bicubic x4 down-scaling lands exactly half-way between two integers, on every CPU.

There rounding half to even (NumPy's ``round``) and half away from zero (MATLAB's) disagree: ``k + 0.5`` with ``k``
even. Such values arise by chance in photographs (9 of 3.9 million LR pixels of 20 BSD200 images at x2, x3, x4), but
whether a given pixel lands on the half depends on the order in which the CPU sums the weighted pixels. These images
make it certain, with exact arithmetic:

- At x4, the weights of BasicSR's ``imresize`` are integers over 4096 (the cubic kernel at multiples of 1/8).
- In a window of 16 x 16 pixels that are 0 or 255 (0.0 or 1.0 after dividing by 255), the vertical pass sums
  weights, integers over 4096, and the horizontal pass sums products of those with weights, integers over 2**24.
  When the positive terms of an output add up to less than 1, and the negative ones to more than -1, every partial
  sum is a multiple of 2**-24 below 1 in magnitude: float32 holds it exactly, in any order of summation, with or
  without fused multiply-add. The output is exactly ``m / 2**24``.
- ``m`` is chosen so that ``float32(m / 2**24) * 255``, one correctly rounded float32 product as in
  :func:`san_plugin.data.images.bicubic_resize`, is ``k + 0.5`` with ``k`` even.

``m`` is reached with five columns of the window, each holding 255 on the rows whose vertical weights add up to
what that column needs (:func:`_solve`).
"""

import itertools

import cv2
import numpy as np
from basicsr.utils.matlab_functions import calculate_weights_indices

SCALE = 4
UNITS = 2**24  # the horizontal pass's output unit: 1 / (4096 * 4096)
SIZE = 48
# Outputs of a 48-pixel side whose 16 taps lie inside the image (no mirrored border) and do not overlap each other.
OUTPUTS = (2, 6)
COARSE_COLUMNS = (7, 8, 6)  # window columns of weights 987, 987, 745
FINE_COLUMNS = (4, 0)  # window columns of weights 93 and -7


def _window_weights():
    """The 16 integer weights (over 4096) of an interior output, and the first input pixel of each output's window."""
    weights, indices, pad_start, _ = calculate_weights_indices(SIZE, SIZE // SCALE, 1 / SCALE, 'cubic', 4, True)
    weights, indices = weights.numpy().astype(np.float64), indices.numpy().astype(int) - pad_start
    integers = np.rint(weights[OUTPUTS[0]] * 4096).astype(np.int64)
    for output in OUTPUTS:
        assert np.array_equal(weights[output] * 4096, integers), 'x4 weights are no longer integers over 4096'
        assert np.array_equal(indices[output], indices[output][0] + np.arange(16)) and indices[output][0] >= 0
    return integers, {output: int(indices[output][0]) for output in OUTPUTS}


def _half_way_targets():
    """Every ``m`` whose ``float32(m / 2**24) * 255`` is ``k + 0.5`` with ``k`` even, as NumPy computes it."""
    evens = np.arange(0, 255, 2)
    candidates = (np.rint((evens + 0.5) * UNITS / 255).astype(np.int64)[:, None] + np.arange(-2, 3)).ravel()
    values = (candidates.astype(np.float32) / np.float32(UNITS)) * 255.0
    whole = np.floor(values)
    return candidates[(values - whole == 0.5) & (whole % 2 == 0)]


def _row_subsets(weights):
    """Every sum of a subset of ``weights``, with one subset (a boolean mask over the rows) giving it."""
    masks = (np.arange(2 ** len(weights))[:, None] >> np.arange(len(weights))) & 1
    sums, first = np.unique(masks @ weights, return_index=True)
    return {int(total): masks[index].astype(bool) for total, index in zip(sums, first)}


def _solve(target, weights, subsets):
    """Vertical sums of the window's columns (by column) whose weighted sum is exactly ``target``.

    The columns of the largest weights (7, 8, 6) come nearest ``target`` one after the other; the columns of
    weights 93 and -7 (4 and 0) then make up the remainder exactly.
    """
    sums = np.array(sorted(subsets, key=abs))
    rest, picks = target, {}
    for column in COARSE_COLUMNS:
        picks[column] = int(sums[np.argmin(np.abs(rest - weights[column] * sums))])
        rest -= int(weights[column]) * picks[column]
    (fine, fine_weight), (last, last_weight) = ((column, int(weights[column])) for column in FINE_COLUMNS)
    for total in sums:
        numerator = rest - fine_weight * int(total)
        if numerator % last_weight == 0 and numerator // last_weight in subsets:
            return {**picks, fine: int(total), last: numerator // last_weight}
    raise AssertionError(f'no pattern of the window reaches {target}')


def half_way_image(seed=0):
    """A 48 x 48 BGR image with 12 exact half-way pixels in its MATLAB-bicubic x4 LR (4 per channel).

    Outside the 16 x 16 windows of those LR pixels it is a smooth random image.

    Args:
        seed (int): Seed of the background and of the choice of halves. Default: 0.

    Returns:
        tuple[ndarray, list[tuple[int, int, int]]]: The uint8 image, and the (row, column, channel) of the LR
        pixels that land half-way.
    """
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    img = cv2.resize(coarse, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
    weights, starts = _window_weights()
    subsets = _row_subsets(weights)
    targets = _half_way_targets()
    targets = targets[(targets > UNITS // 4) & (targets < UNITS * 3 // 4)]  # keeps the positive terms below 2**24
    hits = list(itertools.product(OUTPUTS, OUTPUTS, range(3)))
    for (row, column, channel), target in zip(hits, rng.choice(targets, size=len(hits), replace=False)):
        window = np.zeros((16, 16), np.uint8)
        for offset, total in _solve(int(target), weights, subsets).items():
            window[subsets[total], offset] = 255
        terms = weights * (weights @ (window // 255).astype(np.int64))  # exact, in units of 2**-24
        assert terms.sum() == target
        assert terms[terms > 0].sum() < UNITS and terms[terms < 0].sum() > -UNITS, 'a partial sum could round'
        img[starts[row] : starts[row] + 16, starts[column] : starts[column] + 16, channel] = window
    return img, hits
