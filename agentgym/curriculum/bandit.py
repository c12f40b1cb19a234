"""Bandit teachers: arms over the space, a learning signal per arm, and a sampler.

Arms are the cartesian product of the cells of ``arm_dims`` (see
:mod:`agentgym.curriculum.cells`: categorical values, integer values, or ``bins`` equal
unit-cube slices for continuous dims and integer dims with more than ``bins`` values).
Arms whose every point is held out are removed. Inside an arm the other dims are drawn
uniformly (proposals in the held-out region are redrawn, then replaced by a uniform
allowed point). ``update`` maps each GroupResult's params back to its arm.

Per arm the teacher keeps, from every group it hears about:

- a window of the last ``dump_window`` group mean |advantage| values (the advantages of
  the group's *outcomes*: success by default, see :class:`~agentgym.curriculum.GroupResult`);
- a fast EMA of the group's mean outcome, each outcome normalized from ``reward_range``
  to [0, 1] (the default (0, 1) leaves successes as they are), with rate
  ``fast_alpha``, and a slow EMA that tracks the fast one with rate ``slow_alpha``.
  Both start at the arm's first outcome, so an arm seen once has no learning progress yet.

Signals (the arm's current value):

- ``abs_adv``: mean |advantage| over the arm's window (SEC, DUMP); 0 for unseen arms.
- ``ema_lp``: |fast EMA - slow EMA| (online learning progress); 0 for unseen arms.
- ``p1p``: p (1 - p) with p the fast EMA (learnability); 0.25 (p = 0.5) for unseen arms.

Samplers:

- ``sec``: at every update call, ``Q <- (1 - sec_alpha) Q + sec_alpha r`` for every arm,
  where r is the arm's signal in this batch (for ``abs_adv`` the mean |advantage| of
  its groups in the batch; for the EMA signals the value after the batch) and 0 for arms
  not played in it, so they decay; ``p = softmax(Q / sec_tau)``.
- ``dump``: ``UCB_j = s_j + sqrt(2 ln(N + 1) / (n_j + 1))`` with s_j the signal, n_j the
  number of groups arm j ever had and N their sum; ``p = softmax(UCB / dump_temperature)``.
- ``proportional`` (MAGELLAN-style): ``p_j = eps / K + (1 - eps) s_j / sum(s)`` (uniform
  when every signal is 0), ``eps = eps_min + (1 - eps_min) exp(-step / eps_decay)`` with
  step the number of update calls so far.

Defaults are the papers' run settings, scaled to the run where its length matters:

- ``sec_alpha`` 0.5 and ``sec_tau`` 0.3 (SEC's runs use 0.5 and 0.2-0.4; its stated
  defaults 0.1 and 1.0 leave the best arm under 2x as likely as an untried one after 12
  steps). The temperature is on the signal's scale, so for the smaller signals it is
  0.3 times their range: ``p1p`` (at most 0.25) 0.075, ``ema_lp`` (a few hundredths to
  a tenth) 0.03.
- ``eps_decay``: a quarter of the run (``total_steps / 4``: epsilon is about 0.21 at the
  end) when the run's length is known (the trainer passes ``total_steps``, its GRPO
  steps); MAGELLAN's 320 otherwise.
- DUMP: window 300, temperature 0.1 (the paper's).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np

from agentgym.curriculum.base import (
    GroupResult,
    TrainingTasks,
    check_reward_range,
    entropy,
    normalized_reward,
    spread_metrics,
)
from agentgym.curriculum.cells import Cell, cell_index, draw_params, fully_held_out, product_cells
from agentgym.env import TaskSpec
from agentgym.spaces import ParamError

SIGNALS = ("abs_adv", "ema_lp", "p1p")
SAMPLERS = ("sec", "dump", "proportional")
#: SEC's temperature in units of each signal's range (|A| about 1, p(1-p) at most 0.25,
#: EMA learning progress about 0.1 at most).
SEC_TAU = 0.3
SIGNAL_SCALE = {"abs_adv": 1.0, "p1p": 0.25, "ema_lp": 0.1}
#: MAGELLAN's epsilon decay, for a bandit that does not know its run's length.
EPS_DECAY = 320.0


def softmax(x: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(x, dtype=np.float64) / temperature
    z = np.exp(z - z.max())
    return z / z.sum()


def sec_step(q: np.ndarray, r: np.ndarray, alpha: float) -> np.ndarray:
    """SEC's update: every arm moves toward its batch signal (0 when it was not played)."""
    return (1.0 - alpha) * np.asarray(q, dtype=np.float64) + alpha * np.asarray(r, dtype=np.float64)


