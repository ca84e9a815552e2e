"""Quality benchmark: PSNR/SSIM (Y channel, ``crop_border = scale``), the extra metrics asked for (LPIPS, DISTS,
NIQE: :mod:`san_plugin.benchmark.metrics`), parameters, FLOPs and latency of each model on each data set at each scale.

Peak memory is not measured here: in this process it would be the rise after everything evaluated before (other
models, warm-up), not a network's own need. ``tools/benchmark.py speed`` and the studies of ``tools/compare.py``
measure it in a fresh process per network.
"""

import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from basicsr.metrics import calculate_psnr, calculate_ssim
from basicsr.utils import img2tensor, tensor2img
from tqdm import tqdm

from san_plugin.benchmark.datasets import load_dataset
from san_plugin.benchmark.figures import crop_box, crop_grid, network_colours, plot_psnr_latency, save_figure
from san_plugin.benchmark.flops import count_flops, count_params
from san_plugin.benchmark.metrics import prepare_metrics
from san_plugin.benchmark.report import markdown_table, write_csv
from san_plugin.data.images import bicubic_resize
from san_plugin.utils.atomic_save import write_atomic, write_json
from san_plugin.utils.precision import autocast
from san_plugin.utils.test_time import test_forward
from san_plugin.utils.threads import torch_threads

# Default FLOPs input: the LR size of a 1280x720 output, the usual convention of SR papers.
FLOPS_OUTPUT_SIZE = (720, 1280)


@dataclass
class TestTime:
    """Test-time strategy of the networks, as ``SANModel`` options (see ``san_plugin.utils.test_time``)."""

    chop: bool = False
    tile: int | None = None
    tile_pad: int = 10
    self_ensemble: bool = False
    amp: str | None = None


@dataclass
class CropSpec:
    """A crop of one image for the crop grids: top-left (x, y) and side in HR pixels; None for the centre."""

    image: str
    x: int | None = None
    y: int | None = None
    size: int | None = None


@dataclass
class QualityConfig:
    """Everything a quality run needs; see ``tools/benchmark.py quality --help``."""

    models: list
    datasets: list
    scales: list
    out: str
    device: str = 'cpu'
    threads: int | None = None
    flops_input: tuple | None = None
    warmup: int = 1
    test_time: TestTime = field(default_factory=TestTime)
    crops: list = field(default_factory=list)
    metrics: list = field(default_factory=list)


def parse_crop_spec(text, origin='--crops'):
    """Parse ``IMAGE_NAME[:x,y,size]``."""
    name, sep, box = text.partition(':')
    if not sep:
        return CropSpec(name)
    try:
        x, y, size = (int(v) for v in box.split(','))
    except ValueError as error:
        raise ValueError(f'{origin} {text!r}: expected IMAGE_NAME or IMAGE_NAME:x,y,size with integers') from error
    if size <= 0 or x < 0 or y < 0:
        raise ValueError(f'{origin} {text!r}: x and y must be >= 0 and size > 0')
    return CropSpec(name, x, y, size)


def image_to_tensor(img, device):
    """uint8 BGR HxWx3 -> float RGB tensor (1, 3, H, W) in [0, 1] on ``device``."""
    return img2tensor(img.astype(np.float32) / 255.0, bgr2rgb=True, float32=True).unsqueeze(0).to(device)


def network_forward(net, lq, scale, test_time):
    """Run ``net`` on ``lq`` with the test-time strategy (plain forward when none is asked), float32 output."""
    with autocast(lq.device.type, test_time.amp):
        out = test_forward(
            net,
            lq,
            scale,
            chop=test_time.chop,
            tile=test_time.tile or None,
            tile_pad=test_time.tile_pad,
            self_ensemble=test_time.self_ensemble,
        )
    return out.float()


