"""The Markdown of a study's report (``report.md``): the protocol, how differences are tested, and per scale a cost
table, then per stage a quality table and the tests of every pair of networks for PSNR and each perceptual metric.
"""

from san_plugin.benchmark.metrics import QUALITY_METRICS
from san_plugin.study import stats
from san_plugin.study.metrics import ALWAYS, DEFAULT_METRICS

STAGE_TITLES = {'psnr': 'PSNR stage (L1)', 'gan': 'GAN stage'}


def significance_text(alpha, min_effect_db, tested, metrics=None):
    """How the report tests differences (its Markdown's paragraph and report.json's ``significance.text``).

    Args:
        alpha (float): Significance level of the study.
        min_effect_db (float): The PSNR difference the seeds-needed column is sized for.
        tested (bool): Whether any network has two seeds or more; without them no test is possible.
        metrics (list[Metric] | None): The report's metrics, when there are more than PSNR and SSIM (a paragraph on
            them follows). Default: None.

    Returns:
        str: The paragraph.
    """
    if not tested:
        return (
            'One seed per network: no statistical test is possible, so the report shows no p-values and calls no '
            'difference significant (vs best: untested). Train two seeds or more per network to test differences.'
        )
    text = (
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
    extra = [m for m in metrics or () if m.name not in ALWAYS]
    if extra:
        listed = ', '.join(f'{m.label} (lower is better; seeds for a difference of {m.min_effect:g})' for m in extra)
        text += (
            f' The perceptual metrics, {listed}, are tested the same way, each with its own Holm-Bonferroni '
            'correction over all the pairs of the study (both stages): a difference of one of them is significant '
            'when its own corrected p is below alpha; "better" names the network whose mean is better in the '
            "metric's direction."
        )
    return text


def _pm(mean, std, digits):
    return f'{mean:.{digits}f}' + (f' ± {std:.{digits}f}' if std is not None else '')


def _num(value, digits, unit=1.0):
    return '-' if value is None else f'{value / unit:.{digits}f}'


def _p(value):
    return '-' if value is None else f'{value:.3g}'


def _pair_table(pairs, tested):
    """Markdown lines of the PSNR pairs of one stage, data set and scale (no p-value columns when nothing could be
    tested)."""
    head = ['A', 'B', 'PSNR A - B (dB)']
    if tested:
        head += ['95% CI', 'p Welch', 'p permutation', 'p Holm', 'verdict', f'seeds for {stats.POWER:.0%} power',
                 'images: p Wilcoxon']  # fmt: skip
    head.append('images: A better on')
    lines = ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
    for pair in pairs:
        values = [pair['a'], pair['b'], f'{pair["psnr_diff"]:+.3f}']
        if tested:
            values += _tests(pair, 'psnr', 3) + [_p(pair['images_p'])]
        share = pair['images_share_a_better']
        values.append('-' if share is None else f'{share:.0%}')
        lines.append('| ' + ' | '.join(values) + ' |')
    return lines


def _tests(pair, m, digits):
    """The cells of a pair's tests of metric ``m``: CI, p Welch, p permutation, p Holm, verdict, seeds needed."""
    ci, seeds = pair[f'{m}_ci95'], pair[f'{m}_seeds_needed']
    return [
        '-' if ci is None else f'[{ci[0]:+.{digits}f}, {ci[1]:+.{digits}f}]',
        _p(pair[f'{m}_p']),
        _p(pair[f'{m}_p_permutation']),
        _p(pair[f'{m}_p_holm']),
        ('significant' if pair[f'{m}_significant'] else 'n.s.') if pair[f'{m}_p_holm'] is not None else '-',
        '-' if pair[f'{m}_p'] is None else (str(seeds) if seeds is not None else f'> {stats.MAX_SEEDS}'),
    ]


def _metric_pair_table(pairs, metric, tested):
    """Markdown lines of the pairs of one stage, data set and scale for a perceptual metric."""
    digits = metric.digits + 1
    head = ['A', 'B', f'{metric.label} A - B ({metric.better} is better)']
    if tested:
        head += ['95% CI', 'p Welch', 'p permutation', 'p Holm', 'verdict',
                 f'seeds for {stats.POWER:.0%} power ({metric.min_effect:g})']  # fmt: skip
    head.append('better mean')
    lines = ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
    for pair in pairs:
        values = [pair['a'], pair['b'], f'{pair[f"{metric.name}_diff"]:+.{digits}f}']
        if tested:
            values += _tests(pair, metric.name, digits)
        better = pair[f'{metric.name}_better']
        values.append(pair[better] if better else 'equal')
        lines.append('| ' + ' | '.join(values) + ' |')
    return lines


def _protocol(study):
    """The paragraphs that say how every network was trained."""
    train = study.train
    lines = [
        f'Every network trained with the same protocol: HR patches {train["gt_size"]}, batch {train["batch_size"]}, '
        f'{train["total_iter"]} iterations, Adam lr {train["lr"]:g} with cosine annealing to {train["eta_min"]:g}, '
        f'L1 loss, data from {train["data"]}; seeds {", ".join(str(s) for s in study.seeds)}. '
        'PSNR / SSIM on the Y channel, crop border = scale, mean ± standard deviation over seeds.'
    ]
    gan = study.gan
    if gan is not None:
        losses = [f'L1 x {gan["pixel_weight"]:g}'] if gan['pixel_weight'] else []
        if gan['perceptual_weight']:
            layers = ', '.join(f'{k} {v:g}' for k, v in gan['perceptual_layers'].items())
            losses.append(f'VGG19 perceptual ({layers}) x {gan["perceptual_weight"]:g}')
        losses.append(f'{gan["gan_type"]} relativistic average GAN x {gan["gan_weight"]:g}')
        net_d = gan['network_d']
        arguments = ', '.join(f'{k} {v}' for k, v in net_d.items() if k != 'type')
        lines += [
            '',
            "GAN stage: each PSNR run trained on with BasicSR's ESRGAN step (SANGANModel) from its final weights, "
            f'{gan["total_iter"]} iterations, HR patches {gan["gt_size"]}, batch {gan["batch_size"]}, '
            f'{" + ".join(losses)}; discriminator {net_d["type"]} ({arguments}), initialised identically for every '
            f'network of a seed; Adam lr {gan["lr_g"]:g} (generator) and {gan["lr_d"]:g} (discriminator), halved at '
            f'1/8, 1/4, 1/2 and 3/4 of the iterations; '
            + (f'evaluated with its EMA generator (decay {gan["ema_decay"]:g}).' if gan['ema_decay'] else 'no EMA.'),
        ]
    return lines


def _quality_table(rows, datasets, metrics, bicubic):
    """Markdown lines of one stage's quality table: per data set PSNR / SSIM and each perceptual metric, with their
    vs best columns."""
    extra = [m for m in metrics if m.name not in ALWAYS]
    cell = {(r['network'], r['dataset']): r for r in rows}
    head = ['Network']
    for d in datasets:
        head += [f'{d} PSNR / SSIM', f'{d} vs best'] + [f'{d} {m.label} | {d} {m.label} vs best' for m in extra]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * (1 + (2 + 2 * len(extra)) * len(datasets))]
    for n in dict.fromkeys(r['network'] for r in rows):
        values = [n]
        for d in datasets:
            r = cell[n, d]
            text = f'{_pm(r["psnr_mean"], r["psnr_std"], 2)} / {_pm(r["ssim_mean"], r["ssim_std"], 4)}'
            values += [f'**{text}**' if r['vs_best_psnr'] == 'best' else text, r['vs_best_psnr']]
            for m in extra:
                text = _pm(r[f'{m.name}_mean'], r[f'{m.name}_std'], m.digits)
                best = r[f'vs_best_{m.name}']
                values += [f'**{text}**' if best == 'best' else text, best]
        lines.append('| ' + ' | '.join(values) + ' |')
    if bicubic:
        values = ['bicubic']
        for d in datasets:
            values += [f'{bicubic[d]["psnr"]:.2f} / {bicubic[d]["ssim"]:.4f}', '-']
            values += [v for m in extra for v in (_num(bicubic[d].get(m.name), m.digits), '-')]
        lines.append('| ' + ' | '.join(values) + ' |')
    if any(f'hr_{m.name}' in bicubic.get(d, {}) for m in extra for d in datasets):
        values = ['HR (no-reference metrics of the ground truth)']
        for d in datasets:
            values += ['-', '-'] + [v for m in extra for v in (_num(bicubic[d].get(f'hr_{m.name}'), m.digits), '-')]
        lines.append('| ' + ' | '.join(values) + ' |')
    return lines


