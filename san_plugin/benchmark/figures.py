"""Figures drawn with OpenCV: PSNR against latency (bubble area = parameters) and grids of zoomed crops."""

import math

import cv2
import numpy as np

from san_plugin.utils.atomic_save import write_atomic

FONT = cv2.FONT_HERSHEY_SIMPLEX
BLACK, GREY, WHITE, RED = (0, 0, 0), (150, 150, 150), (255, 255, 255), (0, 0, 220)
PALETTE = [(180, 119, 31), (14, 127, 255), (44, 160, 44), (40, 39, 214), (189, 103, 148), (75, 86, 140)]
TILE = 192
LABEL_H = 40


def write_png(path, img):
    """Encode ``img`` as PNG and write it atomically."""
    ok, buffer = cv2.imencode('.png', img)
    if not ok:
        raise RuntimeError(f'cannot encode {path} as PNG')
    write_atomic(path, buffer.tobytes())


def nice_ticks(low, high, count=5):
    """Round tick values covering [low, high]."""
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _padded_range(values, fraction):
    low, high = min(values), max(values)
    pad = (high - low) * fraction or abs(high) * 0.1 or 1.0
    return low - pad, high + pad


def _draw_axes(img, margins, x_range, y_range, title):
    """Draw the frame, ticks and title of a plot on ``img``; return the function from data to pixel coordinates.

    Args:
        img (np.ndarray): The canvas, (height, width, 3).
        margins (tuple[int, int, int, int]): Left, right, top and bottom margins in pixels.
        x_range (tuple[float, float]): Data range of the x axis.
        y_range (tuple[float, float]): Data range of the y axis.
        title (str): Title drawn on top.

    Returns:
        callable: ``to_px(x, y) -> (px, py)``.
    """
    height, width = img.shape[:2]
    left, right, top, bottom = margins

    def to_px(x, y):
        px = left + (x - x_range[0]) / (x_range[1] - x_range[0]) * (width - left - right)
        py = height - bottom - (y - y_range[0]) / (y_range[1] - y_range[0]) * (height - top - bottom)
        return int(round(px)), int(round(py))

    cv2.rectangle(img, (left, top), (width - right, height - bottom), BLACK, 1)
    for tick in nice_ticks(*x_range):
        px, _ = to_px(tick, y_range[0])
        cv2.line(img, (px, height - bottom), (px, height - bottom + 5), BLACK, 1)
        cv2.putText(img, f'{tick:g}', (px - 15, height - bottom + 22), FONT, 0.45, BLACK, 1, cv2.LINE_AA)
    for tick in nice_ticks(*y_range):
        _, py = to_px(x_range[0], tick)
        cv2.line(img, (left - 5, py), (left, py), BLACK, 1)
        cv2.putText(img, f'{tick:.2f}', (left - 60, py + 5), FONT, 0.45, BLACK, 1, cv2.LINE_AA)
    cv2.putText(img, title, (left, 28), FONT, 0.6, BLACK, 1, cv2.LINE_AA)
    return to_px


