"""Teachers: choose training tasks by the agent's learning progress.

``make_teacher(name, tasks, seed=0, **options)`` builds one by name:

- ``random``: :class:`RandomTeacher` (no options).
- ``schedule``: :class:`ScheduleTeacher` (dims, total_steps, window, by, bins).
- ``bandit``: :class:`BanditTeacher` (arm_dims, bins, signal, sampler, sec_alpha, sec_tau,
  dump_window, dump_temperature, eps_min, eps_decay, fast_alpha, slow_alpha,
  reward_range, total_steps).
- ``alp_gmm``: :class:`ALPGMMTeacher` (fit_rate, random_task_ratio, max_components,
  min_components, history, reward_range, max_tries, total_groups).

Defaults come from the papers' runs, scaled to the run's length where it matters
(:func:`run_options` gives what the trainer passes: the schedule's and the bandit's
``total_steps``, ALP-GMM's ``total_groups``); options a user gives always win.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from agentgym.curriculum.alp_gmm import ALPGMMTeacher
from agentgym.curriculum.bandit import SAMPLERS, SIGNALS, BanditTeacher
from agentgym.curriculum.base import FixedSetTeacher, GroupResult, RandomTeacher, Teacher, TrainingTasks
from agentgym.curriculum.cells import Cell, dim_cells
from agentgym.curriculum.filters import (
    DynamicSampling,
    Filter,
    FilteredSampling,
    FilterStats,
    PassRateBand,
    filtered_sampling,
)
from agentgym.curriculum.schedule import ScheduleTeacher

__all__ = [
    "ALPGMMTeacher",
    "BanditTeacher",
    "Cell",
    "DynamicSampling",
    "Filter",
    "FilterStats",
    "FilteredSampling",
    "GroupResult",
    "PassRateBand",
    "RandomTeacher",
    "SAMPLERS",
    "SIGNALS",
    "ScheduleTeacher",
    "TEACHERS",
    "Teacher",
    "TrainingTasks",
    "FixedSetTeacher",
    "dim_cells",
    "filtered_sampling",
    "make_teacher",
    "run_options",
    "teacher_options",
]

#: Teacher names accepted by :func:`make_teacher` and their classes.
TEACHERS: dict[str, Callable[..., Teacher]] = {
    "random": RandomTeacher,
    "fixed": FixedSetTeacher,
    "schedule": ScheduleTeacher,
    "bandit": BanditTeacher,
    "alp_gmm": ALPGMMTeacher,
}


def teacher_options(name: str) -> list[str]:
    """The options (keyword arguments beyond tasks and seed) teacher ``name`` accepts."""
    cls = _teacher_class(name)
    params = inspect.signature(cls).parameters
    return [p for p in params if p not in ("tasks", "seed")]


def _teacher_class(name: str) -> Callable[..., Teacher]:
    try:
        return TEACHERS[name]
    except KeyError:
        raise ValueError(f"unknown teacher {name!r}; available: {', '.join(TEACHERS)}") from None


def run_options(name: str, steps: int, groups_per_step: int) -> dict[str, Any]:
    """The run-length options teacher ``name`` takes, for a run of ``steps`` teacher updates
    (GRPO steps, and the warm-start steps that sample) of ``groups_per_step`` groups each.

    ``total_steps`` for the schedule (its frontier reaches the hardest cell at the end) and
    the bandit (its epsilon decay), ``total_groups`` for ALP-GMM (its fit rate). Merge them
    under the user's options: ``{**run_options(...), **options}``.
    """
    if steps < 1:
        return {}
    lengths = {"total_steps": int(steps), "total_groups": int(steps) * max(1, int(groups_per_step))}
    return {k: v for k, v in lengths.items() if k in teacher_options(name)}


def make_teacher(name: str, tasks: TrainingTasks, seed: int = 0, **options: Any) -> Teacher:
    """Build teacher ``name`` over ``tasks``; ``options`` go to its constructor.

    An unknown name raises ValueError; an option the teacher does not take raises
    TypeError naming it and listing the ones it does take.
    """
    cls = _teacher_class(name)
    allowed = teacher_options(name)
    unknown = [k for k in options if k not in allowed]
    if unknown:
        have = ", ".join(allowed) if allowed else "none"
        raise TypeError(f"teacher {name!r} has no option {', '.join(map(repr, unknown))}; its options: {have}")
    return cls(tasks, seed=seed, **options)
