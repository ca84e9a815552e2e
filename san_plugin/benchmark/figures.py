"""Figures of the benchmarks and study reports, drawn with matplotlib: PSNR against latency (bubble area =
parameters), convergence curves, the perception-distortion plane of GAN training, and grids of zoomed crops.

Each drawing function returns a :class:`matplotlib.figure.Figure` (the object API: pyplot and its GUI backends are
never involved) and :func:`save_figure` writes it. ``colours`` maps every network of a report to one colour
(:func:`network_colours`), so that a network has the same colour in all its figures.
"""

import math
from pathlib import Path

import cv2
import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from san_plugin.utils.atomic_save import atomic_path

DPI = 150
# The references keep these colours in every figure; the networks take the palette's colours in order.
REFERENCE_COLOURS = {'HR': '#000000', 'bicubic': '#696969'}
PALETTE = [matplotlib.colors.to_hex(colour) for colour in matplotlib.colormaps['tab10'].colors]
BUBBLE_AREA = (20.0, 1500.0)  # marker area in points^2 of a point without parameters and of the largest network
CROP_TILE = 256  # crops are zoomed by the largest whole factor that keeps them within this many pixels a side
CROP_GAP = 8  # pixels between and around the panels of a crop grid
CROP_FONT_SIZE = 8  # points


def network_colours(names):
    """One colour per network, the same in every figure of a report.

    Args:
        names (Iterable[str]): The report's networks, in the order they take the palette's colours (ten, then again).

    Returns:
        dict[str, str]: Hex colour by name; also holds the references ``HR`` (black) and ``bicubic`` (grey).
    """
    networks = [name for name in dict.fromkeys(names) if name not in REFERENCE_COLOURS]
    return {**REFERENCE_COLOURS, **{name: PALETTE[i % len(PALETTE)] for i, name in enumerate(networks)}}


def save_figure(path, fig):
    """Write ``fig`` to ``path`` with ``fig.savefig(dpi=150)``, atomically, creating its folder.

    Args:
        path (str | Path): Destination; its suffix is the format (``.png``).
        fig (Figure): The figure.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format=path.suffix[1:])


def _axes(size, title, x_label, y_label):
    """A titled figure of ``size`` (width, height) pixels at :data:`DPI` with one labelled, gridded axes."""
    width, height = size
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout='constrained')
    fig.suptitle(title)
    ax = fig.add_subplot()
    ax.set(xlabel=x_label, ylabel=y_label)
    ax.grid(alpha=0.3)
    return fig, ax


def _legend(fig, handles):
    """The legend under the axes, three entries a row, which leaves the axes and the title the figure's width."""
    fig.legend(handles=handles, loc='outside lower center', ncols=min(3, len(handles)), frameon=False)


def _count(number):
    """``12.3 k`` or ``15.82 M``."""
    return f'{number / 1e6:.2f} M' if number >= 1e6 else f'{number / 1e3:.1f} k'


def _colour(colours, name):
    if name not in colours:
        raise KeyError(f'no colour for {name!r}: the colours given are for {sorted(colours)}')
    return colours[name]


def _legend_marker(colour, label, marker='o'):
    return Line2D([], [], color=colour, marker=marker, linestyle='', markersize=7, label=label)


