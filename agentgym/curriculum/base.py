"""The Teacher protocol, the uniform baseline, and what teachers read and report.

A teacher chooses the next training tasks from the agent's results. It sees only the
environment's ParamSpace, its held-out split (to avoid it) and GroupResults; it knows
nothing else about the environment. Every teacher draws seeds from the training range
and params outside the held-out region, so no held-out spec can ever be sampled.

Teachers and filters read a group's *outcomes*, one number per episode: its success
(the default), its shaped reward, or one named reward part (see :func:`check_outcome`).
Not the shaped reward by default: with std-normalized advantages a 0.1 format bonus in
a group where every answer is right becomes |A| = 1, which would read as learnable as a
task solved half the time. The policy update still uses the shaped reward.

Every teacher's ``metrics()`` says how far its sampling is from uniform:
``teacher/entropy_ratio`` (entropy of its sampling distribution over its arms or cells,
divided by that of uniform sampling: 1 = uniform) and ``teacher/max_prob_ratio`` (its
most likely arm's probability over the uniform one: 1 = uniform).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from agentgym.tasks import TaskSpec, TrainingTasks

#: What teachers and filters may read per episode (``teacher.outcome``); ``part:<name>``
#: names one reward part, e.g. ``part:correct``.
OUTCOMES = ("success", "reward", "part:<name>")


def check_outcome(outcome: str) -> str:
    """``outcome`` if it is ``success``, ``reward`` or ``part:<name>`` (a non-empty name), else ValueError."""
    if outcome in ("success", "reward"):
        return outcome
    if isinstance(outcome, str) and outcome.startswith("part:") and outcome[5:].strip() == outcome[5:] != "":
        return outcome
    raise ValueError(
        f"unknown outcome {outcome!r}: choose success (the episode's success, 0 or 1), reward (its shaped "
        "reward) or part:<name> (one reward part the env reports, e.g. part:correct)"
    )


@dataclass
class GroupResult:
    """One group's result: a task's G rewards, successes and outcomes, and their mean |advantage|.

    ``outcomes`` are what teachers and filters read, one per episode: the successes as
    0/1 unless the run says otherwise (``teacher.outcome``); ``mean_abs_advantage`` is
    the mean |GRPO advantage| of the outcomes (not of the shaped rewards the update
    uses). In a multi-agent game a task gives one group per seat the policy played
    (``agent``), since each seat's returns are compared only with the same seat's.
    ``episodes`` holds the group's records for the trainer; teachers and filters never
    need them.
    """

    task: TaskSpec
    rewards: list[float]
    successes: list[bool]
    mean_abs_advantage: float = 0.0
    agent: str = ""
    episodes: list[Any] = field(default_factory=list, repr=False, compare=False)
    outcomes: list[float] | None = None

    def __post_init__(self) -> None:
        if self.outcomes is None:
            self.outcomes = [float(s) for s in self.successes]
        else:
            self.outcomes = [float(x) for x in self.outcomes]

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.successes)) if self.successes else 0.0

    @property
    def outcome_mean(self) -> float:
        """The mean outcome (the success rate by default); 0 for an empty group."""
        return float(np.mean(self.outcomes)) if self.outcomes else 0.0


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
        # Uniform by construction.
        return {"teacher/groups_seen": float(self._seen), "teacher/entropy_ratio": 1.0, "teacher/max_prob_ratio": 1.0}


class FixedSetTeacher:
    """A fixed handful of training tasks, drawn once from ``seed`` (distinct contents) and
    cycled in order: GRPO's sanity check. A trainer that works drives their success to
    near 1 within a few hundred generations; one that cannot, cannot learn anything."""

    def __init__(self, tasks: TrainingTasks, seed: int = 0, n_tasks: int = 16):
        if isinstance(n_tasks, bool) or not isinstance(n_tasks, int) or n_tasks < 1:
            raise ValueError(f"n_tasks must be an integer >= 1, got {n_tasks!r}")
        rng = np.random.default_rng(seed)
        self.fixed: list[TaskSpec] = []
        keys: set[str] = set()
        for _ in range(1000 * n_tasks):
            if len(self.fixed) == n_tasks:
                break
            spec = tasks.spec(rng)
            key = tasks.content.content_key(spec) if tasks.content is not None else repr(spec.to_dict())
            if key not in keys:
                keys.add(key)
                self.fixed.append(spec)
        self._next = 0

    def sample(self, n: int) -> list[TaskSpec]:
        out = [self.fixed[(self._next + i) % len(self.fixed)] for i in range(n)]
        self._next = (self._next + n) % len(self.fixed)
        return out

    def update(self, results: Sequence[GroupResult]) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {"next": self._next, "fixed": [t.to_dict() for t in self.fixed]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._next = int(state["next"])
        self.fixed = [TaskSpec.from_dict(t) for t in state["fixed"]]

    def metrics(self) -> dict[str, float]:
        return {"teacher/fixed_tasks": float(len(self.fixed))}


def entropy(p: np.ndarray) -> float:
    """Shannon entropy (nats) of a probability vector (zeros contribute nothing)."""
    p = np.asarray(p, dtype=np.float64)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def spread_metrics(p: np.ndarray, uniform: np.ndarray | None = None) -> dict[str, float]:
    """How far a sampling distribution ``p`` over cells is from ``uniform`` sampling (default 1/K each).

    ``teacher/entropy_ratio``: ``1 - KL(p || uniform) / H(uniform)``, clipped to [0, 1]
    (1 when there is one cell). Against 1/K per cell this is the normalized entropy
    ``H(p) / log K``; against a uniform sampling that is not even over the cells (held-out
    corners, unequal bins) it is still 1 exactly when ``p`` samples as uniform does.
    ``teacher/max_prob_ratio``: the largest ``p_i / uniform_i`` (for 1/K per cell: the most
    likely cell's probability times K). Cells uniform sampling never reaches are left out.
    """
    p = np.asarray(p, dtype=np.float64)
    u = np.full(p.size, 1.0 / p.size) if uniform is None else np.asarray(uniform, dtype=np.float64)
    reach = u > 0
    p, u = p[reach], u[reach] / u[reach].sum()
    p = p / p.sum() if p.sum() > 0 else u
    h_u = entropy(u)
    nz = p > 0
    kl = float((p[nz] * np.log(p[nz] / u[nz])).sum())
    ratio = 1.0 if h_u <= 1e-12 else min(1.0, max(0.0, 1.0 - kl / h_u))
    return {"teacher/entropy_ratio": ratio, "teacher/max_prob_ratio": float((p / u).max())}


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
