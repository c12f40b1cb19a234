"""Statistics for comparing methods over a few seeds: means, standard errors, t tests.

Pure functions of lists of numbers, with no dependency beyond :mod:`math`: Student's t
distribution (its CDF through the regularized incomplete beta function, its quantile by
bisection on the CDF), the mean and its standard error, and the difference of two arms
as Welch's unequal-variance t interval and test or, when both arms ran the same seeds,
the paired t interval and test over the per-seed differences.

With 3-5 seeds the t distribution matters: the 95% quantile at 2 degrees of freedom is
4.30, not 1.96, so an interval from the normal approximation would be half as wide as
it should be.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Difference", "mean_se", "paired_difference", "t_cdf", "t_quantile", "welch_difference"]


def _incomplete_beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of I_x(a, b), evaluated by the modified Lentz method."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        # Two terms per m: the even one d_{2m} = m(b-m)x / ((a+2m-1)(a+2m)), then the odd
        # one d_{2m+1} = -(a+m)(a+b+m)x / ((a+2m)(a+2m+1)).
        for coef in (
            m * (b - m) * x / ((a + 2 * m - 1.0) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1.0)),
        ):
            d = 1.0 + coef * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + coef / c
            c = c if abs(c) > tiny else tiny
            h *= c * d
        if abs(c * d - 1.0) < 1e-15:
            return h
    return h  # not reached for the a, b and x a t distribution asks for


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if not (a > 0 and b > 0):
        raise ValueError(f"incomplete_beta needs a, b > 0, got a={a}, b={b}")
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    # The fraction converges fast only for x below the mean of Beta(a, b); above it, use
    # the symmetry I_x(a, b) = 1 - I_{1-x}(b, a).
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _incomplete_beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _incomplete_beta_fraction(b, a, 1.0 - x) / b


def _check_df(df: float) -> None:
    if not df > 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom (any df > 0, not only integers).

    P(|T| > |t|) = I_{df/(df+t^2)}(df/2, 1/2); ``df = inf`` is the standard normal.
    """
    _check_df(df)
    if math.isinf(df):
        return 0.5 * math.erfc(-t / math.sqrt(2.0))
    tail = incomplete_beta(df / 2.0, 0.5, df / (df + t * t))  # both tails together
    return 1.0 - tail / 2.0 if t >= 0 else tail / 2.0


def t_quantile(q: float, df: float) -> float:
    """The t with P(T <= t) = q (``q`` in (0, 1)), found by bisection on :func:`t_cdf`."""
    _check_df(df)
    if not 0.0 < q < 1.0:
        raise ValueError(f"a quantile needs 0 < q < 1, got {q}")
    if q < 0.5:
        return -t_quantile(1.0 - q, df)
    if q == 0.5:
        return 0.0
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < q:  # the CDF rises with t: widen until the root is bracketed
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * max(1.0, hi):
            break
    return (lo + hi) / 2.0


def mean_se(values: Sequence[float]) -> tuple[float, float | None]:
    """The mean and its standard error, s / sqrt(n) with the n-1 sample variance (None for one value)."""
    if not values:
        raise ValueError("mean_se of no values")
    n = len(values)
    m = sum(values) / n
    if n < 2:
        return m, None
    var = sum((v - m) ** 2 for v in values) / (n - 1)
    # Values equal up to float rounding (0.42 - 0.32 vs 0.47 - 0.37) have no spread, not a
    # tiny one that would make any difference "significant".
    if var <= (1e-12 * max(abs(v) for v in values)) ** 2:
        var = 0.0
    return m, math.sqrt(var / n)


@dataclass
class Difference:
    """``arm`` minus ``baseline``: the estimate, its standard error, a t interval and a two-sided p-value.

    ``test`` says how it was computed: "paired" (t over the per-seed differences, both
    arms ran the same seeds) or "welch" (Welch's unequal-variance t over the two sets of
    seeds). ``low``/``high``/``p``/``df`` are None where the data cannot give them (fewer
    than two values per arm, or no spread at all); ``note`` then says why.
    """

    test: str
    estimate: float
    se: float | None
    df: float | None
    low: float | None
    high: float | None
    p: float | None
    n_arm: int
    n_baseline: int
    level: float = 0.95
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)


def _t_result(test: str, estimate: float, se: float, df: float | None, n_a: int, n_b: int, level: float) -> Difference:
    if se == 0.0 or df is None:
        # Every seed gave the same value (or the same difference): t is undefined.
        why = "no spread over seeds: no interval or test"
        return Difference(test, estimate, 0.0, df, None, None, None, n_a, n_b, level, why)
    half = t_quantile(1.0 - (1.0 - level) / 2.0, df) * se
    t = estimate / se
    p = 2.0 * (1.0 - t_cdf(abs(t), df))
    return Difference(test, estimate, se, df, estimate - half, estimate + half, p, n_a, n_b, level)


def welch_difference(arm: Sequence[float], baseline: Sequence[float], level: float = 0.95) -> Difference:
    """mean(arm) - mean(baseline) with Welch's t interval and two-sided test.

    se^2 = s_a^2/n_a + s_b^2/n_b, and the degrees of freedom are Welch-Satterthwaite's:
    df = se^4 / ((s_a^2/n_a)^2/(n_a-1) + (s_b^2/n_b)^2/(n_b-1)).
    """
    est = sum(arm) / len(arm) - sum(baseline) / len(baseline)
    if len(arm) < 2 or len(baseline) < 2:
        why = "Welch's test needs at least two seeds in each arm"
        return Difference("welch", est, None, None, None, None, None, len(arm), len(baseline), level, why)
    se_a, se_b = mean_se(arm)[1], mean_se(baseline)[1]
    assert se_a is not None and se_b is not None  # two values or more each: both have one
    va, vb = se_a**2, se_b**2  # s_a^2 / n_a, s_b^2 / n_b
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(arm) - 1) + vb**2 / (len(baseline) - 1)) if se > 0 else None
    return _t_result("welch", est, se, df, len(arm), len(baseline), level)


def paired_difference(arm: Sequence[float], baseline: Sequence[float], level: float = 0.95) -> Difference:
    """The mean of arm[i] - baseline[i] (same seed i) with the paired t interval and test, df = n - 1.

    Runs that share a seed share their training task draw and held-out tasks, so their
    results move together; pairing removes that shared part from the noise.
    """
    if len(arm) != len(baseline):
        raise ValueError(f"a paired difference needs one baseline value per arm value ({len(arm)} vs {len(baseline)})")
    diffs = [a - b for a, b in zip(arm, baseline)]
    est, se = mean_se(diffs)
    n = len(diffs)
    if se is None:
        why = "a paired test needs at least two seeds"
        return Difference("paired", est, None, None, None, None, None, n, n, level, why)
    return _t_result("paired", est, se, n - 1, n, n, level)