def plot_psnr_latency(points, title, size=(1200, 800), colours=None):
    """PSNR against latency, one bubble per model, its area proportional to its parameters.

    Args:
        points (list[dict]): Each with 'model', 'psnr' (dB), 'latency_ms' (None: drawn as a dashed horizontal line, as
            for bicubic) and 'params' (None or a count).
        title (str): Title of the plot.
        size (tuple[int, int]): (width, height) in pixels. Default: (1200, 800).
        colours (dict[str, str] | None): Colour by model (:func:`network_colours`). Default: None, the models'
            colours in the order of ``points``.

    Returns:
        Figure: The figure.
    """
    colours = colours or network_colours(p['model'] for p in points)
    fig, ax = _axes(size, title, 'latency (ms)', 'PSNR (dB)')
    largest = max([p['params'] or 0 for p in points] + [1])
    handles = []
    for point in points:
        colour = _colour(colours, point['model'])
        if point['latency_ms'] is None:
            label = f'{point["model"]} ({point["psnr"]:.2f} dB)'
            handles.append(ax.axhline(point['psnr'], color=colour, linestyle='--', linewidth=1.2, label=label))
            continue
        area = max(BUBBLE_AREA[0], BUBBLE_AREA[1] * (point['params'] or 0) / largest)
        ax.scatter(point['latency_ms'], point['psnr'], s=area, color=colour, alpha=0.45, edgecolors=colour)
        params = f', {_count(point["params"])} params' if point['params'] else ''
        handles.append(_legend_marker(colour, f'{point["model"]}{params}'))
    ax.margins(0.15)
    ax.set_xlim(left=0)
    _legend(fig, handles)
    return fig


def plot_curves(series, title, x_label, y_label, size=(1200, 800), colours=None):
    """Line plot of several series, one colour and one legend entry per label (several lines may share a label, e.g.
    one per seed).

    Args:
        series (list[tuple[str, list[tuple[float, float]]]]): (label, points (x, y)) pairs.
        title (str): Title of the plot.
        x_label (str): Caption of the x axis, with its unit.
        y_label (str): Caption of the y axis, with its unit.
        size (tuple[int, int]): (width, height) in pixels. Default: (1200, 800).
        colours (dict[str, str] | None): Colour by label (:func:`network_colours`). Default: None, the labels' colours
            in the order of their first appearance.

    Returns:
        Figure: The figure.
    """
    colours = colours or network_colours(label for label, _ in series)
    fig, ax = _axes(size, title, x_label, y_label)
    handles = {}
    for label, points in series:
        xs, ys = zip(*points) if points else ((), ())
        (line,) = ax.plot(xs, ys, color=_colour(colours, label), marker='o', markersize=3, linewidth=1.5, label=label)
        handles.setdefault(label, line)
    if handles:
        _legend(fig, list(handles.values()))
    return fig


def plot_perception_distortion(runs, title, y_label, size=(1200, 800), colours=None):
    """The perception-distortion plane of GAN training: PSNR against a perceptual metric (lower is better), one point
    per run, each GAN-stage run joined by a line to the PSNR-stage run it starts from. Better runs lie lower right.

    Args:
        runs (list[dict]): One per run: 'run' (its name), 'network', 'psnr' (dB), 'perceptual' (lower is better)
            and 'psnr_run': None for a PSNR-stage run, and for a GAN-stage run the 'run' of the PSNR-stage run it was
            initialised from.
        title (str): Title of the plot.
        y_label (str): Caption of the y axis: the metric, e.g. 'NIQE' or 'LPIPS'.
        size (tuple[int, int]): (width, height) in pixels. Default: (1200, 800).
        colours (dict[str, str] | None): Colour by network (:func:`network_colours`). Default: None, the networks'
            colours in the order of ``runs``.

    Returns:
        Figure: The figure.
    """
    by_name = {run['run']: run for run in runs}
    colours = colours or network_colours(run['network'] for run in runs)
    fig, ax = _axes(size, title, 'PSNR (dB)', y_label)
    for run in runs:
        colour = _colour(colours, run['network'])
        start = run['psnr_run']
        if start is not None:
            if start not in by_name:
                raise ValueError(f'run {run["run"]!r}: its psnr_run {start!r} is not one of the runs')
            begin = by_name[start]
            ax.plot([begin['psnr'], run['psnr']], [begin['perceptual'], run['perceptual']], color=colour, linewidth=1)
        ax.scatter(run['psnr'], run['perceptual'], color=colour, marker='o' if start is None else '^', s=40, zorder=3)
    # The direction of better runs, in the corner that stays empty (high PSNR with a bad perceptual score).
    ax.annotate(
        'better', xy=(0.98, 0.80), xytext=(0.86, 0.94), xycoords='axes fraction', ha='center', va='center',
        arrowprops={'arrowstyle': '->', 'color': 'grey'}, color='grey',
    )  # fmt: skip
    networks = dict.fromkeys(run['network'] for run in runs)
    handles = [_legend_marker(_colour(colours, network), network, 's') for network in networks]
    handles += [_legend_marker('grey', 'PSNR stage', 'o'), _legend_marker('grey', 'GAN stage', '^')]
    _legend(fig, handles)
    return fig


