"""The figures of the benchmarks and study reports, drawn from constructed data: what each holds (points, lines,
legend, labels, colours), the crop grid's pixels, and the PNG files written."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.markers import MarkerStyle

from san_plugin.benchmark.figures import (
    DPI,
    PALETTE,
    crop_grid,
    crop_zoom,
    network_colours,
    plot_curves,
    plot_perception_distortion,
    plot_psnr_latency,
    save_figure,
)

POINTS = [
    {'model': 'bicubic', 'psnr': 30.5, 'latency_ms': None, 'params': None},
    {'model': 'SAN', 'psnr': 33.25, 'latency_ms': 120.0, 'params': 1_600_000},
    {'model': 'RCAN', 'psnr': 33.0, 'latency_ms': 60.0, 'params': 400_000},
]
# Two seeds per network, RCAN first: another order than POINTS'.
SERIES = [
    ('RCAN', [(10, 28.0), (20, 30.5), (30, 31.0)]),
    ('SAN', [(10, 27.5), (20, 30.0), (30, 31.5)]),
    ('RCAN', [(10, 28.2), (20, 30.1), (30, 31.2)]),
    ('SAN', [(10, 27.9), (20, 30.4), (30, 31.3)]),
]
RUNS = [
    {'run': 'san_psnr', 'network': 'SAN', 'psnr': 32.0, 'perceptual': 5.5, 'psnr_run': None},
    {'run': 'san_gan', 'network': 'SAN', 'psnr': 30.5, 'perceptual': 3.5, 'psnr_run': 'san_psnr'},
    {'run': 'rcan_psnr', 'network': 'RCAN', 'psnr': 31.8, 'perceptual': 5.8, 'psnr_run': None},
    {'run': 'rcan_gan', 'network': 'RCAN', 'psnr': 30.1, 'perceptual': 3.9, 'psnr_run': 'rcan_psnr'},
    {'run': 'rcan_psnr_2', 'network': 'RCAN', 'psnr': 31.7, 'perceptual': 5.9, 'psnr_run': None},
]


def legend_texts(fig):
    (legend,) = fig.legends
    return [text.get_text() for text in legend.get_texts()]


def read_png(path):
    """The written file's pixels as BGR (its alpha channel, opaque, dropped)."""
    assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img.shape[2] == 4 and (img[..., 3] == 255).all()
    return img[..., :3]


def test_network_colours_keep_the_references_and_give_each_network_its_own():
    colours = network_colours(['SAN', 'bicubic', 'RCAN', 'SAN', *[f'net{i}' for i in range(9)]])
    assert colours['HR'] == '#000000' and colours['bicubic'] == '#696969'
    assert [colours[name] for name in ('SAN', 'RCAN', 'net0')] == PALETTE[:3]
    assert colours['net8'] == PALETTE[0]  # the eleventh network: the palette again
    assert len(set(PALETTE)) == len(PALETTE) == 10 and not set(PALETTE) & {'#000000', '#696969'}


def test_psnr_latency_has_a_bubble_per_model_sized_by_its_parameters(tmp_path):
    colours = network_colours(['SAN', 'RCAN'])
    fig = plot_psnr_latency(POINTS, 'Set5 x2', size=(900, 600), colours=colours)
    (ax,) = fig.axes
    assert (fig.get_suptitle(), ax.get_xlabel(), ax.get_ylabel()) == ('Set5 x2', 'latency (ms)', 'PSNR (dB)')
    assert legend_texts(fig) == ['bicubic (30.50 dB)', 'SAN, 1.60 M params', 'RCAN, 400.0 k params']
    bubbles = ax.collections
    assert [tuple(b.get_offsets()[0]) for b in bubbles] == [(120.0, 33.25), (60.0, 33.0)]
    assert [b.get_sizes()[0] for b in bubbles] == [1500.0, 375.0]  # area proportional to the parameters
    assert [to_hex(b.get_facecolor()[0]) for b in bubbles] == [colours['SAN'], colours['RCAN']]
    (bicubic,) = ax.lines
    assert list(bicubic.get_ydata()) == [30.5, 30.5] and bicubic.get_linestyle() == '--'
    assert to_hex(bicubic.get_color()) == colours['bicubic']
    assert ax.get_xlim()[0] == 0
    path = tmp_path / 'psnr_latency.png'
    save_figure(path, fig)
    assert read_png(path).shape == (600, 900, 3)
    assert [p.name for p in tmp_path.iterdir()] == ['psnr_latency.png']


