"""The Teacher protocol and the uniform baseline.

A teacher chooses the next training tasks from the agent's results. It sees only the
environment's ParamSpace, its held-out split (to avoid it) and GroupResults; it knows
nothing else about the environment. Every teacher draws seeds from the training range
and params outside the held-out region, so no held-out spec can ever be sampled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from agentgym.env import TaskSpec
from agentgym.spaces import TRAIN_SEED_LIMIT, HeldOut, ParamError, ParamSpace, Region


@dataclass
class GroupResult:
    """One task's outcome: its G rewards and successes and the mean |advantage|."""

    task: TaskSpec
    rewards: list[float]
    successes: list[bool]
    mean_abs_advantage: float = 0.0

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.successes)) if self.successes else 0.0


class Teacher(Protocol):
    def sample(self, n: int) -> list[TaskSpec]: ...
    def update(self, results: Sequence[GroupResult]) -> None: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...
    def metrics(self) -> dict[str, float]: ...


class TrainingTasks:
    """Draws training specs: params inside an optional restriction, never held out."""

    def __init__(self, space: ParamSpace, held_out: HeldOut, restrict: Mapping[str, Any] | None = None):
        self.space = space
        self.held_out = held_out
        self.restrict = Region({k: (tuple(v) if _is_interval(space, k, v) else list(v)) for k, v in (restrict or {}).items()}, name="train") if restrict else None
        if self.restrict is not None:
            self.restrict.check_against(space)

    def _draw(self, rng: np.random.Generator) -> dict[str, Any]:
        p = self.space.sample(rng)
        if self.restrict is not None:
            for k, allowed in self.restrict.constraints.items():
                if isinstance(allowed, tuple):
                    p[k] = float(rng.uniform(*allowed))
                else:
                    p[k] = allowed[int(rng.integers(len(allowed)))]
        return self.space.validate(p)

    def params(self, rng: np.random.Generator) -> dict[str, Any]:
        for _ in range(10_000):
            p = self._draw(rng)
            if self.held_out.region is None or not self.held_out.region.contains(p):
                return p
        raise ParamError("the training restriction lies inside the held-out region: nothing can be sampled")

    def held_out_specs(self, n: int, seed: int = 0) -> list[TaskSpec]:
        """Evaluation specs: held-out seeds, params from the same restriction as training
        (the held-out region included), so gains are measured on tasks never trained on."""
        rng = np.random.default_rng(seed)
        picks = rng.choice(len(self.held_out.seeds), size=n, replace=False)
        return [TaskSpec(self._draw(rng), int(self.held_out.seeds[int(i)])) for i in picks]

    def seed(self, rng: np.random.Generator) -> int:
        while True:
            s = int(rng.integers(0, TRAIN_SEED_LIMIT))
            if s not in self.held_out.seeds:
                return s

    def spec(self, rng: np.random.Generator, params: Mapping[str, Any] | None = None) -> TaskSpec:
        return TaskSpec(dict(params) if params is not None else self.params(rng), self.seed(rng))


def _is_interval(space: ParamSpace, key: str, value: Any) -> bool:
    from agentgym.spaces import Continuous

    return isinstance(space[key], Continuous)


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
