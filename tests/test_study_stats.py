"""The statistics of a study's report, each checked against a computation written out here from its formula, on
constructed run records with known answers."""

import itertools
import math

import pytest
from helpers.study import record
from scipy import integrate
from scipy.stats import chi2, norm, t

from san_plugin.study import stats
from san_plugin.study.metrics import report_metrics
from san_plugin.study.options import MIN_EFFECT
from san_plugin.study.report import mark_best, pairwise, summarize
from san_plugin.study.report_markdown import markdown, significance_text

A = [30.1, 30.3, 30.2, 30.5]
B = [29.9, 30.0, 30.2]


def hand_welch(a, b):
    """Welch's t statistic, Welch-Satterthwaite df, two-sided p and 95% interval from their textbook formulas."""
    mean_a, mean_b = sum(a) / len(a), sum(b) / len(b)
    var_a = sum((x - mean_a) ** 2 for x in a) / (len(a) - 1)
    var_b = sum((x - mean_b) ** 2 for x in b) / (len(b) - 1)
    va, vb = var_a / len(a), var_b / len(b)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    diff = mean_a - mean_b
    half = t.ppf(0.975, df) * se
    return diff, 2 * t.sf(abs(diff) / se, df), [diff - half, diff + half], df


def hand_power(n, std, effect, alpha):
    """P(|T| > c) for T = (Z + delta) / sqrt(V / df), V ~ chi2(df): the noncentral t by integration over V."""
    df = 2 * n - 2
    delta = effect / (std * math.sqrt(2 / n))
    crit = t.ppf(1 - alpha / 2, df)

    def rejected(v):
        scale = crit * math.sqrt(v / df)
        return (norm.sf(scale - delta) + norm.cdf(-scale - delta)) * chi2.pdf(v, df)

    return integrate.quad(rejected, chi2.ppf(1e-12, df), chi2.isf(1e-12, df), limit=200)[0]


def hand_signed_rank_p(diffs):
    """Exact two-sided Wilcoxon p: every sign pattern of the ranks of |d| (distinct, non-zero)."""
    ranks = {d: r + 1 for r, d in enumerate(sorted(diffs, key=abs))}
    plus = sum(ranks[d] for d in diffs if d > 0)
    total = len(diffs) * (len(diffs) + 1) // 2
    smaller = min(plus, total - plus)
    patterns = list(itertools.product((0, 1), repeat=len(diffs)))
    low = sum(sum(r for r, s in zip(range(1, len(diffs) + 1), signs) if s) <= smaller for signs in patterns)
    return min(1.0, 2 * low / len(patterns))


def test_welch_matches_the_formulas():
    diff, p, ci, df = hand_welch(A, B)
    result = stats.welch(A, B)
    assert result['diff'] == pytest.approx(diff)
    assert result['p'] == pytest.approx(p, rel=1e-9)
    assert result['ci95'] == pytest.approx(ci, rel=1e-9)
    assert result['df'] == pytest.approx(df, rel=1e-9)
    constant = stats.welch([30.0, 30.0], [30.0, 30.0])
    assert constant['p'] == 1.0 and constant['ci95'] == [0.0, 0.0]
    assert stats.welch([31.0, 31.0], [30.0, 30.0])['p'] == 0.0


@pytest.mark.parametrize(
    'a, b, expected',
    [
        ([1, 2, 3], [4, 5, 6], 2 / 20),  # only the observed split and its mirror are as extreme
        ([1, 2, 4], [3, 5, 6], 4 / 20),  # |2 s - 21| >= 7 for the subset sums s = 6, 7, 14, 15
        ([5, 5], [5, 5], 1.0),
        # differences of means equal but for floating-point rounding are ties: 14 of the 20 splits, counted exactly
        ([30.1, 30.2, 30.3], [30.4, 29.9, 30.0], 14 / 20),
        ([30.1, 30.3, 30.2, 30.5], [29.9, 30.0, 30.2], 5 / 35),  # unequal groups
    ],
)
def test_permutation_p_counts_every_split(a, b, expected):
    assert stats.permutation_p(a, b) == pytest.approx(expected)


def test_permutation_p_needs_two_values_per_network():
    # splits {1,3}|{2}: 0, {1,2}|{3}: -1.5, {2,3}|{1}: 1.5 would give 1; the report tests two seeds or more only
    with pytest.raises(ValueError, match='two or more observations'):
        stats.permutation_p([1, 3], [2])


