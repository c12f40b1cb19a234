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
from agentgym.spaces import TRAIN_SEED_LIMIT, HeldOut, ParamError, ParamSpace


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
    """The training side of an env's task space: what every teacher samples from.

    ``space`` is the env's ParamSpace narrowed by an optional restriction (a config's
    ``env.params``: allowed values per discrete dim, an interval per continuous one), so
    a teacher works over exactly the dims and values it may choose. :meth:`spec` is the
    only way a teacher turns params into a TaskSpec: it refuses params in the held-out
    region and draws the seed from the training range, so no held-out spec can be made.
    """

    def __init__(self, space: ParamSpace, held_out: HeldOut, restrict: Mapping[str, Any] | None = None):
        self.full_space = space
        self.held_out = held_out
        unknown = set(restrict or {}) - set(space.names)
        if unknown:
            raise ParamError(f"unknown parameter(s) {sorted(unknown)} in the training restriction; this space has {space.names}")
        self.space = ParamSpace([_narrow(d, (restrict or {}).get(d.name)) for d in space])

    def is_allowed(self, params: Mapping[str, Any]) -> bool:
        """True when ``params`` may be trained on (not in the held-out region)."""
        return self.held_out.region is None or not self.held_out.region.contains(params)

    def params(self, rng: np.random.Generator) -> dict[str, Any]:
        """Uniform training params (rejection of the held-out region)."""
        for _ in range(10_000):
            p = self.space.sample(rng)
            if self.is_allowed(p):
                return p
        raise ParamError("the training restriction lies inside the held-out region: nothing can be sampled")

    def held_out_specs(self, n: int, seed: int = 0) -> list[TaskSpec]:
        """Evaluation specs: held-out seeds, params from the same restriction as training
        (the held-out region included), so gains are measured on tasks never trained on."""
        rng = np.random.default_rng(seed)
        picks = rng.choice(len(self.held_out.seeds), size=n, replace=False)
        return [TaskSpec(self.space.sample(rng), int(self.held_out.seeds[int(i)])) for i in picks]

    def seed(self, rng: np.random.Generator) -> int:
        while True:
            s = int(rng.integers(0, TRAIN_SEED_LIMIT))
            if s not in self.held_out.seeds:
                return s

    def spec(self, rng: np.random.Generator, params: Mapping[str, Any] | None = None) -> TaskSpec:
        """A training TaskSpec; given ``params`` must be valid and allowed (else ParamError)."""
        if params is None:
            return TaskSpec(self.params(rng), self.seed(rng))
        clean = self.space.validate(params)
        if not self.is_allowed(clean):
            raise ParamError(f"{clean} lies in the held-out region {self.held_out.region.name!r}: a teacher may not sample it")
        return TaskSpec(clean, self.seed(rng))


def _narrow(dim: Any, allowed: Any) -> Any:
    """``dim`` restricted to ``allowed`` (None: unchanged)."""
    from agentgym.spaces import Categorical, Continuous, Integer

    if allowed is None:
        return dim
    if isinstance(dim, Continuous):
        if not (isinstance(allowed, (list, tuple)) and len(allowed) == 2):
            raise ParamError(f"restriction of {dim.name!r} must be [low, high]")
        lo, hi = (dim.validate(v) for v in allowed)
        return Continuous(dim.name, lo, hi, log=dim.log, description=dim.description)
    values = list(allowed) if isinstance(allowed, (list, tuple, set)) else [allowed]
    if not values:
        raise ParamError(f"restriction of {dim.name!r} allows no value")
    values = [dim.validate(v) for v in values]
    if isinstance(dim, Integer):
        values = sorted(set(values))
        if values == list(range(values[0], values[-1] + 1)):
            return Integer(dim.name, values[0], values[-1], description=dim.description)
    # Keep the declared order of the values (it is the easy-to-hard order for schedules).
    ordered = [v for v in dim.values if any(v == w and isinstance(v, bool) == isinstance(w, bool) for w in values)]
    return Categorical(dim.name, tuple(ordered), description=dim.description)


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