def synchronize(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed_upscale(net, lr, scale, device, test_time):
    """Upscale one uint8 BGR image: bicubic (``net`` None) or the network; returns (uint8 BGR SR, seconds)."""
    if net is None:
        start = time.perf_counter()
        return bicubic_resize(lr, scale), time.perf_counter() - start
    lq = image_to_tensor(lr, device)
    synchronize(device)
    start = time.perf_counter()
    with torch.inference_mode():
        out = network_forward(net, lq, scale, test_time)
    synchronize(device)
    seconds = time.perf_counter() - start
    return tensor2img(out.float().cpu(), rgb2bgr=True, out_type=np.uint8, min_max=(0, 1)), seconds


def flops_input_size(config, scale):
    """(3, h, w) LR size FLOPs are counted at."""
    if config.flops_input is not None:
        return (3, *config.flops_input)
    return (3, FLOPS_OUTPUT_SIZE[0] // scale, FLOPS_OUTPUT_SIZE[1] // scale)


def evaluate(net, pairs, scale, device, config, progress, keep):
    """Evaluate one model on one data set; returns (summary, per-image rows, kept SR images by name)."""
    if net is not None and pairs:
        for _ in range(config.warmup):
            timed_upscale(net, pairs[0].lr, scale, device, config.test_time)
    per_image, kept, seconds = [], {}, []
    for pair in pairs:
        sr, elapsed = timed_upscale(net, pair.lr, scale, device, config.test_time)
        if sr.shape != pair.hr.shape:
            raise ValueError(f'output of {pair.name} is {sr.shape}, expected {pair.hr.shape}: is the scale right?')
        seconds.append(elapsed)
        psnr = calculate_psnr(sr, pair.hr, crop_border=scale, input_order='HWC', test_y_channel=True)
        ssim = calculate_ssim(sr, pair.hr, crop_border=scale, input_order='HWC', test_y_channel=True)
        extra = {metric.name: metric.compute(sr, pair.hr, scale) for metric in config.metrics}
        per_image.append(
            {'image': pair.name, 'psnr': float(psnr), 'ssim': float(ssim), **extra, 'latency_ms': elapsed * 1e3}
        )
        if pair.name in keep:
            kept[pair.name] = sr
        progress.update(1)
    summary = {
        'psnr': statistics.fmean(r['psnr'] for r in per_image),
        'ssim': statistics.fmean(r['ssim'] for r in per_image),
        **{metric.name: statistics.fmean(r[metric.name] for r in per_image) for metric in config.metrics},
        'latency_ms': statistics.median(seconds) * 1e3 if net is not None else None,
    }
    return summary, per_image, kept


def crop_targets(config, data):
    """Crop specs by (dataset, scale): the asked images present in each, else its first image, centred."""
    targets = {}
    found = set()
    for (dataset, scale), pairs in data.items():
        names = {p.name for p in pairs}
        asked = [c for c in config.crops if c.image in names]
        found.update(c.image for c in asked)
        targets[dataset, scale] = asked or ([CropSpec(pairs[0].name)] if pairs else [])
    missing = [c.image for c in config.crops if c.image not in found]
    if missing:
        raise ValueError(f'--crops: images {missing} are in none of the data sets')
    return targets


def run_quality(config, show_progress=True):
    """Run the quality benchmark.

    Args:
        config (QualityConfig): What to run.
        show_progress (bool): Show a progress bar. Default: True.

    Returns:
        tuple[list[dict], dict]: Result rows (keys model, dataset, scale, psnr, ssim, one per extra metric (e.g.
        lpips), params, flops, flops_input, latency_ms, device, per_image) and, for the crop grids,
        ``{(dataset, scale, image): (crop, {model: SR image})}`` with the HR image under 'HR' and bicubic under
        'bicubic'.
    """
    with torch_threads(config.threads):
        return _run_quality(config, show_progress)


def _run_quality(config, show_progress):
    device = torch.device(config.device)
    prepare_metrics(config.metrics)  # a missing or bad weight file stops the run before any model runs
    data = {(d.name, s): load_dataset(d, s) for s in config.scales for d in config.datasets}
    targets = crop_targets(config, data)
    jobs = [(m, s) for m in config.models for s in config.scales if m.supports(s)]
    skipped = [f'{m.name} x{s}' for m in config.models for s in config.scales if not m.supports(s)]
    if not jobs:
        raise ValueError(f'no model supports the scales {config.scales} (skipped: {", ".join(skipped)})')
    total = sum(len(data[d.name, s]) for m, s in jobs for d in config.datasets)
    rows, crops = [], {}
    for (dataset, scale), crop_list in targets.items():
        by_name = {p.name: p for p in data[dataset, scale]}
        for crop in crop_list:
            pair = by_name[crop.image]
            crops[dataset, scale, crop.image] = (crop, {'HR': pair.hr, 'bicubic': bicubic_resize(pair.lr, scale)})
    with tqdm(total=total, desc='quality', unit='img', disable=not show_progress) as progress:
        for spec, scale in jobs:
            net = spec.build(scale)
            params = flops = None
            if net is not None:
                net = net.to(device)
                params = count_params(net)
                flops = count_flops(net, flops_input_size(config, scale), device)[0]
            for dataset in config.datasets:
                progress.set_postfix_str(f'{spec.name} {dataset.name} x{scale}')
                keep = {name for (d, s, name) in crops if d == dataset.name and s == scale}
                summary, per_image, kept = evaluate(
                    net, data[dataset.name, scale], scale, device, config, progress, keep
                )
                for name, sr in kept.items():
                    crops[dataset.name, scale, name][1][spec.name] = sr
                rows.append(
                    {
                        'model': spec.name,
                        'dataset': dataset.name,
                        'scale': scale,
                        **summary,
                        'params': params,
                        'flops': flops,
                        'flops_input': 'x'.join(str(v) for v in flops_input_size(config, scale)[1:]) if net else None,
                        'device': str(device),
                        'per_image': per_image,
                    }
                )
            del net
    if skipped:
        tqdm.write(f'skipped (network scale differs): {", ".join(skipped)}')
    return rows, crops


def _file_part(text):
    return re.sub(r'[^A-Za-z0-9._-]+', '_', str(text))


def write_outputs(rows, crops, out):
    """Write results.json/.csv/.md, a PSNR-latency plot per data set and scale, and the crop grids into ``out``.

    Args:
        rows (list[dict]): Rows of :func:`run_quality`.
        crops (dict): Crop images of :func:`run_quality`.
        out (str | Path): Output folder (created).

    Returns:
        list[Path]: The files written.
    """
    out = Path(out)
    written = [out / 'results.json', out / 'results.csv', out / 'results.md']
    write_json(written[0], rows)
    write_csv(written[1], rows)
    write_atomic(written[2], markdown_table(rows))
    colours = network_colours(r['model'] for r in rows)
    for dataset, scale in dict.fromkeys((r['dataset'], r['scale']) for r in rows):
        group = [r for r in rows if r['dataset'] == dataset and r['scale'] == scale]
        path = out / f'psnr_latency_{_file_part(dataset)}_x{scale}.png'
        title = f'{dataset} x{scale} on {group[0]["device"]}: PSNR vs latency, bubble area ~ parameters'
        save_figure(path, plot_psnr_latency(group, title, colours=colours))
        written.append(path)
    per_image = {(r['model'], r['dataset'], r['scale'], p['image']): p for r in rows for p in r['per_image']}
    for (dataset, scale, image), (crop, images) in crops.items():
        captions = {}
        for label in images:
            found = per_image.get((label, dataset, scale, image))
            if found:
                captions[label] = f'{found["psnr"]:.2f} dB / {found["ssim"]:.4f}'
        box = crop_box(images['HR'].shape, crop.x, crop.y, crop.size)
        path = out / f'crops_{_file_part(dataset)}_x{scale}_{_file_part(image)}.png'
        save_figure(path, crop_grid(images, box, captions, colours=colours))
        written.append(path)
    return written
