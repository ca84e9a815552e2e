"""The report of a study: mean and standard deviation over seeds, costs, significance marks, convergence plots.

Files (in the study's ``out`` folder, each written atomically): ``report.json`` (everything, per-run values too),
``report.csv`` (one line per network, data set and scale), ``report.md`` (the tables) and PNG plots: validation PSNR
against iteration and against training time per scale (``convergence_iter_x<s>.png``, ``convergence_time_x<s>.png``)
and mean PSNR against latency per data set and scale (``psnr_latency_<set>_x<s>.png``).
"""

import csv
import io
import statistics

from san_plugin.benchmark.figures import plot_curves, plot_psnr_latency, write_png
from san_plugin.benchmark.report import write_atomic, write_json

SIGNIFICANCE_RULE = (
    'A difference between two rows is significant only if it is larger than the sum of their standard deviations '
    'over seeds (their mean +- std intervals do not overlap); otherwise it is marked n.s. (not significant). With '
    'one seed no difference is called significant.'
)
CSV_COLUMNS = ('network', 'dataset', 'scale', 'seeds', 'psnr_mean', 'psnr_std', 'ssim_mean', 'ssim_std', 'params',
               'flops', 'flops_input', 'train_ms_per_iter', 'latency_ms', 'infer_peak_mb', 'infer_input',
               'train_peak_mb', 'train_input', 'device', 'vs_best_psnr')  # fmt: skip
METRICS = ('psnr', 'ssim')


