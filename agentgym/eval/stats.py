"""Uncertainty of held-out numbers: means over tasks, their standard errors and intervals.

Tasks are the sampling unit. A held-out set is a draw of tasks from the env's held-out
space, and a report speaks about that space, so each distinct task contributes one
number (its success rate over k samples, its pass@k estimate, its greedy 0/1) and a
statistic is the mean of those numbers, with the standard error of a mean::

    SE = s / sqrt(n),    s^2 = sum_i (x_i - mean)^2 / (n - 1)

The 95% interval is Student's t with n - 1 degrees of freedom, mean +- t * SE, clipped
to [0, 1] (every number here is a rate). With one task the spread between tasks is
unknown: SE and interval are NaN, never 0. A set on which every task gives the same
number (all solved, none solved) has SE 0 and a zero-width interval: read it as "no
task disagreed", not as certainty (with n tasks all failed, rates up to about 3/n are
still plausible).

Samples of one task are not independent draws of the space: k samples of 64 tasks are
64 units, not 64 k, which is why nothing here pools episodes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from agentgym import stats

#: Coverage of every interval in reports.
LEVEL = 0.95


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` succeeded (Chen et al., 2021):
    ``1 - C(n - c, k) / C(n, k)``, the chance that k of the n drawn without replacement
    hold at least one success."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@dataclass(frozen=True)
class Estimate:
    """A mean over ``tasks`` distinct tasks with its standard error and 95% t interval."""

    value: float
    se: float
    low: float
    high: float
    tasks: int

    @classmethod
    def empty(cls) -> Estimate:
        """No task at all: every number NaN."""
        nan = float("nan")
        return cls(nan, nan, nan, nan, 0)

    def text(self) -> str:
        """``41.2% ± 3.1 [35.0, 47.4]`` (points; the interval omitted when unknown)."""
        if math.isnan(self.value):
            return "-"
        out = f"{self.value:.1%}"
        if math.isnan(self.se):
            return out + " ± ?"
        return f"{out} ± {self.se * 100:.1f} [{self.low * 100:.1f}, {self.high * 100:.1f}]"


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (sample SD with ddof=1 over sqrt(n)), as
    :func:`agentgym.stats.mean_se` computes them.

    No value: (NaN, NaN). One value: (value, NaN), since one task says nothing about the
    spread between tasks."""
    if not values:
        return float("nan"), float("nan")
    mean, se = stats.mean_se(list(values))
    return mean, float("nan") if se is None else se


def t_interval(
    mean: float, se: float, n: int, level: float = LEVEL, bounds: tuple[float, float] = (0.0, 1.0)
) -> tuple[float, float]:
    """``mean +- t_{(1 + level) / 2, n - 1} * se``, clipped to ``bounds``; NaN when ``se``
    is NaN or ``n < 2``."""
    if n < 2 or math.isnan(se) or math.isnan(mean):
        return float("nan"), float("nan")
    half = stats.t_quantile((1 + level) / 2, n - 1) * se
    return max(bounds[0], mean - half), min(bounds[1], mean + half)


def estimate(per_task: Sequence[float], level: float = LEVEL) -> Estimate:
    """The :class:`Estimate` of a mean from one number per distinct task."""
    mean, se = mean_se(per_task)
    low, high = t_interval(mean, se, len(per_task), level)
    return Estimate(mean, se, low, high, len(per_task))


def paired_change(before: Sequence[float], after: Sequence[float], level: float = LEVEL) -> Estimate:
    """The change ``after - before`` of per-task values measured on the same tasks: the
    mean of the per-task differences, its standard error and t interval (in [-1, 1]).

    Pairing by task removes the spread between tasks that both evaluations share, so the
    change is known far better than the two standard errors side by side suggest."""
    if len(before) != len(after):
        raise ValueError(f"paired values need the same tasks: {len(before)} vs {len(after)}")
    diffs = [b - a for a, b in zip(before, after, strict=True)]
    mean, se = mean_se(diffs)
    low, high = t_interval(mean, se, len(diffs), level, bounds=(-1.0, 1.0))
    return Estimate(mean, se, low, high, len(diffs))
