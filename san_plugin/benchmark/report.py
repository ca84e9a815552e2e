"""Benchmark results as CSV and a paper-style Markdown table, written atomically with
:mod:`san_plugin.utils.atomic_save`'s writers (which also write the JSON)."""

import csv
import io

from san_plugin.benchmark.metrics import QUALITY_METRICS
from san_plugin.utils.atomic_save import write_atomic

CSV_COLUMNS = ('model', 'dataset', 'scale', 'psnr', 'ssim', 'params', 'flops', 'flops_input', 'latency_ms', 'device',
               'num_images')  # fmt: skip


def extra_metrics(rows):
    """The extra metrics (:data:`~san_plugin.benchmark.metrics.QUALITY_METRICS`) that ``rows`` hold, in order."""
    return [name for name in QUALITY_METRICS if any(name in row for row in rows)]


def write_csv(path, rows):
    """One line per result row, a column per extra metric after ssim (per-image results are in the JSON only)."""
    columns = list(CSV_COLUMNS)
    columns[columns.index('ssim') + 1 : columns.index('ssim') + 1] = extra_metrics(rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, extrasaction='ignore', lineterminator='\n')
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, 'num_images': len(row.get('per_image', []))})
    write_atomic(path, buffer.getvalue())


def _fmt(value, digits):
    return '-' if value is None else f'{value:.{digits}f}'


def _bold_best(values, higher_is_better, digits):
    """Format a column, the best value in bold (ties all bold); None shows as '-'."""
    present = [v for v in values if v is not None]
    best = (max if higher_is_better else min)(present) if present else None
    out = []
    for v in values:
        text = _fmt(v, digits)
        out.append(f'**{text}**' if v is not None and len(present) > 1 and text == _fmt(best, digits) else text)
    return out


def markdown_table(rows):
    """Paper-style tables, one per scale: a line per model, parameters and FLOPs, then per data set PSNR / SSIM,
    the extra metrics and latency; the best value of each column in bold (higher PSNR/SSIM, lower extra metrics and
    costs).

    Args:
        rows (list[dict]): Result rows of :func:`san_plugin.benchmark.quality.run_quality`.

    Returns:
        str: Markdown text.
    """
    lines = []
    extras = extra_metrics(rows)
    for scale in sorted({r['scale'] for r in rows}):
        at_scale = [r for r in rows if r['scale'] == scale]
        models = list(dict.fromkeys(r['model'] for r in at_scale))
        datasets = list(dict.fromkeys(r['dataset'] for r in at_scale))
        cell = {(r['model'], r['dataset']): r for r in at_scale}
        first = {m: next(r for r in at_scale if r['model'] == m) for m in models}
        flops_inputs = sorted({r['flops_input'] for r in at_scale if r['flops_input']})
        columns = [('Model', models)]
        columns.append(('Params (M)', _bold_best([_scaled(first[m]['params'], 1e6) for m in models], False, 2)))
        flops_head = f'FLOPs (G) @{",".join(flops_inputs)}' if flops_inputs else 'FLOPs (G)'
        columns.append((flops_head, _bold_best([_scaled(first[m]['flops'], 1e9) for m in models], False, 2)))
        for d in datasets:
            got = [cell.get((m, d), {}) for m in models]
            psnr = _bold_best([r.get('psnr') for r in got], True, 2)
            ssim = _bold_best([r.get('ssim') for r in got], True, 4)
            columns.append((f'{d} PSNR / SSIM', [f'{p} / {s}' for p, s in zip(psnr, ssim)]))
            for name in extras:
                columns.append((f'{d} {QUALITY_METRICS[name][1]}', _bold_best([r.get(name) for r in got], False, 4)))
            columns.append((f'{d} ms', _bold_best([r.get('latency_ms') for r in got], False, 1)))
        lines.append(f'### x{scale} (device: {at_scale[0]["device"]})\n')
        lines.append('| ' + ' | '.join(head for head, _ in columns) + ' |')
        lines.append('|' + '|'.join(' --- ' for _ in columns) + '|')
        for i in range(len(models)):
            lines.append('| ' + ' | '.join(str(values[i]) for _, values in columns) + ' |')
        lines.append('')
    lines.append('PSNR / SSIM on the Y channel (BT.601), crop border = scale; latency: median per image after warm-up.')
    if extras:
        labels = ', '.join(QUALITY_METRICS[name][1] for name in extras)
        lines.append(f'{labels}: mean per image, crop border = scale, lower is better.')
    return '\n'.join(lines) + '\n'


def _scaled(value, unit):
    return None if value is None else value / unit