def crop_box(shape, x=None, y=None, size=None):
    """Square crop (top-left x, y, side) inside an image of ``shape``; default: centred, a third of the short side."""
    h, w = shape[:2]
    size = min(size or max(min(h, w) // 3, 8), h, w)
    x = (w - size) // 2 if x is None else min(x, w - size)
    y = (h - size) // 2 if y is None else min(y, h - size)
    return x, y, size


def crop_zoom(size):
    """The whole zoom factor of a crop of side ``size``: the largest that keeps it within :data:`CROP_TILE` pixels."""
    return max(1, CROP_TILE // size)


def crop_grid(images, box, captions, columns=5, colours=None):
    """Zoomed crops of several same-size images side by side, after an overview of the first with the box marked.

    Each crop is zoomed by a whole factor (:func:`crop_zoom`, nearest neighbour) and placed unresampled, so the PNG
    holds every pixel of it exactly. Under each panel: its label (in its network's colour) and its caption.

    Args:
        images (dict[str, np.ndarray]): uint8 BGR images by label, the reference (HR) first.
        box (tuple[int, int, int]): Crop (x, y, size), see :func:`crop_box`.
        captions (dict[str, str]): Second caption line by label (e.g. PSNR / SSIM); optional per label.
        columns (int): Panels per row. Default: 5.
        colours (dict[str, str] | None): Label colour by label (:func:`network_colours`). Default: None, the labels'
            colours in the order of ``images``.

    Returns:
        Figure: The figure, sized in whole pixels at :data:`DPI`.
    """
    colours = colours or network_colours(images)
    x, y, size = box
    zoom = crop_zoom(size)
    tile = size * zoom
    reference = next(iter(images.values()))
    h, w = reference.shape[:2]
    scale = tile / max(h, w)
    overview = cv2.resize(reference, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    panels = [(overview, 'overview', f'{size} px at {x},{y}, x{zoom}', 'black')]
    for label, img in images.items():
        crop = img[y : y + size, x : x + size].repeat(zoom, axis=0).repeat(zoom, axis=1)
        panels.append((crop, label, captions.get(label, ''), _colour(colours, label)))

    columns = min(columns, len(panels))
    rows = math.ceil(len(panels) / columns)
    line = round(CROP_FONT_SIZE / 72 * DPI * 1.4)
    panel_w, panel_h = tile + CROP_GAP, tile + 2 * line + CROP_GAP
    width, height = columns * panel_w + CROP_GAP, rows * panel_h + CROP_GAP
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    for i, (img, label, caption, colour) in enumerate(panels):
        left, top = CROP_GAP + (i % columns) * panel_w, CROP_GAP + (i // columns) * panel_h
        fig.figimage(np.ascontiguousarray(img[..., ::-1]), left, height - top - img.shape[0], origin='upper')
        text_top = height - top - tile - 2
        fig.text(left / width, text_top / height, label, color=colour, fontsize=CROP_FONT_SIZE, weight='bold', va='top')
        fig.text(left / width, (text_top - line) / height, caption, fontsize=CROP_FONT_SIZE, va='top')
    side = size * scale  # the crop's box on the overview, in figure coordinates like the texts
    corner = ((CROP_GAP + x * scale) / width, (height - CROP_GAP - y * scale - side) / height)
    fig.add_artist(Rectangle(corner, side / width, side / height, fill=False, edgecolor='red', linewidth=1.5))
    return fig