def test_curves_have_one_line_per_series_and_one_legend_entry_per_label():
    fig = plot_curves(SERIES, 'Set5 x2', 'iteration', 'PSNR (dB)')
    (ax,) = fig.axes
    assert (fig.get_suptitle(), ax.get_xlabel(), ax.get_ylabel()) == ('Set5 x2', 'iteration', 'PSNR (dB)')
    assert legend_texts(fig) == ['RCAN', 'SAN']
    assert [list(zip(line.get_xdata(), line.get_ydata())) for line in ax.lines] == [points for _, points in SERIES]
    rcan, san = PALETTE[:2]  # in the order of first appearance
    assert [to_hex(line.get_color()) for line in ax.lines] == [rcan, san, rcan, san]


def test_a_network_has_one_colour_in_every_figure_of_a_report():
    colours = network_colours(['SAN', 'RCAN'])
    curves = plot_curves(SERIES, 't', 'iteration', 'PSNR (dB)', colours=colours).axes[0]
    bubbles = plot_psnr_latency(POINTS, 't', colours=colours).axes[0]
    runs = plot_perception_distortion(RUNS, 't', 'NIQE', colours=colours).axes[0]
    by_label = {label: to_hex(line.get_color()) for (label, _), line in zip(SERIES, curves.lines)}
    assert by_label == {'SAN': colours['SAN'], 'RCAN': colours['RCAN']} and colours['SAN'] != colours['RCAN']
    assert [to_hex(b.get_facecolor()[0]) for b in bubbles.collections] == [colours['SAN'], colours['RCAN']]
    assert [to_hex(p.get_facecolor()[0]) for p in runs.collections] == [colours[run['network']] for run in RUNS]


def test_a_failed_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / 'convergence_iter_x2.png'
    path.write_bytes(b'previous figure')
    fig = plot_curves(SERIES, 'Set5 x2', 'iteration', 'PSNR (dB)')

    def fail_halfway(self, fname, **kwargs):
        Path(fname).write_bytes(b'half a PNG')
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(Figure, 'savefig', fail_halfway)
    with pytest.raises(OSError, match=f'Cannot write {path}'):
        save_figure(path, fig)
    assert path.read_bytes() == b'previous figure' and list(tmp_path.iterdir()) == [path]


def test_curves_without_points_have_no_legend():
    fig = plot_curves([], 'Set5 x2', 'iteration', 'PSNR (dB)')
    assert len(fig.legends) == 0 and len(fig.axes[0].lines) == 0


def test_perception_distortion_joins_each_gan_run_to_its_psnr_run(tmp_path):
    fig = plot_perception_distortion(RUNS, 'Set14 x4', 'NIQE (lower is better)', size=(800, 500))
    (ax,) = fig.axes
    assert (fig.get_suptitle(), ax.get_xlabel(), ax.get_ylabel()) == ('Set14 x4', 'PSNR (dB)', 'NIQE (lower is better)')
    points = [tuple(p.get_offsets()[0]) for p in ax.collections]
    assert points == [(run['psnr'], run['perceptual']) for run in RUNS]
    triangle = MarkerStyle('^')
    triangle = triangle.get_path().transformed(triangle.get_transform()).vertices
    stages = ['GAN' if np.array_equal(p.get_paths()[0].vertices, triangle) else 'PSNR' for p in ax.collections]
    assert stages == ['PSNR', 'GAN', 'PSNR', 'GAN', 'PSNR']
    joins = [list(zip(line.get_xdata(), line.get_ydata())) for line in ax.lines]
    assert joins == [[(32.0, 5.5), (30.5, 3.5)], [(31.8, 5.8), (30.1, 3.9)]]
    assert legend_texts(fig) == ['SAN', 'RCAN', 'PSNR stage', 'GAN stage']
    path = tmp_path / 'perception_distortion.png'
    save_figure(path, fig)
    assert read_png(path).shape == (500, 800, 3)