def test_holm_steps_down_and_stays_monotone():
    # sorted: 0.005 * 4 = 0.02, 0.01 * 3 = 0.03, 0.03 * 2 = 0.06, 0.04 * 1 = 0.04 -> raised to 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([None, 0.5, 0.6]) == [None, 1.0, 1.0]


@pytest.mark.parametrize('std, effect, alpha', [(0.1, 0.05, 0.05), (0.02, 0.05, 0.05), (0.3, 0.1, 0.01)])
def test_seeds_needed_is_the_first_n_with_80_percent_power(std, effect, alpha):
    n = stats.seeds_needed(std, effect, alpha)
    assert hand_power(n, std, effect, alpha) >= 0.8
    if n > 2:
        assert hand_power(n - 1, std, effect, alpha) < 0.8
    normal = 2 * (norm.ppf(1 - alpha / 2) + norm.ppf(0.8)) ** 2 * (std / effect) ** 2
    assert math.floor(normal) <= n <= math.ceil(normal) + 3  # the t-test needs a little more than the z-test


def test_pooled_std_matches_the_formula():
    mean_a, mean_b = sum(A) / 4, sum(B) / 3
    pooled = (sum((x - mean_a) ** 2 for x in A) + sum((x - mean_b) ** 2 for x in B)) / 5
    assert stats.pooled_std(A, B) == pytest.approx(math.sqrt(pooled))


def test_signed_rank_matches_the_exact_distribution():
    a = [30.0, 31.2, 29.5, 28.0, 33.3, 27.1]
    b = [29.7, 31.6, 29.0, 27.1, 33.25, 28.9]
    diffs = [x - y for x, y in zip(a, b)]
    p, share = stats.signed_rank(a, b)
    assert p == pytest.approx(hand_signed_rank_p(diffs))
    assert share == 4 / 6
    assert stats.signed_rank([1, 2, 3, 4, 5], [0, 0, 0, 0, 0]) == (pytest.approx(2 / 32), 1.0)
    assert stats.signed_rank([1, 2], [1, 2]) == (1.0, 0.0)


BASE = [30.0, 28.0, 32.0, 26.0, 31.0, 29.0]
# Per seed, an offset of every image: the seed-to-seed noise.
NOISE = (0.0, 0.06, -0.04)


def study_records(offsets, noise=NOISE):
    """Records of networks whose images are BASE plus the network's offset (0.75 to 1.25 times it from the first
    image to the last: no two images differ by as much) plus the seed's noise (+ a small tilt per seed)."""
    return [
        record(network, seed, [v + offset * (0.75 + 0.1 * i) + shift + 0.001 * i * seed for i, v in enumerate(BASE)])
        for network, offset in offsets.items()
        for seed, shift in enumerate(noise)
    ]


def study_report(records, alpha=0.05, min_effect_db=0.05):
    memory = {(r['network'], 2): {'infer_peak_mb': 1, 'infer_input': '-', 'train_peak_mb': 1, 'train_input': '-'}
              for r in records}  # fmt: skip
    summary = summarize(records, memory, {key: 1 for key in memory})
    pairs = pairwise(summary, records, alpha, min_effect_db)
    return mark_best(summary, pairs), {(p['a'], p['b']): p for p in pairs}


