"""The report of a study: mean and standard deviation over seeds, costs, tests of the differences (``stats``) for
every metric, convergence plots and, with a GAN stage, the perception-distortion plane.

Rows and pairs are per stage (``psnr``: the L1 runs; ``gan``: the GAN runs that start from them), network, data set
and scale; the metrics are PSNR and SSIM and the perceptual metrics every run record holds (LPIPS, DISTS, NIQE; see
:mod:`san_plugin.study.metrics`), each knowing whether higher or lower is better.

Files (in the study's ``out`` folder, each written atomically): ``report.json`` (everything, per-run values too),
``report.csv`` (one line per stage, network, data set and scale), ``report.md`` (the tables) and PNG plots:
validation PSNR against iteration and against training time per scale (``convergence_iter_x<s>.png``,
``convergence_time_x<s>.png``; the GAN stage's ``gan_convergence_iter_x<s>.png`` and ``gan_convergence_time_x<s>.png``),
mean PSNR against latency per data set and scale (``psnr_latency_<set>_x<s>.png``) and, with a GAN stage, PSNR
against each perceptual metric, one point per run, each PSNR run joined to its GAN run
(``perception_distortion_<metric>_<set>_x<s>.png``).
"""

import csv
import io
import statistics

from san_plugin.benchmark.figures import (
    network_colours,
    plot_curves,
    plot_perception_distortion,
    plot_psnr_latency,
    save_figure,
)
from san_plugin.benchmark.metrics import QUALITY_METRICS
from san_plugin.study import stats
from san_plugin.study.metrics import ALWAYS, DEFAULT_METRICS, report_metrics
from san_plugin.study.options import MIN_EFFECT
from san_plugin.study.report_markdown import markdown, significance_text
from san_plugin.utils.atomic_save import write_atomic, write_json

# The metrics of every run's rows, each summarised as mean and standard deviation over seeds and tested between
# networks; PSNR also gives the per-image test and the seeds-needed column of the existing reports.
METRICS = ALWAYS
COST_COLUMNS = ('params', 'flops', 'flops_input', 'train_ms_per_iter', 'latency_ms', 'infer_peak_mb', 'infer_input',
                'train_peak_mb', 'train_input', 'device')  # fmt: skip


def csv_columns(metrics=METRICS):
    """The columns of report.csv for the metric names ``metrics``."""
    values = [f'{m}_{s}' for m in metrics for s in ('mean', 'std')]
    return ('network', 'stage', 'dataset', 'scale', 'seeds', *values, *COST_COLUMNS, *(f'vs_best_{m}' for m in metrics))


CSV_COLUMNS = csv_columns()


def stage_of(record):
    """The stage of a run record (records written before the GAN stage existed are PSNR runs)."""
    return record.get('stage', 'psnr')