def test_perception_distortion_names_an_unknown_psnr_run():
    runs = [*RUNS, {'run': 'drln_gan', 'network': 'DRLN', 'psnr': 29.0, 'perceptual': 4.0, 'psnr_run': 'drln_psnr'}]
    with pytest.raises(ValueError, match="run 'drln_gan': its psnr_run 'drln_psnr' is not one of the runs"):
        plot_perception_distortion(runs, 't', 'NIQE')


def test_a_model_missing_from_the_colours_is_named():
    with pytest.raises(KeyError, match=r"no colour for 'RCAN': the colours given are for \['HR', 'SAN', 'bicubic'\]"):
        plot_psnr_latency(POINTS, 't', colours=network_colours(['SAN']))


@pytest.mark.parametrize('size, zoom', [(20, 12), (100, 2), (300, 1)])
def test_crop_zoom_is_whole_and_fills_at_most_256_pixels(size, zoom):
    assert crop_zoom(size) == zoom


def test_crop_grid_holds_every_crop_pixel_exact(tmp_path):
    rng = np.random.default_rng(0)
    labels = ['HR', 'bicubic', 'SAN', 'RCAN', 'DRLN', 'SAN-first-order']
    images = {label: rng.integers(0, 256, (60, 80, 3), dtype=np.uint8) for label in labels}
    x, y, size = 50, 33, 20  # zoomed x12: 240 pixels a side
    captions = {'bicubic': '30.50 dB / 0.9000', 'SAN': '33.25 dB / 0.9300'}
    colours = network_colours(['SAN', 'RCAN', 'DRLN', 'SAN-first-order'])
    fig = crop_grid(images, (x, y, size), captions, columns=4, colours=colours)
    path = tmp_path / 'crops.png'
    save_figure(path, fig)
    png = read_png(path)
    tile, gap, rows = 240, 8, 2  # overview and six crops on two rows of four
    assert png.shape[1] == 4 * (tile + gap) + gap and png.shape[0] > rows * (tile + gap)
    assert png.shape[:2] == (round(fig.get_figheight() * DPI), round(fig.get_figwidth() * DPI))
    overview, *crops = fig.images
    assert len(crops) == len(labels)
    for crop, (label, img) in zip(crops, images.items()):
        top = png.shape[0] - crop.oy - tile
        expected = img[y : y + size, x : x + size].repeat(12, axis=0).repeat(12, axis=1)
        assert np.array_equal(png[top : top + tile, crop.ox : crop.ox + tile], expected), label
    assert [crop.ox for crop in crops] == [gap + (i % 4) * (tile + gap) for i in range(1, 7)]
    assert (overview.ox, png.shape[0] - overview.oy - overview.get_array().shape[0]) == (gap, gap)
    (box,) = fig.artists  # on the overview (80 pixels wide shown in 240: x3), in pixels from the bottom left
    assert np.allclose(box.get_window_extent().bounds, (gap + 3 * x, png.shape[0] - gap - 3 * (y + size), 60, 60))
    texts = {text.get_text(): to_hex(text.get_color()) for text in fig.texts}
    assert {label: texts[label] for label in labels} == {label: colours[label] for label in labels}
    assert {'overview', '20 px at 50,33, x12', *captions.values()} <= set(texts)