def test_pairs_carry_every_statistic_computed_by_hand():
    records = study_records({'SAN': 0.5, 'RCAN': 0.0, 'DRLN': 0.02})
    summary, pairs = study_report(records)
    seed_means = {n: [r['rows'][0]['psnr'] for r in records if r['network'] == n] for n in ('SAN', 'RCAN', 'DRLN')}
    raw = {}
    for (a, b), pair in pairs.items():
        diff, p, ci, _ = hand_welch(seed_means[a], seed_means[b])
        assert pair['psnr_diff'] == pytest.approx(diff) and pair['psnr_p'] == pytest.approx(p, rel=1e-9)
        assert pair['psnr_ci95'] == pytest.approx(ci, rel=1e-9)
        ssim = {n: [r['rows'][0]['ssim'] for r in records if r['network'] == n] for n in (a, b)}
        _, ssim_p, ssim_ci, _ = hand_welch(ssim[a], ssim[b])
        assert pair['ssim_p'] == pytest.approx(ssim_p, rel=1e-9) and pair['ssim_ci95'] == pytest.approx(ssim_ci)
        pooled = seed_means[a] + seed_means[b]
        splits = [
            abs(sum(pooled[i] for i in chosen) / 3 - sum(pooled[i] for i in range(6) if i not in chosen) / 3)
            for chosen in itertools.combinations(range(6), 3)
        ]
        assert pair['psnr_p_permutation'] == pytest.approx(sum(s >= abs(diff) - 1e-9 for s in splits) / len(splits))
        image_means = {
            n: [sum(r['rows'][0]['per_image'][i]['psnr'] for r in records if r['network'] == n) / 3 for i in range(6)]
            for n in (a, b)
        }
        image_diffs = [x - y for x, y in zip(image_means[a], image_means[b])]
        assert pair['images_p'] == pytest.approx(hand_signed_rank_p(image_diffs))
        assert pair['images_share_a_better'] == sum(d > 0 for d in image_diffs) / 6
        squares = sum((x - sum(v) / 3) ** 2 for v in (seed_means[a], seed_means[b]) for x in v)
        n = pair['seeds_needed']
        assert hand_power(n, math.sqrt(squares / 4), 0.05, 0.05) >= 0.8
        assert n == 2 or hand_power(n - 1, math.sqrt(squares / 4), 0.05, 0.05) < 0.8
        raw[a, b] = p
    ordered = sorted(raw, key=raw.get)
    expected_holm, running = {}, 0.0
    for rank, key in enumerate(ordered):
        running = max(running, min(1.0, (3 - rank) * raw[key]))
        expected_holm[key] = running
    for key, pair in pairs.items():
        assert pair['psnr_p_holm'] == pytest.approx(expected_holm[key])
        assert pair['psnr_significant'] == (expected_holm[key] < 0.05)
    # SAN is 0.5 dB above both, far beyond the seed noise; RCAN and DRLN differ by 0.02 dB, well inside it.
    assert pairs['SAN', 'RCAN']['psnr_significant'] and pairs['SAN', 'DRLN']['psnr_significant']
    assert not pairs['RCAN', 'DRLN']['psnr_significant']
    assert pairs['SAN', 'RCAN']['images_share_a_better'] == 1.0
    assert {r['network']: r['vs_best_psnr'] for r in summary} == {'SAN': 'best', 'RCAN': '-0.500', 'DRLN': '-0.480'}


@pytest.mark.parametrize('noise', [(0.0, 0.06, -0.04), (0.0, 0.3, -0.2), (0.0, 0.001, -0.001)])
def test_equal_networks_are_never_significant_and_separated_ones_always(noise):
    equal = study_records({'A': 0.0, 'B': 0.0}, noise)
    _, pairs = study_report(equal)
    assert pairs['A', 'B']['psnr_p'] == 1.0 and not pairs['A', 'B']['psnr_significant']
    separated = study_records({'A': 0.0, 'B': 1.0 + 2 * (max(noise) - min(noise))}, noise)
    _, pairs = study_report(separated)
    assert pairs['A', 'B']['psnr_significant'] and pairs['A', 'B']['psnr_ci95'][1] < 0


def test_one_seed_shows_no_p_values():
    records = study_records({'SAN': 0.5, 'RCAN': 0.0}, (0.0,))
    summary, pairs = study_report(records)
    pair = pairs['SAN', 'RCAN']
    assert pair['psnr_diff'] == pytest.approx(0.5) and pair['images_share_a_better'] == 1.0
    for key in ('psnr_p', 'psnr_ci95', 'psnr_p_permutation', 'psnr_p_holm', 'seeds_needed', 'images_p'):
        assert pair[key] is None, key
    assert pair['psnr_significant'] is False
    assert [r['vs_best_psnr'] for r in summary] == ['best', 'untested']

    class Study:
        name, seeds, scales, gan = 'one', [0], [2], None
        train = {'gt_size': 32, 'batch_size': 2, 'total_iter': 4, 'lr': 1e-3, 'eta_min': 1e-6, 'data': 'd'}

    significance = {'tested': False, 'text': significance_text(0.05, 0.05, False)}
    text = markdown(Study, summary, list(pairs.values()), [], significance)
    assert 'no statistical test is possible' in text
    assert 'p Welch' not in text and 'Holm' not in text and '| SAN | RCAN | +0.500 | 100% |' in text