def mean_std(values):
    """(mean, sample standard deviation or None for one value) of a list of numbers."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def summarize(records, memory, params, metrics=METRICS):
    """Summary rows (one per stage, network, data set and scale) from the runs' records.

    Args:
        records (list[dict]): Run records (``network``, ``scale``, ``seed``, ``stage``, ``rows`` of the quality
            benchmark, ``training`` from :func:`san_plugin.study.logs.read_training_logs`).
        memory (dict[tuple[str, int], dict]): Fresh-process peak memory by (network, scale).
        params (dict[tuple[str, int], int]): Parameter counts by (network, scale).
        metrics (Sequence[str]): The metrics summarised. Default: PSNR and SSIM.

    Returns:
        list[dict]: Rows with the columns of :func:`csv_columns` (``vs_best_*`` filled by :func:`mark_best`).
    """
    groups = {}
    for record in records:
        for row in record['rows']:
            key = (record['network'], stage_of(record), row['dataset'], record['scale'])
            groups.setdefault(key, []).append((record, row))
    summary = []
    for (network, stage, dataset, scale), items in groups.items():
        rows = [row for _, row in items]
        per_iter = [r['training']['seconds_per_iter'] for r, _ in items if r['training']['seconds_per_iter']]
        out = {'network': network, 'stage': stage, 'dataset': dataset, 'scale': scale,
               'seeds': [r['seed'] for r, _ in items]}  # fmt: skip
        for metric in metrics:
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


def seed_values(records, metrics=METRICS):
    """Per-seed values of each stage, network, data set and scale, and per image.

    Args:
        records (list[dict]): Run records (their ``rows`` hold the quality benchmark's ``per_image`` lists).
        metrics (Sequence[str]): The metrics. Default: PSNR and SSIM.

    Returns:
        dict[tuple[str, str, str, int], dict]: One value per seed of every metric, and ``images`` (image name ->
        PSNR per seed), by (network, stage, data set, scale).
    """
    groups = {}
    for record in records:
        for row in record['rows']:
            key = (record['network'], stage_of(record), row['dataset'], record['scale'])
            group = groups.setdefault(key, {**{m: [] for m in metrics}, 'images': {}})
            for metric in metrics:
                group[metric].append(row[metric])
            for image in row.get('per_image', ()):
                group['images'].setdefault(image['image'], []).append(image['psnr'])
    return groups


def compare_pair(a, b, alpha, metrics):
    """The statistics of one pair of networks on one stage, data set and scale (see :func:`significance_text`).

    Args:
        a (dict): :func:`seed_values` entry of network A.
        b (dict): The entry of network B.
        alpha (float): Significance level (of the seeds-needed computation).
        metrics (list[Metric]): The metrics (their directions and effects for seeds-needed).

    Returns:
        dict: For each metric ``m``: ``m_diff`` (A - B), ``m_ci95``, ``m_p`` (Welch), ``m_p_permutation``,
        ``m_seeds_needed`` and ``m_better`` ('a', 'b' or None for equal means, in the metric's direction); and
        ``seeds_needed`` (PSNR's), ``images_p`` and ``images_share_a_better`` (PSNR per image). The p-values,
        intervals and seeds are None when a network has a single seed (the permutation p also beyond
        ``MAX_PERMUTATION_SEEDS`` seeds).
    """
    tested = min(len(a['psnr']), len(b['psnr'])) >= 2
    exact = tested and max(len(a['psnr']), len(b['psnr'])) <= stats.MAX_PERMUTATION_SEEDS
    pair = {}
    for metric in metrics:
        m, values_a, values_b = metric.name, a[metric.name], b[metric.name]
        result = stats.welch(values_a, values_b) if tested else {}
        mean_a, mean_b = statistics.fmean(values_a), statistics.fmean(values_b)
        pair[f'{m}_diff'] = mean_a - mean_b
        pair[f'{m}_ci95'] = result.get('ci95')
        pair[f'{m}_p'] = result.get('p')
        pair[f'{m}_p_permutation'] = stats.permutation_p(values_a, values_b) if exact else None
        pair[f'{m}_seeds_needed'] = (
            stats.seeds_needed(stats.pooled_std(values_a, values_b), metric.min_effect, alpha) if tested else None
        )
        pair[f'{m}_better'] = (
            'a' if metric.is_better(mean_a, mean_b) else 'b' if metric.is_better(mean_b, mean_a) else None
        )
    pair['seeds_needed'] = pair['psnr_seeds_needed']
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


def pairwise(summary, records, alpha=0.05, min_effect_db=0.05, extra=(), min_effect=None):
    """Every pair of networks on each stage, data set and scale, with the statistics of :func:`compare_pair`, and for
    each metric the Holm-Bonferroni corrected p over all the pairs of the study (``<metric>_p_holm``) and the verdict
    (``<metric>_significant``).

    Args:
        summary (list[dict]): Rows of :func:`summarize`.
        records (list[dict]): The run records they summarise.
        alpha (float): Significance level. Default: 0.05.
        min_effect_db (float): PSNR difference for the seeds-needed columns. Default: 0.05.
        extra (Sequence[str]): The perceptual metrics beside PSNR and SSIM. Default: none.
        min_effect (dict[str, float] | None): Their differences for seeds-needed. Default: the study defaults.

    Returns:
        list[dict]: One entry per pair: ``a``, ``b``, ``stage``, ``dataset``, ``scale`` and the statistics.
    """
    metrics = report_metrics(extra, min_effect_db, min_effect or MIN_EFFECT)
    values = seed_values(records, [m.name for m in metrics])
    pairs = []
    for i, a in enumerate(summary):
        for b in summary[i + 1 :]:
            if (a['stage'], a['dataset'], a['scale']) != (b['stage'], b['dataset'], b['scale']):
                continue
            key_a, key_b = ((r['network'], r['stage'], r['dataset'], r['scale']) for r in (a, b))
            pair = {'a': a['network'], 'b': b['network'], 'stage': a['stage'], 'dataset': a['dataset'],
                    'scale': a['scale']}  # fmt: skip
            pairs.append({**pair, **compare_pair(values[key_a], values[key_b], alpha, metrics)})
    for metric in metrics:
        m = metric.name
        for pair, corrected in zip(pairs, stats.holm([p[f'{m}_p'] for p in pairs])):
            pair[f'{m}_p_holm'] = corrected
            pair[f'{m}_significant'] = corrected is not None and corrected < alpha
    return pairs


def find_pair(pairs, a, b, dataset, scale, stage='psnr'):
    """The entry of ``pairs`` for networks ``a`` and ``b`` in either order, and +1 (as given) or -1 (swapped)."""
    for pair in pairs:
        if (pair.get('stage', 'psnr'), pair['dataset'], pair['scale']) == (stage, dataset, scale):
            if (pair['a'], pair['b']) == (a, b):
                return pair, 1
            if (pair['a'], pair['b']) == (b, a):
                return pair, -1
    raise KeyError(f'no pair {a} - {b} on {dataset} x{scale} ({stage} stage)')


def mark_best(summary, pairs, metrics=None):
    """Set ``vs_best_<metric>`` of each row for every metric: 'best', the gap to the best row of its stage, data set
    and scale (higher or lower, as the metric is better) where :func:`pairwise` calls it significant, 'n.s.' where
    not, or 'untested' (a single seed).

    Args:
        summary (list[dict]): Rows of :func:`summarize`.
        pairs (list[dict]): Their pairs (:func:`pairwise`).
        metrics (list[Metric] | None): The metrics. Default: PSNR and SSIM.

    Returns:
        list[dict]: ``summary``.
    """
    metrics = metrics or DEFAULT_METRICS
    for key in {(r['stage'], r['dataset'], r['scale']) for r in summary}:
        group = [r for r in summary if (r['stage'], r['dataset'], r['scale']) == key]
        for metric in metrics:
            m = metric.name
            pick = max if metric.better == 'higher' else min
            best = pick(group, key=lambda r: r[f'{m}_mean'])
            for row in group:
                if row is best:
                    row[f'vs_best_{m}'] = 'best'
                    continue
                pair, _ = find_pair(pairs, row['network'], best['network'], key[1], key[2], key[0])
                if pair[f'{m}_p_holm'] is None:
                    row[f'vs_best_{m}'] = 'untested'
                elif pair[f'{m}_significant']:
                    row[f'vs_best_{m}'] = f'{row[f"{m}_mean"] - best[f"{m}_mean"]:+.{metric.digits + 1}f}'
                else:
                    row[f'vs_best_{m}'] = 'n.s.'
    return summary


def _csv(summary, metrics):
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, csv_columns(metrics), extrasaction='ignore', lineterminator='\n')
    writer.writeheader()
    for row in summary:
        writer.writerow({**row, 'seeds': ' '.join(str(s) for s in row['seeds'])})
    return buffer.getvalue()


def _curves(records, scale, stage, x_key):
    return [
        (r['network'], [(v[x_key], v['psnr']) for v in r['training']['validations']])
        for r in records
        if r['scale'] == scale and stage_of(r) == stage and r['training']['validations']
    ]


def _points(report, dataset, scale):
    """Points of the PSNR-latency plot of one data set and scale: each network's means, bicubic as a line."""
    points = [
        {'model': r['network'], 'psnr': r['psnr_mean'], 'latency_ms': r['latency_ms'], 'params': r['params']}
        for r in report['summary']
        if (r['stage'], r['dataset'], r['scale']) == ('psnr', dataset, scale)
    ]
    points += [
        {'model': 'bicubic', 'psnr': b['psnr'], 'latency_ms': None, 'params': None}
        for b in report['bicubic']
        if (b['dataset'], b['scale']) == (dataset, scale)
    ]
    return points


def perception_distortion_runs(records, metric, dataset, scale):
    """The runs of one data set and scale as points of the perception-distortion plot: PSNR and ``metric`` of every
    run, each GAN run naming the PSNR run it starts from.

    Args:
        records (list[dict]): Run records.
        metric (str): The perceptual metric (a key of their rows).
        dataset (str): The data set.
        scale (int): The scale.

    Returns:
        list[dict]: The ``runs`` of :func:`~san_plugin.benchmark.figures.plot_perception_distortion`.
    """
    runs = []
    for record in records:
        row = next((r for r in record['rows'] if r['dataset'] == dataset), None)
        if record['scale'] != scale or row is None:
            continue
        start = record.get('starts_from') if stage_of(record) == 'gan' else None
        runs.append({'run': record['name'], 'network': record['network'], 'psnr': row['psnr'],
                     'perceptual': row[metric], 'psnr_run': start})  # fmt: skip
    return runs


def reported_metrics(records):
    """The perceptual metrics every run record holds, and those left out with why (from the records' own reasons,
    or because only some records hold them).

    Args:
        records (list[dict]): Run records.

    Returns:
        tuple[list[str], dict[str, str]]: The names (in :data:`~san_plugin.benchmark.metrics.QUALITY_METRICS`'
        order) and the reasons by name.
    """
    rows = [row for record in records for row in record['rows']]
    extra = [name for name in QUALITY_METRICS if rows and all(name in row for row in rows)]
    skipped = {}
    for record in records:
        skipped.update(record.get('skipped_metrics') or {})
    for name in QUALITY_METRICS:
        holding = [record['name'] for record in records if all(name in row for row in record['rows'])]
        if holding and name not in extra:
            lacking = [record['name'] for record in records if record['name'] not in holding]
            skipped[name] = (
                f'left out: {len(lacking)} of {len(records)} run records lack it (evaluated before the study had it: '
                f'{", ".join(lacking[:3])}{", ..." if len(lacking) > 3 else ""}); remove their records in <out>/runs '
                'to evaluate them again (their training is kept)'
            )
    return extra, {name: skipped[name] for name in QUALITY_METRICS if name in skipped and name not in extra}


def report_metric_set(study, records):
    """The metrics of the report: PSNR, SSIM and the perceptual metrics every record holds, each with its
    seeds-needed effect, and the perceptual metrics left out with why (see :func:`reported_metrics`).

    Args:
        study (Study): The study.
        records (list[dict]): Its run records.

    Returns:
        tuple[list[Metric], dict[str, str]]: The metrics, and the reasons of those left out by name.
    """
    extra, skipped = reported_metrics(records)
    return report_metrics(extra, study.min_effect_db, study.min_effect), skipped


def build_report(study, records, bicubic, memory, params):
    """The report as a JSON-ready dict (see :func:`write_report`)."""
    metrics, skipped = report_metric_set(study, records)
    extra = [m.name for m in metrics if m.name not in METRICS]
    names = [m.name for m in metrics]
    summary = summarize(records, memory, params, names)
    alpha, min_effect_db = study.alpha, study.min_effect_db
    pairs = pairwise(summary, records, alpha, min_effect_db, extra, study.min_effect)
    mark_best(summary, pairs, metrics)
    tested = any(p['psnr_p'] is not None for p in pairs)
    return {
        'study': study.name,
        'source': study.source,
        'train': study.train,
        'gan': study.gan,
        'seeds': study.seeds,
        'stages': list(dict.fromkeys(stage_of(r) for r in records)),
        'metrics': [m.record() for m in metrics],
        'skipped_metrics': [{'name': n, 'reason': why} for n, why in skipped.items()],
        'significance': {
            'alpha': alpha,
            'min_effect_db': min_effect_db,
            'tested': tested,
            'text': significance_text(alpha, min_effect_db, tested, metrics),
        },  # fmt: skip
        'summary': summary,
        'pairs': pairs,
        'bicubic': [
            {k: v for k, v in r.items() if k in ('dataset', 'scale', *names, *(f'hr_{n}' for n in names))}
            for r in bicubic
        ],  # fmt: skip
        'memory': [{'network': n, 'scale': s, **m} for (n, s), m in memory.items()],
        'runs': records,
    }


def write_report(study, records, bicubic, memory, params):
    """Write report.json, report.csv, report.md and the plots into ``study.out``; returns the report dict."""
    report = build_report(study, records, bicubic, memory, params)
    metrics, skipped = report_metric_set(study, records)
    out = study.out
    write_json(out / 'report.json', report)
    write_atomic(out / 'report.csv', _csv(report['summary'], [m.name for m in metrics]))
    text = markdown(study, report['summary'], report['pairs'], report['bicubic'], report['significance'], metrics,
                    skipped)  # fmt: skip
    write_atomic(out / 'report.md', text)
    colours = network_colours(study.networks)
    for scale in study.scales:
        for stage in report['stages']:
            prefix, what = ('', '') if stage == 'psnr' else ('gan_', ' in the GAN stage')
            title = f'{study.val_dataset} x{scale}: validation PSNR{what}, one line per seed'
            for name, x_key, x_label in (('iter', 'iter', 'iteration'), ('time', 'seconds', 'training time (s)')):
                figure = plot_curves(
                    _curves(records, scale, stage, x_key), title, x_label, 'PSNR (dB)', colours=colours
                )
                save_figure(out / f'{prefix}convergence_{name}_x{scale}.png', figure)
        datasets = dict.fromkeys(r['dataset'] for r in report['summary'] if r['scale'] == scale)
        for dataset in datasets:
            title = f'{dataset} x{scale}: mean PSNR over seeds vs latency, bubble ~ parameters'
            figure = plot_psnr_latency(_points(report, dataset, scale), title, colours=colours)
            save_figure(out / f'psnr_latency_{dataset}_x{scale}.png', figure)
            if 'gan' not in report['stages']:
                continue
            for metric in metrics:
                if metric.name in METRICS:
                    continue
                title = (f'{dataset} x{scale}: {metric.label} against PSNR, one point per run; '
                         'each PSNR run joined to its GAN run')  # fmt: skip
                runs = perception_distortion_runs(records, metric.name, dataset, scale)
                figure = plot_perception_distortion(runs, title, f'{metric.label} (lower is better)', colours=colours)
                save_figure(out / f'perception_distortion_{metric.name}_{dataset}_x{scale}.png', figure)
    return report