def mean_std(values):
    """(mean, sample standard deviation or None for one value) of a list of numbers."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def is_significant(a, b, metric='psnr'):
    """Whether two summary rows differ in ``metric`` by more than their seed spread (see ``SIGNIFICANCE_RULE``).

    Args:
        a (dict): Summary row with ``<metric>_mean`` and ``<metric>_std`` (None for one seed).
        b (dict): The other row.
        metric (str): 'psnr' or 'ssim'. Default: 'psnr'.

    Returns:
        bool: True if the difference is beyond the seed spread.
    """
    spread_a, spread_b = a[f'{metric}_std'], b[f'{metric}_std']
    if spread_a is None or spread_b is None:
        return False
    return abs(a[f'{metric}_mean'] - b[f'{metric}_mean']) > spread_a + spread_b


def summarize(records, memory, params):
    """Summary rows (one per network, data set and scale) from the runs' records.

    Args:
        records (list[dict]): Run records (``network``, ``scale``, ``seed``, ``rows`` of the quality benchmark,
            ``training`` from :func:`san_plugin.study.logs.read_training_logs`).
        memory (dict[tuple[str, int], dict]): Fresh-process peak memory by (network, scale).
        params (dict[tuple[str, int], int]): Parameter counts by (network, scale).

    Returns:
        list[dict]: Rows with the columns of ``CSV_COLUMNS`` (``vs_best_psnr`` filled by :func:`mark_best`).
    """
    groups = {}
    for record in records:
        for row in record['rows']:
            groups.setdefault((record['network'], row['dataset'], record['scale']), []).append((record, row))
    summary = []
    for (network, dataset, scale), items in groups.items():
        rows = [row for _, row in items]
        per_iter = [r['training']['seconds_per_iter'] for r, _ in items if r['training']['seconds_per_iter']]
        out = {'network': network, 'dataset': dataset, 'scale': scale, 'seeds': [r['seed'] for r, _ in items]}
        for metric in METRICS:
            out[f'{metric}_mean'], out[f'{metric}_std'] = mean_std([row[metric] for row in rows])
        mem = memory[network, scale]
        out.update(
            params=params[network, scale],
            flops=rows[0]['flops'],
            flops_input=rows[0]['flops_input'],
            train_ms_per_iter=statistics.fmean(per_iter) * 1e3 if per_iter else None,
            latency_ms=statistics.median(row['latency_ms'] for row in rows),
            infer_peak_mb=mem['infer_peak_mb'],
            infer_input=mem['infer_input'],
            train_peak_mb=mem['train_peak_mb'],
            train_input=mem['train_input'],
            device=rows[0]['device'],
        )
        summary.append(out)
    return summary


def mark_best(summary):
    """Set ``vs_best_psnr`` of each row: 'best', 'n.s.' (within the seed spread of the best) or the gap in dB."""
    for key in {(r['dataset'], r['scale']) for r in summary}:
        group = [r for r in summary if (r['dataset'], r['scale']) == key]
        best = max(group, key=lambda r: r['psnr_mean'])
        for row in group:
            gap = row['psnr_mean'] - best['psnr_mean']
            row['vs_best_psnr'] = 'best' if row is best else (f'{gap:+.3f}' if is_significant(row, best) else 'n.s.')
    return summary


def pairwise(summary):
    """Every pair of networks on each data set and scale: differences of the means and whether they are significant."""
    pairs = []
    for i, a in enumerate(summary):
        for b in summary[i + 1 :]:
            if (a['dataset'], a['scale']) != (b['dataset'], b['scale']):
                continue
            pair = {'a': a['network'], 'b': b['network'], 'dataset': a['dataset'], 'scale': a['scale']}
            for metric in METRICS:
                pair[f'{metric}_diff'] = a[f'{metric}_mean'] - b[f'{metric}_mean']
                pair[f'{metric}_significant'] = is_significant(a, b, metric)
            pairs.append(pair)
    return pairs


def _pm(mean, std, digits):
    return f'{mean:.{digits}f}' + (f' ± {std:.{digits}f}' if std is not None else '')


def _num(value, digits, unit=1.0):
    return '-' if value is None else f'{value / unit:.{digits}f}'


def markdown(study, summary, pairs, bicubic):
    """The report's Markdown: per scale a cost table, a quality table and the pairwise PSNR differences."""
    lines = [f'# Study {study.name}', '']
    train = study.train
    lines.append(
        f'Every network trained with the same protocol: HR patches {train["gt_size"]}, batch {train["batch_size"]}, '
        f'{train["total_iter"]} iterations, Adam lr {train["lr"]:g} with cosine annealing to {train["eta_min"]:g}, '
        f'L1 loss, data from {train["data"]}; seeds {", ".join(str(s) for s in study.seeds)}. '
        'PSNR / SSIM on the Y channel, crop border = scale, mean ± standard deviation over seeds.'
    )
    lines += ['', SIGNIFICANCE_RULE, '']
    for scale in study.scales:
        rows = [r for r in summary if r['scale'] == scale]
        networks = list(dict.fromkeys(r['network'] for r in rows))
        datasets = list(dict.fromkeys(r['dataset'] for r in rows))
        cell = {(r['network'], r['dataset']): r for r in rows}
        first = {n: next(r for r in rows if r['network'] == n) for n in networks}
        any_row = rows[0]
        lines += [f'## x{scale}', '', f'Costs (device: {any_row["device"]}):', '']
        head = ['Network', 'Params (M)', f'FLOPs (G) @{any_row["flops_input"]}', 'train ms/iter',
                f'infer peak MiB @{any_row["infer_input"]}', f'train peak MiB @{any_row["train_input"]}']  # fmt: skip
        head += [f'{d} ms/img' for d in datasets]
        lines += ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
        for n in networks:
            r = first[n]
            values = [n, _num(r['params'], 3, 1e6), _num(r['flops'], 2, 1e9), _num(r['train_ms_per_iter'], 0),
                      _num(r['infer_peak_mb'], 0), _num(r['train_peak_mb'], 0)]  # fmt: skip
            values += [_num(cell[n, d]['latency_ms'], 1) for d in datasets]
            lines.append('| ' + ' | '.join(values) + ' |')
        lines += ['', 'Quality (PSNR dB / SSIM; vs best: n.s. = within the seed spread of the best row):', '']
        head = ['Network'] + [f'{d} PSNR / SSIM | {d} vs best' for d in datasets]
        lines += ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * (1 + 2 * len(datasets))]
        for n in networks:
            values = [n]
            for d in datasets:
                r = cell[n, d]
                text = f'{_pm(r["psnr_mean"], r["psnr_std"], 2)} / {_pm(r["ssim_mean"], r["ssim_std"], 4)}'
                values += [f'**{text}**' if r['vs_best_psnr'] == 'best' else text, r['vs_best_psnr']]
            lines.append('| ' + ' | '.join(values) + ' |')
        at_scale = {b['dataset']: b for b in bicubic if b['scale'] == scale}
        if at_scale:
            values = ['bicubic'] + [
                v for d in datasets for v in (f'{at_scale[d]["psnr"]:.2f} / {at_scale[d]["ssim"]:.4f}', '-')
            ]
            lines.append('| ' + ' | '.join(values) + ' |')
        lines += ['', 'PSNR differences row - column in dB (n.s.: within the seed spread):', '']
        for d in datasets:
            lines += [f'{d}:', '', '| | ' + ' | '.join(networks) + ' |', '|' + ' --- |' * (1 + len(networks))]
            found = {(p['a'], p['b']): p for p in pairs if (p['dataset'], p['scale']) == (d, scale)}
            for a in networks:
                values = [a]
                for b in networks:
                    pair, sign = found.get((a, b)), 1
                    if pair is None and (b, a) in found:
                        pair, sign = found[b, a], -1
                    if pair is None:
                        values.append('')
                    else:
                        diff = sign * pair['psnr_diff']
                        values.append(f'{diff:+.3f}' + ('' if pair['psnr_significant'] else ' n.s.'))
                lines.append('| ' + ' | '.join(values) + ' |')
            lines.append('')
    lines.append(
        'Costs: FLOPs = multiply-accumulates of one forward pass (MMEngine, attention and covariance products '
        'included); train ms/iter from the training logs (validation excluded), mean over seeds; latency = median '
        'per image over seeds; peak memory measured in a fresh process per network (full-image inference, and one '
        "training step of the study's batch), as `tools/benchmark.py speed` does."
    )
    return '\n'.join(lines) + '\n'