def ucb(signal: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """DUMP's ``mu_j + sqrt(2 ln(N + 1) / (n_j + 1))``."""
    counts = np.asarray(counts, dtype=np.float64)
    return np.asarray(signal, dtype=np.float64) + np.sqrt(2.0 * math.log(counts.sum() + 1.0) / (counts + 1.0))


def epsilon(step: int, eps_min: float = 0.2, eps_decay: float = EPS_DECAY) -> float:
    """The proportional sampler's exploration rate after ``step`` update calls."""
    return eps_min + (1.0 - eps_min) * math.exp(-step / eps_decay)


def proportional(signal: np.ndarray, eps: float) -> np.ndarray:
    s = np.clip(np.asarray(signal, dtype=np.float64), 0.0, None)
    k = s.size
    if s.sum() <= 0:
        return np.full(k, 1.0 / k)
    return eps / k + (1.0 - eps) * s / s.sum()


class BanditTeacher:
    """A learning-progress bandit over arms of the space (SEC, DUMP, online LP)."""

    def __init__(
        self,
        tasks: TrainingTasks,
        seed: int = 0,
        arm_dims: Sequence[str] | None = None,
        bins: int = 4,
        signal: str = "abs_adv",
        sampler: str = "sec",
        sec_alpha: float = 0.5,
        sec_tau: float | None = None,
        dump_window: int = 300,
        dump_temperature: float = 0.1,
        eps_min: float = 0.2,
        eps_decay: float | None = None,
        fast_alpha: float = 0.1,
        slow_alpha: float = 0.1,
        reward_range: Sequence[float] = (0.0, 1.0),
        total_steps: int | None = None,
    ):
        if signal not in SIGNALS:
            raise ValueError(f"unknown signal {signal!r}; choose one of {SIGNALS}")
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; choose one of {SAMPLERS}")
        if total_steps is not None and total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        if sec_tau is None:
            sec_tau = SEC_TAU * SIGNAL_SCALE[signal]
        if eps_decay is None:
            eps_decay = max(1.0, total_steps / 4) if total_steps else EPS_DECAY
        if bins < 1:
            raise ValueError(f"bins must be >= 1, got {bins}")
        for name, v in (("sec_alpha", sec_alpha), ("fast_alpha", fast_alpha), ("slow_alpha", slow_alpha)):
            if not 0 < v <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {v}")
        for name, v in (("sec_tau", sec_tau), ("dump_temperature", dump_temperature), ("eps_decay", eps_decay)):
            if not v > 0:
                raise ValueError(f"{name} must be > 0, got {v}")
        if not 0 <= eps_min <= 1:
            raise ValueError(f"eps_min must be in [0, 1], got {eps_min}")
        if dump_window < 1:
            raise ValueError(f"dump_window must be >= 1, got {dump_window}")
        self.tasks = tasks
        space = tasks.space
        names = space.names if arm_dims is None else [space[d].name for d in arm_dims]
        if len(set(names)) != len(names):
            raise ValueError(f"arm_dims repeat a name: {names}")
        self.arm_dims = list(names)
        self.bins = int(bins)
        self.signal, self.sampler = signal, sampler
        self.total_steps = None if total_steps is None else int(total_steps)
        self.sec_alpha, self.sec_tau = float(sec_alpha), float(sec_tau)
        self.dump_window, self.dump_temperature = int(dump_window), float(dump_temperature)
        self.eps_min, self.eps_decay = float(eps_min), float(eps_decay)
        self.fast_alpha, self.slow_alpha = float(fast_alpha), float(slow_alpha)
        self.reward_range = check_reward_range(reward_range)

        self._cells: list[tuple[Cell, ...]] = []
        self._arm_of: dict[tuple[int, ...], int] = {}
        for combo in product_cells(space, self.arm_dims, self.bins):
            if fully_held_out(tasks, {c.dim: c for c in combo}):
                continue
            self._arm_of[tuple(c.index for c in combo)] = len(self._cells)
            self._cells.append(combo)
        if not self._cells:
            raise ValueError("every arm lies in the held-out region: nothing can be sampled")
        self._labels = [",".join(f"{c.dim}={c.label}" for c in combo) or "all" for combo in self._cells]
        k = len(self._cells)
        self.rng = np.random.default_rng(seed)
        self._n = np.zeros(k, dtype=np.int64)
        self._windows: list[deque[float]] = [deque(maxlen=self.dump_window) for _ in range(k)]
        self._fast = np.full(k, np.nan)
        self._slow = np.full(k, np.nan)
        self._q = np.zeros(k)
        self._step = 0
        self._unmapped = 0
        self._probs = self._compute_probs()

    # ----- arms ------------------------------------------------------------------------
    def arms(self) -> list[str]:
        """The arms' labels, e.g. ``digits=2,op=+`` (numeric bins as ``x=[0,0.25]`` or ``n=2..5``)."""
        return list(self._labels)

    def arm_of(self, params: Mapping[str, Any]) -> int | None:
        """The arm holding ``params`` (None when it is outside every arm)."""
        try:
            key = tuple(cell_index(self.tasks.space[d], self.bins, params[d]) for d in self.arm_dims)
        except (ParamError, KeyError, TypeError, ValueError):
            return None
        return self._arm_of.get(key)

    def signals(self) -> np.ndarray:
        """Each arm's current signal value."""
        seen = self._n > 0
        if self.signal == "abs_adv":
            return np.array([float(np.mean(w)) if w else 0.0 for w in self._windows])
        if self.signal == "ema_lp":
            return np.where(seen, np.abs(self._fast - self._slow), 0.0)
        p = np.where(seen, self._fast, 0.5)
        return p * (1.0 - p)

    def probabilities(self) -> np.ndarray:
        return self._probs.copy()

    def _compute_probs(self) -> np.ndarray:
        if self.sampler == "sec":
            p = softmax(self._q, self.sec_tau)
        elif self.sampler == "dump":
            p = softmax(ucb(self.signals(), self._n), self.dump_temperature)
        else:
            p = proportional(self.signals(), epsilon(self._step, self.eps_min, self.eps_decay))
        return p / p.sum()

    # ----- Teacher protocol ----------------------------------------------------------
    def sample(self, n: int) -> list[TaskSpec]:
        picks = self.rng.choice(len(self._cells), size=n, p=self._probs)
        return [
            self.tasks.spec_from(self.rng, partial(draw_params, self.tasks, self.rng, self._cells[j])) for j in picks
        ]

    def _outcome(self, r: GroupResult) -> float:
        """The group's mean outcome, each normalized from ``reward_range`` to [0, 1]."""
        if not r.outcomes:
            return 0.0
        return float(np.mean([normalized_reward(x, self.reward_range) for x in r.outcomes]))

    def update(self, results: Sequence[GroupResult]) -> None:
        self._step += 1
        batch: dict[int, list[float]] = {}
        for r in results:
            j = self.arm_of(r.task.params)
            if j is None:
                self._unmapped += 1
                continue
            x = self._outcome(r)
            if self._n[j] == 0:
                self._fast[j] = self._slow[j] = x
            else:
                self._fast[j] = (1.0 - self.fast_alpha) * self._fast[j] + self.fast_alpha * x
                self._slow[j] = (1.0 - self.slow_alpha) * self._slow[j] + self.slow_alpha * self._fast[j]
            a = float(r.mean_abs_advantage)
            self._windows[j].append(a)
            self._n[j] += 1
            batch.setdefault(j, []).append(a)
        if self.sampler == "sec":
            r_batch = np.zeros(len(self._cells))
            current = self.signals()
            for j, advs in batch.items():
                r_batch[j] = float(np.mean(advs)) if self.signal == "abs_adv" else current[j]
            self._q = sec_step(self._q, r_batch, self.sec_alpha)
        self._probs = self._compute_probs()

    def state_dict(self) -> dict[str, Any]:
        def opt(x: float) -> float | None:
            return None if math.isnan(x) else float(x)

        return {
            "rng": self.rng.bit_generator.state,
            "arms": list(self._labels),
            "step": self._step,
            "unmapped": self._unmapped,
            "n": [int(x) for x in self._n],
            "windows": [list(w) for w in self._windows],
            "fast": [opt(x) for x in self._fast],
            "slow": [opt(x) for x in self._slow],
            "q": [float(x) for x in self._q],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if list(state["arms"]) != self._labels:
            raise ValueError("this bandit state was saved over different arms (space, arm_dims or bins differ)")
        self.rng.bit_generator.state = state["rng"]
        self._step = int(state["step"])
        self._unmapped = int(state["unmapped"])
        self._n = np.asarray(state["n"], dtype=np.int64)
        self._windows = [deque((float(x) for x in w), maxlen=self.dump_window) for w in state["windows"]]
        self._fast = np.array([np.nan if x is None else x for x in state["fast"]], dtype=np.float64)
        self._slow = np.array([np.nan if x is None else x for x in state["slow"]], dtype=np.float64)
        self._q = np.asarray(state["q"], dtype=np.float64)
        self._probs = self._compute_probs()

    def metrics(self) -> dict[str, float]:
        p = self._probs
        out = {
            "teacher/step": float(self._step),
            "teacher/groups_seen": float(self._n.sum()),
            "teacher/arms": float(len(self._cells)),
            "teacher/entropy": entropy(p),
            **spread_metrics(p),
            "teacher/unmapped": float(self._unmapped),
        }
        if self.sampler == "proportional":
            out["teacher/epsilon"] = epsilon(self._step, self.eps_min, self.eps_decay)
        s = self.signals()
        for j, label in enumerate(self._labels):
            out[f"teacher/arm[{label}]/p"] = float(p[j])
            out[f"teacher/arm[{label}]/lp"] = float(s[j])
            out[f"teacher/arm[{label}]/n"] = float(self._n[j])
            if self.sampler == "sec":
                out[f"teacher/arm[{label}]/q"] = float(self._q[j])
        return out