def markdown(study, summary, pairs, bicubic, significance, metrics=None, skipped=None):
    """The report's Markdown: per scale a cost table, then per stage a quality table and the tests of every pair of
    networks for PSNR and each perceptual metric.

    Args:
        study (Study): The study.
        summary (list[dict]): Rows of :func:`summarize`, marked by :func:`mark_best`.
        pairs (list[dict]): Rows of :func:`pairwise`.
        bicubic (list[dict]): Bicubic rows (``dataset``, ``scale``, ``psnr``, ``ssim``, the perceptual metrics and
            ``hr_<metric>``, a no-reference metric of the HR images: a row of its own).
        significance (dict): ``tested`` and ``text`` (:func:`significance_text`).
        metrics (list[Metric] | None): The report's metrics. Default: PSNR and SSIM.
        skipped (dict[str, str] | None): Perceptual metrics left out, and why. Default: none.

    Returns:
        str: Markdown text.
    """
    metrics = metrics or DEFAULT_METRICS
    lines = [f'# Study {study.name}', '', *_protocol(study), '', significance['text'], '']
    if skipped:
        lines += ['Metrics left out:', '', *(f'- {QUALITY_METRICS[n][1]}: {why}' for n, why in skipped.items()), '']
    for scale in study.scales:
        rows = [r for r in summary if r['scale'] == scale]
        stages = list(dict.fromkeys(r['stage'] for r in rows))
        networks = list(dict.fromkeys(r['network'] for r in rows))
        datasets = list(dict.fromkeys(r['dataset'] for r in rows))
        first = {
            (n, st): next(r for r in rows if (r['network'], r['stage']) == (n, st)) for n in networks for st in stages
        }
        cell = {(r['network'], r['dataset']): r for r in rows if r['stage'] == stages[0]}
        any_row = rows[0]
        lines += [f'## x{scale}', '', f'Costs (device: {any_row["device"]}):', '']
        head = ['Network', 'Params (M)', f'FLOPs (G) @{any_row["flops_input"]}', 'train ms/iter']
        head += ['GAN train ms/iter'] if 'gan' in stages else []
        head += [f'infer peak MiB @{any_row["infer_input"]}', f'train peak MiB @{any_row["train_input"]}']
        head += [f'{d} ms/img' for d in datasets]
        lines += ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
        for n in networks:
            r = first[n, stages[0]]
            values = [n, _num(r['params'], 3, 1e6), _num(r['flops'], 2, 1e9), _num(r['train_ms_per_iter'], 0)]
            values += [_num(first[n, 'gan']['train_ms_per_iter'], 0)] if 'gan' in stages else []
            values += [_num(r['infer_peak_mb'], 0), _num(r['train_peak_mb'], 0)]
            values += [_num(cell[n, d]['latency_ms'], 1) for d in datasets]
            lines.append('| ' + ' | '.join(values) + ' |')
        at_scale = {b['dataset']: b for b in bicubic if b['scale'] == scale}
        for stage in stages:
            if len(stages) > 1:
                lines += ['', f'### {STAGE_TITLES[stage]}']
            labels = ' / '.join(m.label for m in metrics if m.name not in ALWAYS)
            shown = f'PSNR dB / SSIM, {labels}' if labels else 'PSNR dB / SSIM'
            lines += ['', f'Quality ({shown}; vs best: the gap to the best row where significant, else n.s.):', '']
            at_stage = [r for r in rows if r['stage'] == stage]
            lines += _quality_table(at_stage, datasets, metrics, at_scale)
            found = {d: [p for p in pairs if (p.get('stage', 'psnr'), p['dataset'], p['scale']) == (stage, d, scale)]
                     for d in datasets}  # fmt: skip
            lines += ['', 'Pairs of networks (PSNR; the images columns are conditional on the trained networks):', '']
            for d in datasets:
                lines += [f'{d}:', '', *_pair_table(found[d], significance['tested']), '']
            for metric in metrics:
                if metric.name in ALWAYS:
                    continue
                lines += [f'Pairs of networks ({metric.label}, {metric.better} is better):', '']
                for d in datasets:
                    lines += [f'{d}:', '', *_metric_pair_table(found[d], metric, significance['tested']), '']
    lines.append(
        'Costs: FLOPs = multiply-accumulates of one forward pass (MMEngine, attention and covariance products '
        'included); train ms/iter from the training logs (validation excluded), mean over seeds; latency = median '
        'per image over seeds; peak memory measured in a fresh process per network (full-image inference, and one '
        "training step of the study's batch), as `tools/benchmark.py speed` does."
    )
    return '\n'.join(lines) + '\n'