def _csv(summary):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, extrasaction='ignore', lineterminator='\n')
    writer.writeheader()
    for row in summary:
        writer.writerow({**row, 'seeds': ' '.join(str(s) for s in row['seeds'])})
    return buffer.getvalue()


def _curves(records, scale, x_key):
    return [
        (r['network'], [(v[x_key], v['psnr']) for v in r['training']['validations']])
        for r in records
        if r['scale'] == scale and r['training']['validations']
    ]


def _points(report, dataset, scale):
    """Points of the PSNR-latency plot of one data set and scale: each network's means, bicubic as a line."""
    points = [
        {'model': r['network'], 'psnr': r['psnr_mean'], 'latency_ms': r['latency_ms'], 'params': r['params']}
        for r in report['summary']
        if (r['dataset'], r['scale']) == (dataset, scale)
    ]
    points += [
        {'model': 'bicubic', 'psnr': b['psnr'], 'latency_ms': None, 'params': None}
        for b in report['bicubic']
        if (b['dataset'], b['scale']) == (dataset, scale)
    ]
    return points


def build_report(study, records, bicubic, memory, params):
    """The report as a JSON-ready dict (see :func:`write_report`)."""
    summary = mark_best(summarize(records, memory, params))
    return {
        'study': study.name,
        'source': study.source,
        'train': study.train,
        'seeds': study.seeds,
        'significance_rule': SIGNIFICANCE_RULE,
        'summary': summary,
        'pairs': pairwise(summary),
        'bicubic': [{k: r[k] for k in ('dataset', 'scale', 'psnr', 'ssim')} for r in bicubic],
        'memory': [{'network': n, 'scale': s, **m} for (n, s), m in memory.items()],
        'runs': records,
    }


def write_report(study, records, bicubic, memory, params):
    """Write report.json, report.csv, report.md and the plots into ``study.out``; returns the report dict."""
    report = build_report(study, records, bicubic, memory, params)
    out = study.out
    write_json(out / 'report.json', report)
    write_atomic(out / 'report.csv', _csv(report['summary']))
    write_atomic(out / 'report.md', markdown(study, report['summary'], report['pairs'], report['bicubic']))
    for scale in study.scales:
        title = f'{study.val_dataset} x{scale}: validation PSNR, one line per seed'
        for name, x_key, x_label in (('iter', 'iter', 'iteration'), ('time', 'seconds', 'training time (s)')):
            curves = _curves(records, scale, x_key)
            write_png(out / f'convergence_{name}_x{scale}.png', plot_curves(curves, title, x_label, 'PSNR (dB)'))
        for dataset in dict.fromkeys(r['dataset'] for r in report['summary'] if r['scale'] == scale):
            title = f'{dataset} x{scale}: mean PSNR over seeds vs latency, bubble ~ parameters'
            write_png(
                out / f'psnr_latency_{dataset}_x{scale}.png', plot_psnr_latency(_points(report, dataset, scale), title)
            )
    return report
