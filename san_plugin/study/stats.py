"""The statistics of a study's report: is a difference between two networks more than the seed-to-seed noise?

Across seeds (the networks as a training recipe): Welch's t-test on the per-seed means and the 95% confidence
interval of the difference (Welch-Satterthwaite degrees of freedom), the exact permutation test over every
assignment of the seeds when there are few, Holm-Bonferroni over all the pairs of a study, and the seeds per network
a two-sample t-test needs for a given power. Conditional on the trained networks: the Wilcoxon signed-rank test over
the images of a test set, pairing the networks image by image.
"""

import math
import statistics

import numpy as np
from scipy import stats

# Up to this many seeds per network the exact permutation p-value is computed (C(12, 6) = 924 splits).
MAX_PERMUTATION_SEEDS = 6
# Differences of means (dB) closer than this are ties in the permutation test: splits whose differences are equal but
# for floating-point rounding count as at least as extreme as the observed one.
TIE_TOLERANCE = 1e-9
CONFIDENCE = 0.95
POWER = 0.8
# seeds_needed gives None beyond this many seeds per network.
MAX_SEEDS = 1000


def welch(a, b):
    """Welch's t-test of ``mean(a) - mean(b)`` and its 95% confidence interval.

    Args:
        a (Sequence[float]): Values of the first network, one per seed (at least 2).
        b (Sequence[float]): Values of the second network (at least 2).

    Returns:
        dict: ``diff`` (mean(a) - mean(b)), ``ci95`` ([low, high]), ``p`` (two-sided), ``df`` (Welch-Satterthwaite;
        None when neither network varies, and then ``p`` is 1 for equal means and 0 otherwise).
    """
    diff = statistics.fmean(a) - statistics.fmean(b)
    if statistics.variance(a) == 0 and statistics.variance(b) == 0:
        return {'diff': diff, 'ci95': [diff, diff], 'p': 1.0 if diff == 0 else 0.0, 'df': None}
    result = stats.ttest_ind(a, b, equal_var=False)
    interval = result.confidence_interval(CONFIDENCE)
    return {'diff': diff, 'ci95': [float(interval.low), float(interval.high)], 'p': float(result.pvalue),
            'df': float(result.df)}  # fmt: skip


def permutation_p(a, b):
    """Exact two-sided permutation p-value of the difference of means (``scipy.stats.permutation_test`` over every
    split): the share of all the ways of splitting the pooled values into groups of ``len(a)`` and ``len(b)`` whose
    difference is at least as large in size, differences equal up to ``TIE_TOLERANCE`` counting as ties.

    Args:
        a (Sequence[float]): Values of the first network (at least 2).
        b (Sequence[float]): Values of the second network (at least 2).

    Returns:
        float: The p-value (the observed split counts, so it is at least ``1 / C(len(a) + len(b), len(a))``).
    """

    def size_of_difference(x, y, axis):
        return np.round(np.abs(np.mean(x, axis=axis) - np.mean(y, axis=axis)) / TIE_TOLERANCE)

    result = stats.permutation_test(
        (a, b), size_of_difference, permutation_type='independent', vectorized=True, n_resamples=np.inf,
        alternative='greater',
    )  # fmt: skip
    return float(result.pvalue)


def holm(pvalues):
    """Holm-Bonferroni adjusted p-values (step-down; None entries are left out and stay None).

    Args:
        pvalues (Sequence[float | None]): Raw p-values.

    Returns:
        list[float | None]: Adjusted p-values in the same order; each is below ``alpha`` exactly when Holm's procedure
        at ``alpha`` rejects that hypothesis.
    """
    present = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    adjusted = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (len(present) - rank) * p))
        adjusted[i] = running
    return adjusted


def pooled_std(a, b):
    """Pooled sample standard deviation of two groups (each of at least 2 values)."""
    dof = len(a) + len(b) - 2
    return math.sqrt(((len(a) - 1) * statistics.variance(a) + (len(b) - 1) * statistics.variance(b)) / dof)


def t_test_power(n, std, effect, alpha):
    """Power of the two-sided two-sample t-test with ``n`` values per group (noncentral t distribution).

    Args:
        n (int | ndarray): Values per group (>= 2).
        std (float): Standard deviation of one value (> 0).
        effect (float): True difference of the means.
        alpha (float): Significance level.

    Returns:
        float | ndarray: Probability of a p-value below ``alpha``.
    """
    n = np.asarray(n, dtype=float)
    dof = 2 * n - 2
    noncentrality = effect / (std * np.sqrt(2 / n))
    critical = stats.t.ppf(1 - alpha / 2, dof)
    return stats.nct.sf(critical, dof, noncentrality) + stats.nct.cdf(-critical, dof, noncentrality)


def seeds_needed(std, effect, alpha, power=POWER):
    """The fewest seeds per network with which a two-sample two-sided t-test at ``alpha`` detects a true difference
    of ``effect`` with probability ``power``, for seed standard deviation ``std``.

    Args:
        std (float): Standard deviation over seeds.
        effect (float): The difference to detect (> 0).
        alpha (float): Significance level.
        power (float): Wanted power. Default: 0.8.

    Returns:
        int | None: Seeds per network (at least 2), or None if more than ``MAX_SEEDS`` are needed.
    """
    if std == 0:
        return 2
    counts = np.arange(2, MAX_SEEDS + 1)
    enough = np.nonzero(t_test_power(counts, std, effect, alpha) >= power)[0]
    return int(counts[enough[0]]) if enough.size else None


def signed_rank(a, b):
    """Wilcoxon signed-rank test of paired values (two-sided) and the share of pairs where ``a`` is larger.

    Args:
        a (Sequence[float]): Values of the first network, one per image.
        b (Sequence[float]): Values of the second network on the same images.

    Returns:
        tuple[float, float]: The p-value (1 when every pair is equal) and the share of images with ``a > b``.
    """
    diffs = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    share = float(np.mean(diffs > 0))
    if not np.any(diffs):
        return 1.0, share
    return float(stats.wilcoxon(diffs).pvalue), share