def plot_psnr_latency(points, title, size=(900, 600)):
    """Scatter of PSNR against latency.

    Args:
        points (list[dict]): Each with 'model', 'psnr', 'latency_ms' (None: drawn as a dashed horizontal line, as
            for bicubic) and 'params' (None or a count; the bubble area is proportional to it).
        title (str): Title drawn on top.
        size (tuple[int, int]): (width, height) in pixels. Default: (900, 600).

    Returns:
        np.ndarray: The uint8 BGR image.
    """
    width, height = size
    left, right, top, bottom = 80, 40, 60, 60
    img = np.full((height, width, 3), 255, np.uint8)
    timed = [p for p in points if p['latency_ms'] is not None]
    x_range = _padded_range([p['latency_ms'] for p in timed] or [0.0, 1.0], 0.15)
    x_range = (max(x_range[0], 0.0), x_range[1])
    y_range = _padded_range([p['psnr'] for p in points], 0.15)

    to_px = _draw_axes(img, (left, right, top, bottom), x_range, y_range, title)
    cv2.putText(img, 'latency (ms)', (width // 2 - 50, height - 15), FONT, 0.55, BLACK, 1, cv2.LINE_AA)
    cv2.putText(img, 'PSNR (dB)', (8, top - 12), FONT, 0.55, BLACK, 1, cv2.LINE_AA)
    max_params = max([p['params'] or 0 for p in points] + [1])
    for i, point in enumerate(points):
        color = PALETTE[i % len(PALETTE)]
        if point['latency_ms'] is None:
            _, py = to_px(x_range[0], point['psnr'])
            for x in range(left, width - right, 14):
                cv2.line(img, (x, py), (min(x + 7, width - right), py), color, 1)
            cv2.putText(img, f'{point["model"]} {point["psnr"]:.2f}', (left + 6, py - 6), FONT, 0.45, color, 1)
            continue
        center = to_px(point['latency_ms'], point['psnr'])
        radius = int(4 + 36 * math.sqrt((point['params'] or 0) / max_params))
        overlay = img.copy()
        cv2.circle(overlay, center, radius, color, -1, cv2.LINE_AA)
        img = cv2.addWeighted(overlay, 0.45, img, 0.55, 0)
        cv2.circle(img, center, radius, color, 1, cv2.LINE_AA)
        params = f' {point["params"] / 1e6:.2f}M' if point['params'] else ''
        text_at = (center[0] + radius + 4, center[1] + 5)
        cv2.putText(img, f'{point["model"]}{params}', text_at, FONT, 0.5, BLACK, 1, cv2.LINE_AA)
    return img


def crop_box(shape, x=None, y=None, size=None):
    """Square crop (top-left x, y, side) inside an image of ``shape``; default: centred, a third of the short side."""
    h, w = shape[:2]
    size = min(size or max(min(h, w) // 3, 8), h, w)
    x = (w - size) // 2 if x is None else min(x, w - size)
    y = (h - size) // 2 if y is None else min(y, h - size)
    return x, y, size


def _labelled(tile, lines):
    panel = np.full((TILE + LABEL_H, TILE, 3), 255, np.uint8)
    panel[:TILE] = tile
    for i, line in enumerate(lines):
        cv2.putText(panel, line, (4, TILE + 16 + 16 * i), FONT, 0.42, BLACK, 1, cv2.LINE_AA)
    return panel


def crop_grid(images, box, captions, columns=5):
    """Zoomed crops of several same-size images side by side, after an overview of the first with the box marked.

    Args:
        images (dict[str, np.ndarray]): uint8 BGR images by label, the reference (HR) first.
        box (tuple[int, int, int]): Crop (x, y, size), see :func:`crop_box`.
        captions (dict[str, str]): Second caption line by label (e.g. PSNR / SSIM); optional per label.
        columns (int): Panels per row. Default: 5.

    Returns:
        np.ndarray: The uint8 BGR grid.
    """
    x, y, size = box
    reference = next(iter(images.values()))
    h, w = reference.shape[:2]
    zoom = TILE / max(h, w)
    overview = np.full((TILE, TILE, 3), 255, np.uint8)
    small = cv2.resize(reference, (max(1, round(w * zoom)), max(1, round(h * zoom))), interpolation=cv2.INTER_AREA)
    overview[: small.shape[0], : small.shape[1]] = small
    p0 = (int(x * zoom), int(y * zoom))
    cv2.rectangle(overview, p0, (int((x + size) * zoom), int((y + size) * zoom)), RED, 2)
    panels = [_labelled(overview, ['overview', f'crop {x},{y} {size}px'])]
    for label, img in images.items():
        tile = cv2.resize(img[y : y + size, x : x + size], (TILE, TILE), interpolation=cv2.INTER_NEAREST)
        panels.append(_labelled(tile, [label, captions.get(label, '')]))
    columns = min(columns, len(panels))
    blank = np.full_like(panels[0], 255)
    panels += [blank] * (-len(panels) % columns)
    rows = [np.hstack(panels[i : i + columns]) for i in range(0, len(panels), columns)]
    return np.vstack(rows)


def plot_curves(series, title, x_label, y_label, size=(900, 600)):
    """Line plot of several series, one colour per label (several lines may share a label, e.g. one per seed).

    Args:
        series (list[tuple[str, list[tuple[float, float]]]]): (label, points (x, y)) pairs; a label's colour is the
            palette colour of its first appearance.
        title (str): Title drawn on top.
        x_label (str): Caption of the x axis.
        y_label (str): Caption of the y axis.
        size (tuple[int, int]): (width, height) in pixels. Default: (900, 600).

    Returns:
        np.ndarray: The uint8 BGR image.
    """
    width, height = size
    labels = dict.fromkeys(label for label, _ in series)
    legend = max([cv2.getTextSize(label, FONT, 0.5, 1)[0][0] for label in labels] + [0])
    left, right, top, bottom = 80, legend + 60, 60, 60
    img = np.full((height, width, 3), 255, np.uint8)
    points = [p for _, line in series for p in line]
    x_range = _padded_range([x for x, _ in points] or [0.0, 1.0], 0.02)
    y_range = _padded_range([y for _, y in points] or [0.0, 1.0], 0.05)

    to_px = _draw_axes(img, (left, right, top, bottom), x_range, y_range, title)
    cv2.putText(img, x_label, (width // 2 - 60, height - 15), FONT, 0.55, BLACK, 1, cv2.LINE_AA)
    cv2.putText(img, y_label, (8, top - 12), FONT, 0.55, BLACK, 1, cv2.LINE_AA)
    colours = {}
    for label, line in series:
        colour = colours.setdefault(label, PALETTE[len(colours) % len(PALETTE)])
        pixels = np.array([to_px(x, y) for x, y in line], np.int32)
        if len(pixels) > 1:
            cv2.polylines(img, [pixels], False, colour, 2, cv2.LINE_AA)
        for point in pixels:
            cv2.circle(img, tuple(int(v) for v in point), 3, colour, -1, cv2.LINE_AA)
    for i, (label, colour) in enumerate(colours.items()):
        y = top + 10 + 22 * i
        cv2.line(img, (width - right + 12, y), (width - right + 36, y), colour, 3)
        cv2.putText(img, label, (width - right + 42, y + 5), FONT, 0.5, BLACK, 1, cv2.LINE_AA)
    return img
