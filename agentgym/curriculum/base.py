"""The Teacher protocol and the uniform baseline.

A teacher chooses the next training tasks from the agent's results. It sees only the
environment's ParamSpace, its held-out split (to avoid it) and GroupResults; it knows
nothing else about the environment. Every teacher draws seeds from the training range
and params outside the held-out region, so no held-out spec can ever be sampled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from agentgym.tasks import TaskSpec, TrainingTasks


@dataclass
class GroupResult:
    """One group's outcome: a task's G rewards and successes and the mean |advantage|.

    In a multi-agent game a task gives one group per seat the policy played (``agent``),
    since each seat's returns are compared only with the same seat's. ``episodes`` holds
    the group's records for the trainer; teachers and filters never need them.
    """

    task: TaskSpec
    rewards: list[float]
    successes: list[bool]
    mean_abs_advantage: float = 0.0
    agent: str = ""
    episodes: list[Any] = field(default_factory=list, repr=False, compare=False)

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.successes)) if self.successes else 0.0


class Teacher(Protocol):
    def sample(self, n: int) -> list[TaskSpec]: ...
    def update(self, results: Sequence[GroupResult]) -> None: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...
    def metrics(self) -> dict[str, float]: ...


class RandomTeacher:
    """Uniform over the training space: the baseline every other teacher must beat."""

    def __init__(self, tasks: TrainingTasks, seed: int = 0):
        self.tasks = tasks
        self.rng = np.random.default_rng(seed)
        self._seen = 0

    def sample(self, n: int) -> list[TaskSpec]:
        return [self.tasks.spec(self.rng) for _ in range(n)]

    def update(self, results: Sequence[GroupResult]) -> None:
        self._seen += len(results)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "seen": self._seen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self._seen = int(state["seen"])

    def metrics(self) -> dict[str, float]:
        return {"teacher/groups_seen": float(self._seen)}


def normalized_reward(reward: float, reward_range: tuple[float, float] = (0.0, 1.0)) -> float:
    """``reward`` mapped from ``reward_range`` to [0, 1] and clipped there."""
    lo, hi = reward_range
    return float(min(1.0, max(0.0, (float(reward) - lo) / (hi - lo))))


def check_reward_range(reward_range: Sequence[float]) -> tuple[float, float]:
    """A validated ``(low, high)`` pair with finite ``low < high``."""
    try:
        lo, hi = (float(x) for x in reward_range)
    except (TypeError, ValueError):
        raise ValueError(f"reward_range must be (low, high), got {reward_range!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"reward_range must be finite with low < high, got {reward_range!r}")
    return lo, hi
