"""The report of a study: mean and standard deviation over seeds, costs, tests of the differences (``stats``),
convergence plots.

Files (in the study's ``out`` folder, each written atomically): ``report.json`` (everything, per-run values too),
``report.csv`` (one line per network, data set and scale), ``report.md`` (the tables) and PNG plots: validation PSNR
against iteration and against training time per scale (``convergence_iter_x<s>.png``, ``convergence_time_x<s>.png``)
and mean PSNR against latency per data set and scale (``psnr_latency_<set>_x<s>.png``).
"""

import csv
import io
import statistics

from san_plugin.benchmark.figures import network_colours, plot_curves, plot_psnr_latency, save_figure
from san_plugin.study import stats
from san_plugin.utils.atomic_save import write_atomic, write_json

# The quality metrics of every run's rows (higher is better), each summarised as mean and standard deviation over seeds
# and tested between networks; PSNR also ranks the networks (vs best) and sizes the seeds-for-power column.
METRICS = ('psnr', 'ssim')
CSV_COLUMNS = ('network', 'dataset', 'scale', 'seeds', *(f'{m}_{s}' for m in METRICS for s in ('mean', 'std')),
               'params', 'flops', 'flops_input', 'train_ms_per_iter', 'latency_ms', 'infer_peak_mb', 'infer_input',
               'train_peak_mb', 'train_input', 'device', 'vs_best_psnr')  # fmt: skip


