"""A fixed easy-to-hard schedule along declared dims.

The schedule dims' declared value order is their difficulty order (first value easiest;
continuous dims from low to high, cut into ``bins`` cells). A cell of the product of
the schedule dims has a *level* in [0, 1]: the mean over those dims of the cell's rank
``index / (cells - 1)``, so the easiest cell has level 0 and the hardest level 1. The
*frontier* moves linearly from 0 to 1 over ``total_steps`` calls of :meth:`update`
(``by="updates"``) or ``total_steps`` episodes (``by="episodes"``: every reward of a
GroupResult is one episode), then stays at 1. ``sample`` picks uniformly among the cells
whose level lies within ``window`` of the frontier (the nearest level's cells when none
does) and draws the other dims uniformly. It ignores rewards: it is the hand-made
curriculum that learning-progress teachers are compared with.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

from agentgym.curriculum.base import GroupResult, TrainingTasks, spread_metrics
from agentgym.curriculum.cells import draw_params, fully_held_out, product_cells
from agentgym.env import TaskSpec
from agentgym.spaces import Continuous


class ScheduleTeacher:
    """Easy-to-hard along ``dims``; the frontier reaches the hardest cell after ``total_steps``."""

    def __init__(
        self,
        tasks: TrainingTasks,
        seed: int = 0,
        dims: Sequence[str] | None = None,
        total_steps: int = 100,
        window: float = 0.15,
        by: str = "updates",
        bins: int = 10,
    ):
        self.tasks = tasks
        space = tasks.space
        if dims is None:
            dims = [d.name for d in space if not isinstance(d, Continuous)]
        self.dims = [space[d].name for d in dims]  # unknown names raise ParamError
        if len(set(self.dims)) != len(self.dims):
            raise ValueError(f"schedule dims repeat a name: {self.dims}")
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        if window < 0:
            raise ValueError(f"window must be >= 0, got {window}")
        if by not in ("updates", "episodes"):
            raise ValueError(f"by must be 'updates' or 'episodes', got {by!r}")
        self.total_steps, self.window, self.by, self.bins = int(total_steps), float(window), by, int(bins)
        combos = product_cells(space, self.dims, self.bins)
        sizes = [len(set(c[i].index for c in combos)) for i in range(len(self.dims))]
        self.cells = []
        levels = []
        for combo in combos:
            if fully_held_out(tasks, {c.dim: c for c in combo}):
                continue
            self.cells.append(combo)
            ranks = [c.index / (n - 1) if n > 1 else 0.0 for c, n in zip(combo, sizes)]
            levels.append(float(np.mean(ranks)) if ranks else 0.0)
        if not self.cells:
            raise ValueError("every schedule cell lies in the held-out region: nothing can be sampled")
        self.levels = np.asarray(levels)
        self.rng = np.random.default_rng(seed)
        self._updates = 0
        self._groups = 0
        self._episodes = 0

    # ----- the schedule ------------------------------------------------------------
    @property
    def frontier(self) -> float:
        done = self._updates if self.by == "updates" else self._episodes
        return min(1.0, done / self.total_steps)

    def active_cells(self) -> np.ndarray:
        """Indices of the cells sampled now (uniformly among them)."""
        gap = np.abs(self.levels - self.frontier)
        near = np.flatnonzero(gap <= self.window + 1e-12)
        if near.size == 0:
            near = np.flatnonzero(gap <= gap.min() + 1e-12)
        return near

    def cell_label(self, i: int) -> str:
        return ",".join(f"{c.dim}={c.label}" for c in self.cells[i])

    # ----- Teacher protocol ----------------------------------------------------------
    def sample(self, n: int) -> list[TaskSpec]:
        active = self.active_cells()
        picks = self.rng.integers(active.size, size=n)
        return [
            self.tasks.spec_from(self.rng, partial(draw_params, self.tasks, self.rng, self.cells[active[i]]))
            for i in picks
        ]

    def update(self, results: Sequence[GroupResult]) -> None:
        self._updates += 1
        self._groups += len(results)
        self._episodes += sum(len(r.rewards) for r in results)

    def state_dict(self) -> dict[str, Any]:
        return {
            "rng": self.rng.bit_generator.state,
            "updates": self._updates,
            "groups": self._groups,
            "episodes": self._episodes,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self._updates = int(state["updates"])
        self._groups = int(state["groups"])
        self._episodes = int(state["episodes"])

    def metrics(self) -> dict[str, float]:
        active = self.active_cells()
        p = np.zeros(len(self.cells))
        p[active] = 1.0 / active.size
        return {
            "teacher/frontier": self.frontier,
            "teacher/active_cells": float(active.size),
            "teacher/active_level": float(self.levels[active].mean()),
            "teacher/groups_seen": float(self._groups),
            **spread_metrics(p),
        }
