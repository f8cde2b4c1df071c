"""Upper-tail probabilities of the count models, in log space so tiny p-values keep their digits.

Pure ``math`` on purpose: a detector scores one window at a time and scipy's per-call
overhead would cap the backtest far below thousands of rows per second.

>>> round(poisson_sf_log10(3, 0.1), 2)  # P(X >= 3 | mean 0.1)
-3.81
>>> betabinom_sf_log10(0, 10, 1.0, 1.0)
0.0
"""

from __future__ import annotations

import math
from collections.abc import Callable

_LN10 = math.log(10.0)
_MAX_TERMS = 100_000


def _sum_ratio_series(first: int, last: int | None, ratio: Callable[[int], float]) -> float:
    """Sum of terms t_k / t_first for k = first..last, terms given by consecutive ratios."""
    total, term, k = 1.0, 1.0, first
    end = last if last is not None else first + _MAX_TERMS
    while k < end:
        term *= ratio(k)
        total += term
        k += 1
        if term < total * 1e-14 and ratio(k) < 1.0:
            break
    return total


def _upper_tail_log10(
    x: int, log_pmf: float, mean: float, last: int | None, ratio: Callable[[int], float]
) -> float:
    """log10 P(X >= x) from log pmf(x) and pmf(k+1)/pmf(k).

    Below the mean the upper tail is close to 1 and its series long, so it is taken as one
    minus the few lower terms instead (the detectors score every window, most of them calm).
    """
    if x > mean + 1:
        return min(0.0, (log_pmf + math.log(_sum_ratio_series(x, last, ratio))) / _LN10)
    lower, term = 0.0, 1.0
    for k in range(x - 1, -1, -1):
        term /= ratio(k)
        lower += term
        if term < lower * 1e-14:
            break
    below = lower * math.exp(log_pmf)
    return math.log1p(-below) / _LN10 if below < 1.0 else -math.inf


def betabinom_sf_log10(x: int, n: int, a: float, b: float) -> float:
    """log10 P(X >= x) for X ~ BetaBinomial(n, a, b)."""
    if x <= 0:
        return 0.0
    if x > n:
        return -math.inf
    log_pmf = (
        math.lgamma(n + 1)
        - math.lgamma(x + 1)
        - math.lgamma(n - x + 1)
        + math.lgamma(x + a)
        + math.lgamma(n - x + b)
        - math.lgamma(n + a + b)
        - math.lgamma(a)
        - math.lgamma(b)
        + math.lgamma(a + b)
    )
    return _upper_tail_log10(
        x, log_pmf, n * a / (a + b), n, lambda k: (n - k) / (k + 1) * (k + a) / (n - k - 1 + b)
    )


def negbinom_sf_log10(x: int, mean: float, dispersion: float) -> float:
    """log10 P(X >= x) for a count with ``var = mean + dispersion * mean**2`` (0 = Poisson)."""
    if x <= 0:
        return 0.0
    if mean <= 0:
        return -math.inf
    if dispersion <= 1e-9:
        return poisson_sf_log10(x, mean)
    r = 1.0 / dispersion
    q = mean / (r + mean)  # success-complement probability of the NB(r, p) form
    log_pmf = (
        math.lgamma(x + r) - math.lgamma(r) - math.lgamma(x + 1) + r * math.log1p(-q)
    ) + x * math.log(q)
    return _upper_tail_log10(x, log_pmf, mean, None, lambda k: (k + r) / (k + 1) * q)


def poisson_sf_log10(x: int, mean: float) -> float:
    """log10 P(X >= x) for X ~ Poisson(mean)."""
    if x <= 0:
        return 0.0
    if mean <= 0:
        return -math.inf
    log_pmf = x * math.log(mean) - mean - math.lgamma(x + 1)
    return _upper_tail_log10(x, log_pmf, mean, None, lambda k: mean / (k + 1))
