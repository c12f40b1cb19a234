"""Batch filters: keep the groups worth training on, with any teacher.

A filter decides per played group whether the trainer should use it. Filters are not
teachers: the teacher still hears about every group played (it learns from the dropped
ones too), and every comparison counts the dropped rollouts as spent compute.

Filters read a group's outcomes (its successes unless the run names another outcome,
``teacher.outcome``), not its shaped rewards: a group where every answer is right and
only a format bonus differs is not "learnable", though its shaped advantages are +-1.

- :class:`DynamicSampling` (DAPO): drop groups whose outcomes are all equal; with
  group-normalized advantages of the outcome they carry no gradient.
- :class:`PassRateBand` (balanced online difficulty filtering): keep groups whose
  mean outcome (the success rate by default) lies in ``[low, high]``.
- :class:`FilteredSampling`: sample from a teacher, play, update the teacher with every
  group, keep the filtered ones, and refill until the target or ``max_rounds``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from agentgym.curriculum.base import GroupResult, Teacher
from agentgym.env import TaskSpec


class Filter(Protocol):
    def keep(self, result: GroupResult) -> bool: ...


class DynamicSampling:
    """Keep a group unless all its outcomes are equal (a group of one episode is dropped)."""

    def __init__(self, tol: float = 0.0):
        self.tol = float(tol)

    def keep(self, result: GroupResult) -> bool:
        r = list(result.outcomes or ())
        return len(r) > 1 and max(r) - min(r) > self.tol

    __call__ = keep

    def __repr__(self) -> str:
        return "DynamicSampling()" if self.tol == 0 else f"DynamicSampling(tol={self.tol})"


class PassRateBand:
    """Keep a group whose mean outcome (success rate by default) is in ``[low, high]`` (both included)."""

    def __init__(self, low: float = 0.1, high: float = 0.9):
        if not 0 <= low <= high <= 1:
            raise ValueError(f"need 0 <= low <= high <= 1, got {low}, {high}")
        self.low, self.high = float(low), float(high)

    def keep(self, result: GroupResult) -> bool:
        return bool(result.outcomes) and self.low <= result.outcome_mean <= self.high

    __call__ = keep

    def __repr__(self) -> str:
        return f"PassRateBand(low={self.low}, high={self.high})"


@dataclass
class FilterStats:
    """What one filtered batch cost: every played group and rollout counts as spent."""

    rounds: int = 0
    groups_played: int = 0
    groups_kept: int = 0
    groups_dropped: int = 0
    rollouts_spent: int = 0
    rollouts_kept: int = 0
    rollouts_dropped: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def add(self, other: FilterStats) -> None:
        for k, v in asdict(other).items():
            setattr(self, k, getattr(self, k) + v)


class FilteredSampling:
    """Fill a batch of ``target`` tasks whose groups pass every filter, refilling up to ``max_rounds``.

    Each round samples ``target - kept`` tasks from the teacher and plays them with
    ``play(specs)``, which returns, for each spec in order, its GroupResult or a list of
    them (a game gives one group per seat). The teacher hears about *every* played group
    of the round (dropped ones too); a group is kept when it passes all filters, and a
    task when one of its groups is. It stops when ``target`` tasks are kept or after
    ``max_rounds`` rounds (the batch may then be short). ``total`` accumulates the stats
    of every call. This is the loop the trainer runs.
    """

    def __init__(self, teacher: Teacher, filters: Filter | Sequence[Filter] = (), max_rounds: int = 4):
        if max_rounds < 1:
            raise ValueError(f"max_rounds must be >= 1, got {max_rounds}")
        self.teacher = teacher
        self.filters: list[Filter] = [filters] if hasattr(filters, "keep") else list(filters)
        self.max_rounds = int(max_rounds)
        self.total = FilterStats()

    def passes(self, result: GroupResult) -> bool:
        return all(f.keep(result) for f in self.filters)

    def __call__(
        self, play: Callable[[list[TaskSpec]], Sequence[GroupResult | Sequence[GroupResult]]], target: int
    ) -> tuple[list[GroupResult], FilterStats]:
        kept: list[list[GroupResult]] = []
        stats = FilterStats()
        while len(kept) < target and stats.rounds < self.max_rounds:
            specs = self.teacher.sample(target - len(kept))
            per_task = [[r] if isinstance(r, GroupResult) else list(r) for r in play(specs)]
            stats.rounds += 1
            self.teacher.update([r for groups in per_task for r in groups])
            for groups in per_task:
                passing = []
                for res in groups:
                    n = len(res.rewards)
                    stats.groups_played += 1
                    stats.rollouts_spent += n
                    if self.passes(res):
                        passing.append(res)
                        stats.groups_kept += 1
                        stats.rollouts_kept += n
                    else:
                        stats.groups_dropped += 1
                        stats.rollouts_dropped += n
                if passing:
                    kept.append(passing)
        self.total.add(stats)
        return [r for groups in kept for r in groups], stats

    def metrics(self) -> dict[str, float]:
        return {f"filter/{k}": float(v) for k, v in self.total.as_dict().items()}


def filtered_sampling(
    teacher: Teacher,
    play: Callable[[list[TaskSpec]], list[GroupResult]],
    target: int,
    filters: Filter | Sequence[Filter] | None = None,
    max_rounds: int = 4,
) -> tuple[list[GroupResult], dict[str, Any]]:
    """One filtered batch: ``(kept groups, stats as a dict)``; see :class:`FilteredSampling`.

    ``filters`` defaults to ``DynamicSampling()``.
    """
    chosen = [DynamicSampling()] if filters is None else filters
    kept, stats = FilteredSampling(teacher, chosen, max_rounds)(play, target)
    return kept, stats.as_dict()
