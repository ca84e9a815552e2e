"""san_plugin.data.images: MATLAB rounding, one bicubic LR for data preparation and benchmarks, safe writing."""

import json

import numpy as np
import pytest
from basicsr.data.transforms import mod_crop
from basicsr.utils.matlab_functions import imresize
from conftest import load_tool
from helpers.half_way_images import half_way_image

from san_plugin.benchmark.datasets import load_dataset, parse_dataset_spec
from san_plugin.data.images import ImageError, bicubic_resize, matlab_round, read_image, write_image
from san_plugin.utils.atomic_save import is_temporary


def test_matlab_round_takes_halves_away_from_zero():
    below_half = np.nextafter(np.float32(0.5), np.float32(0))
    values = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 126.5, 254.5, below_half, 1.4999999], np.float32)
    rounded = matlab_round(values)
    assert rounded.dtype == np.float32
    assert rounded.tolist() == [-3, -2, -1, 1, 2, 3, 127, 255, 0, 1]


@pytest.mark.slow  # imports both tools (about 1 s on its own)
def test_prepare_data_and_quality_make_the_same_lr_from_hr(tmp_path):
    """``prepare_data.py benchmark`` writes, and ``benchmark.py quality`` makes from an HR-only folder, the same LR."""
    hr = tmp_path / 'HR'
    half, hits = half_way_image()
    write_image(hr / 'half.png', half)
    write_image(hr / 'smooth.png', np.ascontiguousarray(np.rot90(half, 1)[:43, :38]))  # not a multiple of 2, 3, 4
    # The construction lands exactly half-way between an even and an odd level at each hit, as computed here.
    unrounded = imresize(half.astype(np.float32) / 255.0, 1 / 4) * 255.0
    at_hits = np.array([unrounded[hit] for hit in hits])
    assert len(hits) == 12 and np.all(at_hits % 2 == 0.5)

    assert load_tool('prepare_data').main(
        ['benchmark', '--input', str(hr), '--name', 'Half', '--output-root', str(tmp_path), '--scales', '2', '3', '4',
         '--workers', '1']
    ) is None  # fmt: skip
    for scale in (2, 3, 4):
        made = load_dataset(parse_dataset_spec(f'made={hr}'), scale)
        assert [pair.name for pair in made] == ['half', 'smooth']
        for pair in made:
            written = read_image(tmp_path / 'Half' / 'LR_bicubic' / f'x{scale}' / f'{pair.name}.png')
            assert written.shape == pair.lr.shape and written.tobytes() == pair.lr.tobytes(), (scale, pair.name)
            assert np.array_equal(
                pair.lr, bicubic_resize(mod_crop(read_image(hr / f'{pair.name}.png'), scale), 1 / scale)
            )
    lr_x4 = load_dataset(parse_dataset_spec(f'made={hr}'), 4)[0].lr
    assert [int(lr_x4[hit]) for hit in hits] == (at_hits + 0.5).tolist()  # half away from zero; NumPy: to even

    # The quality tool's bicubic rows at x4 are then the same, image by image, from either LR.
    out = tmp_path / 'bench'
    prepared = f'{tmp_path}/Half/HR/x{{scale}}:{tmp_path}/Half/LR_bicubic/x{{scale}}'
    args = ['quality', '--no-progress', '--model', 'bicubic', '--dataset', f'made={hr}', '--dataset',
            f'prepared={prepared}', '--scale', '4', '--out', str(out)]  # fmt: skip
    assert load_tool('benchmark').main(args) == 0
    made_row, prepared_row = json.loads((out / 'results.json').read_text())
    assert (made_row['dataset'], prepared_row['dataset']) == ('made', 'prepared')
    for made_image, prepared_image in zip(made_row['per_image'], prepared_row['per_image'], strict=True):
        assert made_image['image'] == prepared_image['image']
        assert (made_image['psnr'], made_image['ssim']) == (prepared_image['psnr'], prepared_image['ssim'])


def test_write_image_refuses_what_it_cannot_encode_and_leaves_nothing(tmp_path):
    img = np.zeros((4, 5, 3), np.uint8)
    with pytest.raises(ImageError, match=r'cannot encode a uint8 image of shape \(4, 5, 3\) as .*out\.xyz'):
        write_image(tmp_path / 'out.xyz', img)
    assert list(tmp_path.iterdir()) == []
    write_image(tmp_path / 'sub' / 'out.png', img)
    assert np.array_equal(read_image(tmp_path / 'sub' / 'out.png'), img)
    assert not [path for path in tmp_path.rglob('*') if is_temporary(path.name)]