def mean_std(values):
    """(mean, sample standard deviation or None for one value) of a list of numbers."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


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


def significance_text(alpha, min_effect_db, tested):
    """How the report tests differences (its Markdown's paragraph and report.json's ``significance.text``).

    Args:
        alpha (float): Significance level of the study.
        min_effect_db (float): The PSNR difference the seeds-needed column is sized for.
        tested (bool): Whether any network has two seeds or more; without them no test is possible.

    Returns:
        str: The paragraph.
    """
    if not tested:
        return (
            'One seed per network: no statistical test is possible, so the report shows no p-values and calls no '
            'difference significant (vs best: untested). Train two seeds or more per network to test differences.'
        )
    return (
        "Across seeds (the networks as training recipes): Welch's t-test on the per-seed mean PSNR (and SSIM) of "
        'the two networks, with the 95% confidence interval of the difference of means (Welch-Satterthwaite degrees '
        f'of freedom); with at most {stats.MAX_PERMUTATION_SEEDS} seeds per network also the exact permutation p '
        'over every assignment of the seeds to the two networks (two-sided, difference of means). A difference is '
        f'significant when its Welch PSNR p, Holm-Bonferroni corrected over all the pairs of the study, is below '
        f'alpha = {alpha:g}; otherwise it is n.s. Seeds for {stats.POWER:.0%} power: the seeds per network with which '
        f'a two-sided two-sample t-test at alpha detects a true difference of {min_effect_db:g} dB at the pooled '
        'standard deviation over seeds of the two networks. Conditional on the trained networks (it says nothing '
        'about training them again): the networks paired image by image (PSNR, mean over seeds per image), the '
        'Wilcoxon signed-rank p over the images of the set and the share of images on which A is better; these '
        'p-values are not corrected for multiplicity.'
    )


def seed_values(records):
    """Per-seed values of each network, data set and scale, and per image.

    Args:
        records (list[dict]): Run records (their ``rows`` hold the quality benchmark's ``per_image`` lists).

    Returns:
        dict[tuple[str, str, int], dict]: ``psnr`` and ``ssim`` (one value per seed) and ``images`` (image name ->
        PSNR per seed) by (network, data set, scale).
    """
    groups = {}
    for record in records:
        for row in record['rows']:
            group = groups.setdefault(
                (record['network'], row['dataset'], record['scale']), {'psnr': [], 'ssim': [], 'images': {}}
            )
            for metric in METRICS:
                group[metric].append(row[metric])
            for image in row.get('per_image', ()):
                group['images'].setdefault(image['image'], []).append(image['psnr'])
    return groups


def compare_pair(a, b, alpha, min_effect_db):
    """The statistics of one pair of networks on one data set and scale (see :func:`significance_text`).

    Args:
        a (dict): :func:`seed_values` entry of network A.
        b (dict): The entry of network B.
        alpha (float): Significance level (of the seeds-needed computation).
        min_effect_db (float): The PSNR difference the seeds-needed computation is sized for.

    Returns:
        dict: ``psnr_diff``, ``psnr_ci95``, ``psnr_p``, ``ssim_diff``, ``ssim_ci95``, ``ssim_p``,
        ``psnr_p_permutation``, ``seeds_needed``, ``images_p`` and ``images_share_a_better``; the p-values,
        intervals and seeds are None when a network has a single seed (the permutation p also beyond
        ``MAX_PERMUTATION_SEEDS`` seeds).
    """
    tested = min(len(a['psnr']), len(b['psnr'])) >= 2
    pair = {}
    for metric in METRICS:
        result = stats.welch(a[metric], b[metric]) if tested else {}
        pair[f'{metric}_diff'] = statistics.fmean(a[metric]) - statistics.fmean(b[metric])
        pair[f'{metric}_ci95'] = result.get('ci95')
        pair[f'{metric}_p'] = result.get('p')
    exact = tested and max(len(a['psnr']), len(b['psnr'])) <= stats.MAX_PERMUTATION_SEEDS
    pair['psnr_p_permutation'] = stats.permutation_p(a['psnr'], b['psnr']) if exact else None
    pair['seeds_needed'] = (
        stats.seeds_needed(stats.pooled_std(a['psnr'], b['psnr']), min_effect_db, alpha) if tested else None
    )
    images = [name for name in a['images'] if name in b['images']]
    p_images, share = (
        stats.signed_rank(
            [statistics.fmean(a['images'][name]) for name in images],
            [statistics.fmean(b['images'][name]) for name in images],
        )
        if images
        else (None, None)
    )
    pair['images_p'] = p_images if tested else None
    pair['images_share_a_better'] = share
    return pair


def pairwise(summary, records, alpha=0.05, min_effect_db=0.05):
    """Every pair of networks on each data set and scale, with the statistics of :func:`compare_pair`, the
    Holm-Bonferroni corrected PSNR p over all the pairs (``psnr_p_holm``) and the verdict (``psnr_significant``).

    Args:
        summary (list[dict]): Rows of :func:`summarize`.
        records (list[dict]): The run records they summarise.
        alpha (float): Significance level. Default: 0.05.
        min_effect_db (float): PSNR difference for ``seeds_needed``. Default: 0.05.

    Returns:
        list[dict]: One entry per pair: ``a``, ``b``, ``dataset``, ``scale`` and the statistics.
    """
    values = seed_values(records)
    pairs = []
    for i, a in enumerate(summary):
        for b in summary[i + 1 :]:
            if (a['dataset'], a['scale']) != (b['dataset'], b['scale']):
                continue
            key_a, key_b = ((r['network'], r['dataset'], r['scale']) for r in (a, b))
            pair = {'a': a['network'], 'b': b['network'], 'dataset': a['dataset'], 'scale': a['scale']}
            pairs.append({**pair, **compare_pair(values[key_a], values[key_b], alpha, min_effect_db)})
    for pair, corrected in zip(pairs, stats.holm([p['psnr_p'] for p in pairs])):
        pair['psnr_p_holm'] = corrected
        pair['psnr_significant'] = corrected is not None and corrected < alpha
    return pairs


def find_pair(pairs, a, b, dataset, scale):
    """The entry of ``pairs`` for networks ``a`` and ``b`` in either order, and +1 (as given) or -1 (swapped)."""
    for pair in pairs:
        if (pair['dataset'], pair['scale']) == (dataset, scale):
            if (pair['a'], pair['b']) == (a, b):
                return pair, 1
            if (pair['a'], pair['b']) == (b, a):
                return pair, -1
    raise KeyError(f'no pair {a} - {b} on {dataset} x{scale}')


def mark_best(summary, pairs):
    """Set ``vs_best_psnr`` of each row: 'best', the gap in dB to the best row where :func:`pairwise` calls it
    significant, 'n.s.' where not, or 'untested' (a single seed)."""
    for key in {(r['dataset'], r['scale']) for r in summary}:
        group = [r for r in summary if (r['dataset'], r['scale']) == key]
        best = max(group, key=lambda r: r['psnr_mean'])
        for row in group:
            if row is best:
                row['vs_best_psnr'] = 'best'
                continue
            pair, _ = find_pair(pairs, row['network'], best['network'], *key)
            if pair['psnr_p_holm'] is None:
                row['vs_best_psnr'] = 'untested'
            else:
                gap = row['psnr_mean'] - best['psnr_mean']
                row['vs_best_psnr'] = f'{gap:+.3f}' if pair['psnr_significant'] else 'n.s.'
    return summary


def _pm(mean, std, digits):
    return f'{mean:.{digits}f}' + (f' ± {std:.{digits}f}' if std is not None else '')


def _num(value, digits, unit=1.0):
    return '-' if value is None else f'{value / unit:.{digits}f}'


def _p(value):
    return '-' if value is None else f'{value:.3g}'


def _pair_table(pairs, tested):
    """Markdown lines of the pairs of one data set and scale (no p-value columns when nothing could be tested)."""
    head = ['A', 'B', 'PSNR A - B (dB)']
    if tested:
        head += ['95% CI', 'p Welch', 'p permutation', 'p Holm', 'verdict', f'seeds for {stats.POWER:.0%} power',
                 'images: p Wilcoxon']  # fmt: skip
    head.append('images: A better on')
    lines = ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
    for pair in pairs:
        values = [pair['a'], pair['b'], f'{pair["psnr_diff"]:+.3f}']
        if tested:
            ci, seeds = pair['psnr_ci95'], pair['seeds_needed']
            values += [
                '-' if ci is None else f'[{ci[0]:+.3f}, {ci[1]:+.3f}]',
                _p(pair['psnr_p']),
                _p(pair['psnr_p_permutation']),
                _p(pair['psnr_p_holm']),
                ('significant' if pair['psnr_significant'] else 'n.s.') if pair['psnr_p_holm'] is not None else '-',
                '-' if pair['psnr_p'] is None else (str(seeds) if seeds is not None else f'> {stats.MAX_SEEDS}'),
                _p(pair['images_p']),
            ]
        share = pair['images_share_a_better']
        values.append('-' if share is None else f'{share:.0%}')
        lines.append('| ' + ' | '.join(values) + ' |')
    return lines


def markdown(study, summary, pairs, bicubic, significance):
    """The report's Markdown: per scale a cost table, a quality table and the tests of every pair of networks."""
    lines = [f'# Study {study.name}', '']
    train = study.train
    lines.append(
        f'Every network trained with the same protocol: HR patches {train["gt_size"]}, batch {train["batch_size"]}, '
        f'{train["total_iter"]} iterations, Adam lr {train["lr"]:g} with cosine annealing to {train["eta_min"]:g}, '
        f'L1 loss, data from {train["data"]}; seeds {", ".join(str(s) for s in study.seeds)}. '
        'PSNR / SSIM on the Y channel, crop border = scale, mean ± standard deviation over seeds.'
    )
    lines += ['', significance['text'], '']
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
        lines += ['', 'Quality (PSNR dB / SSIM; vs best: the gap to the best row where significant, else n.s.):', '']
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
        lines += ['', 'Pairs of networks (PSNR; the images columns are conditional on the trained networks):', '']
        for d in datasets:
            found = [p for p in pairs if (p['dataset'], p['scale']) == (d, scale)]
            lines += [f'{d}:', '', *_pair_table(found, significance['tested']), '']
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
    summary = summarize(records, memory, params)
    alpha, min_effect_db = study.alpha, study.min_effect_db
    pairs = pairwise(summary, records, alpha, min_effect_db)
    mark_best(summary, pairs)
    tested = any(p['psnr_p'] is not None for p in pairs)
    return {
        'study': study.name,
        'source': study.source,
        'train': study.train,
        'seeds': study.seeds,
        'significance': {
            'alpha': alpha,
            'min_effect_db': min_effect_db,
            'tested': tested,
            'text': significance_text(alpha, min_effect_db, tested),
        },  # fmt: skip
        'summary': summary,
        'pairs': pairs,
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
    write_atomic(
        out / 'report.md',
        markdown(study, report['summary'], report['pairs'], report['bicubic'], report['significance']),
    )
    colours = network_colours(study.networks)
    for scale in study.scales:
        title = f'{study.val_dataset} x{scale}: validation PSNR, one line per seed'
        for name, x_key, x_label in (('iter', 'iter', 'iteration'), ('time', 'seconds', 'training time (s)')):
            figure = plot_curves(_curves(records, scale, x_key), title, x_label, 'PSNR (dB)', colours=colours)
            save_figure(out / f'convergence_{name}_x{scale}.png', figure)
        for dataset in dict.fromkeys(r['dataset'] for r in report['summary'] if r['scale'] == scale):
            title = f'{dataset} x{scale}: mean PSNR over seeds vs latency, bubble ~ parameters'
            figure = plot_psnr_latency(_points(report, dataset, scale), title, colours=colours)
            save_figure(out / f'psnr_latency_{dataset}_x{scale}.png', figure)
    return report