def test_every_metric_gets_every_test_and_niqe_knows_lower_is_better():
    # Two stages of SAN and RCAN, three seeds. PSNR: RCAN 0.4 dB above SAN in both stages. NIQE (lower is better):
    # equal in the PSNR stage (within the noise), SAN 1.0 lower in the GAN stage.
    niqe_offsets = {('psnr', 'SAN'): 0.0, ('psnr', 'RCAN'): 0.01, ('gan', 'SAN'): -1.0, ('gan', 'RCAN'): 0.0}
    records = [
        record(network, seed, [v + (0.4 if network == 'RCAN' else 0.0) + shift for v in BASE], stage=stage,
               niqe=[6.0 + niqe_offsets[stage, network] + 0.1 * i + 2 * shift + 0.01 * i * seed for i in range(6)])
        for stage in ('psnr', 'gan')
        for network in ('SAN', 'RCAN')
        for seed, shift in enumerate(NOISE)
    ]  # fmt: skip
    memory = {(n, 2): {'infer_peak_mb': 1, 'infer_input': '-', 'train_peak_mb': 1, 'train_input': '-'}
              for n in ('SAN', 'RCAN')}  # fmt: skip
    metrics = report_metrics(['niqe'], 0.05, MIN_EFFECT)
    summary = summarize(records, memory, {key: 1 for key in memory}, [m.name for m in metrics])
    pairs = pairwise(summary, records, extra=['niqe'])
    mark_best(summary, pairs, metrics)
    assert [(p['stage'], p['a'], p['b']) for p in pairs] == [('psnr', 'SAN', 'RCAN'), ('gan', 'SAN', 'RCAN')]
    raw = {}
    for pair in pairs:
        seeds = {n: [r['rows'][0]['niqe'] for r in records if (r['network'], r['stage']) == (n, pair['stage'])]
                 for n in ('SAN', 'RCAN')}  # fmt: skip
        diff, p, ci, _ = hand_welch(seeds['SAN'], seeds['RCAN'])
        assert pair['niqe_diff'] == pytest.approx(diff) and pair['niqe_p'] == pytest.approx(p, rel=1e-9)
        assert pair['niqe_ci95'] == pytest.approx(ci, rel=1e-9)
        pooled = seeds['SAN'] + seeds['RCAN']
        splits = [abs(sum(pooled[i] for i in chosen) / 3 - sum(pooled[i] for i in range(6) if i not in chosen) / 3)
                  for chosen in itertools.combinations(range(6), 3)]  # fmt: skip
        assert pair['niqe_p_permutation'] == pytest.approx(sum(s >= abs(diff) - 1e-9 for s in splits) / 20)
        squares = sum((x - sum(v) / 3) ** 2 for v in seeds.values() for x in v)
        n = pair['niqe_seeds_needed']
        assert hand_power(n, math.sqrt(squares / 4), 0.1, 0.05) >= 0.8  # NIQE's default effect: 0.1
        assert n == 2 or hand_power(n - 1, math.sqrt(squares / 4), 0.1, 0.05) < 0.8
        raw[pair['stage']] = p
    # Holm over all the pairs of the study (both stages), for NIQE on its own.
    low, high = sorted(raw, key=raw.get)
    holm = {low: min(1.0, 2 * raw[low]), high: max(min(1.0, 2 * raw[low]), raw[high])}
    for pair in pairs:
        assert pair['niqe_p_holm'] == pytest.approx(holm[pair['stage']])
        assert pair['niqe_significant'] == (holm[pair['stage']] < 0.05)
    psnr_stage, gan_stage = pairs
    # Lower NIQE is better: SAN's 1.0 lower NIQE makes SAN the better network in the GAN stage, and the best row.
    assert gan_stage['niqe_diff'] == pytest.approx(-1.0, abs=0.02) and gan_stage['niqe_better'] == 'a'
    assert gan_stage['niqe_significant'] and not psnr_stage['niqe_significant']
    assert psnr_stage['niqe_better'] == 'a'  # 0.01 lower on average, not significant
    # Higher PSNR is better: RCAN, in both stages.
    assert all(p['psnr_better'] == 'b' and p['psnr_significant'] for p in pairs)
    best = {(r['stage'], r['network']): (r['vs_best_psnr'], r['vs_best_niqe']) for r in summary}
    assert best[('gan', 'SAN')] == ('-0.400', 'best')
    assert best[('gan', 'RCAN')][0] == 'best' and best[('gan', 'RCAN')][1] == '+1.0000'
    assert best[('psnr', 'SAN')] == ('-0.400', 'best') and best[('psnr', 'RCAN')] == ('best', 'n.s.')
    assert metrics[2].record() == {'name': 'niqe', 'label': 'NIQE', 'better': 'lower', 'unit': '', 'min_effect': 0.1}
