"""ALP-GMM (Portelas et al., 2019): Gaussian mixtures over absolute learning progress.

Everything happens in the unit cube of the training space, so continuous, integer and
categorical dims all work (a discrete value is the centre of its cell; a drawn point is
mapped back with ``from_unit``).

- **Episodes.** One GroupResult is one episode: its point is ``to_unit(params)`` and its
  reward the mean of its outcomes (success by default, see
  :class:`~agentgym.curriculum.GroupResult`), each normalized from ``reward_range`` to
  [0, 1] and clipped. (The G outcomes of a group share one task, so their mean is the
  least noisy reading of that task; ``fit_rate`` therefore counts groups.)
- **ALP.** A new episode's absolute learning progress is ``|r - r'|`` with ``r'`` the
  reward of the nearest earlier episode (Euclidean in the unit cube; ties, such as
  repeats of one discrete point, go to the most recent one). The first episode has ALP
  0. Earlier episodes live in a scipy cKDTree plus a small brute-force buffer of recent
  rows; the tree is rebuilt when the buffer passes ``REBUILD`` rows. ``history`` (None:
  unbounded, as published) caps how many past episodes are kept.
- **Fits.** After ``fit_rate`` uniform bootstrap episodes, and then whenever another
  ``fit_rate`` episodes have arrived (checked at the end of each ``update`` call, so one
  large batch triggers one fit), GaussianMixtures with ``min_components..max_components``
  full-covariance components are fitted on the last ``fit_rate`` rows of
  ``[point, ALP]``; the lowest AIC is kept.
- **Sampling.** With probability ``random_task_ratio`` a uniform point; otherwise a
  component chosen with probability proportional to its mean ALP (uniformly when all are
  0), a draw from it, the ALP coordinate dropped, the point clipped to the cube and
  mapped back. Draws in the held-out region are redrawn from the same component up to
  ``max_tries`` times, then replaced by a uniform allowed point.
- **Defaults.** ``random_task_ratio`` 0.2 (the paper's). ``fit_rate``: the paper's 250
  groups never comes in a run of tens of groups (a 12-step run of 4 tasks plays 48), so
  when the run's length is known (the trainer passes ``total_groups``: GRPO steps x
  tasks per step) it is a fifth of the run, at least 20 and at most 250: 48 groups fit
  at 20 and 40, 200 groups every 40. Without ``total_groups``: 250.
- **Metrics.** Beside fits and ALP, how far the sampling is from uniform
  (``teacher/entropy_ratio``, ``teacher/max_prob_ratio``), estimated on a binning of
  the space (discrete dims by value up to ``ESTIMATE_BINS`` values, otherwise
  ``ESTIMATE_BINS`` equal unit-cube slices): the teacher's distribution over the bins
  (its uniform share plus draws from the mixture) against uniform allowed sampling,
  both by seeded Monte Carlo draws that never touch the teacher's own generator. Before
  the first fit the two are the same and the ratio is exactly 1.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from agentgym.curriculum.base import (
    GroupResult,
    TrainingTasks,
    check_reward_range,
    normalized_reward,
    spread_metrics,
)
from agentgym.curriculum.cells import MAX_TRIES, params_from_unit, uniform_allowed
from agentgym.env import TaskSpec
from agentgym.spaces import ParamError

#: Rows kept outside the KD-tree (searched by brute force) before it is rebuilt.
REBUILD = 1024
#: The paper's fit rate, and the bounds of the one scaled to a run's length.
PAPER_FIT_RATE = 250
MIN_FIT_RATE = 20
#: Numeric dims are cut into this many slices to estimate the sampling entropy.
ESTIMATE_BINS = 4
#: Monte Carlo draws of that estimate.
ESTIMATE_DRAWS = 8192


def default_fit_rate(total_groups: int | None) -> int:
    """Groups between fits: a fifth of the run, within [20, 250]; 250 when the run's length is unknown."""
    if not total_groups:
        return PAPER_FIT_RATE
    return int(min(PAPER_FIT_RATE, max(MIN_FIT_RATE, total_groups // 5)))


#: Rows of a batch whose distances are computed at once.
_CHUNK = 256
_TIE = 1e-9  # relative tolerance under which two distances count as equal


class ALPGMMTeacher:
    """Absolute-learning-progress Gaussian mixture teacher over the unit cube."""

    def __init__(
        self,
        tasks: TrainingTasks,
        seed: int = 0,
        fit_rate: int | None = None,
        random_task_ratio: float = 0.2,
        max_components: int = 10,
        min_components: int = 2,
        history: int | None = None,
        reward_range: Sequence[float] = (0.0, 1.0),
        max_tries: int = MAX_TRIES,
        total_groups: int | None = None,
    ):
        if total_groups is not None and total_groups < 1:
            raise ValueError(f"total_groups must be >= 1, got {total_groups}")
        if fit_rate is None:
            fit_rate = default_fit_rate(total_groups)
        if fit_rate < 2:
            raise ValueError(f"fit_rate must be >= 2, got {fit_rate}")
        if not 0 <= random_task_ratio <= 1:
            raise ValueError(f"random_task_ratio must be in [0, 1], got {random_task_ratio}")
        if not 1 <= min_components <= max_components:
            raise ValueError(f"need 1 <= min_components <= max_components, got {min_components}, {max_components}")
        if history is not None and history < fit_rate:
            raise ValueError(f"history ({history}) must keep at least fit_rate ({fit_rate}) episodes")
        if max_tries < 1:
            raise ValueError(f"max_tries must be >= 1, got {max_tries}")
        self.tasks = tasks
        self.total_groups = None if total_groups is None else int(total_groups)
        self.fit_rate = int(fit_rate)
        self.random_task_ratio = float(random_task_ratio)
        self.min_components, self.max_components = int(min_components), int(max_components)
        self.history = None if history is None else int(history)
        self.reward_range = check_reward_range(reward_range)
        self.max_tries = int(max_tries)
        self.dim = len(tasks.space)
        self.rng = np.random.default_rng(seed)
        self._X = np.zeros((64, self.dim))
        self._r = np.zeros(64)
        self._alp = np.zeros(64)
        self._n = 0
        self._tree: cKDTree | None = None
        self._tree_n = 0
        self._episodes = 0
        self._next_fit = self.fit_rate
        self._fits = 0
        self._skipped = 0
        self._gmm: dict[str, Any] | None = None
        self._chol: np.ndarray | None = None
        self._pick: np.ndarray | None = None
        self._means: np.ndarray | None = None
        self._uniform_bins: np.ndarray | None = None  # uniform allowed sampling over the estimate's bins
        self._gmm_bins: np.ndarray | None = None  # the mixture's draws over the same bins

    # ----- history and ALP -------------------------------------------------------------
    def _grow(self, need: int) -> None:
        cap = self._X.shape[0]
        if need <= cap:
            return
        while cap < need:
            cap *= 2
        for name in ("_X", "_r", "_alp"):
            old = getattr(self, name)
            new = np.zeros((cap,) + old.shape[1:])
            new[: self._n] = old[: self._n]
            setattr(self, name, new)

    def _rebuild(self) -> None:
        self._tree_n = self._n
        self._tree = cKDTree(self._X[: self._n]) if self._n else None

    def _nearest(self, start: int, stop: int) -> np.ndarray:
        """For rows start..stop-1: index of the nearest earlier row (-1 for none)."""
        P = self._X[start:stop]
        k = stop - start
        best_d = np.full(k, np.inf)
        best_i = np.full(k, -1, dtype=np.int64)
        if self._tree is not None and self._tree_n > 0:
            dist, idx = self._tree.query(P, k=1)
            cands = self._tree.query_ball_point(P, dist * (1 + _TIE) + 1e-12)
            best_d = dist
            best_i = np.array([max(c) if c else j for c, j in zip(cands, idx)], dtype=np.int64)
        lo = self._tree_n
        if stop - 1 > lo:
            B = self._X[lo : stop - 1]
            D = np.sqrt(((P[:, None, :] - B[None, :, :]) ** 2).sum(-1))
            cols = lo + np.arange(B.shape[0])
            D[cols[None, :] >= np.arange(start, stop)[:, None]] = np.inf  # only earlier rows
            m = np.minimum(D.min(axis=1), best_d)
            tied = np.isfinite(D) & (D <= (m * (1 + _TIE) + 1e-12)[:, None])
            has = tied.any(axis=1)
            last = B.shape[0] - 1 - np.argmax(tied[:, ::-1], axis=1)  # the most recent tie
            best_i = np.where(has, lo + last, best_i)
        return best_i

    def _add(self, points: np.ndarray, rewards: np.ndarray) -> None:
        for a in range(0, len(points), _CHUNK):
            p, r = points[a : a + _CHUNK], rewards[a : a + _CHUNK]
            start = self._n
            self._grow(start + len(p))
            self._X[start : start + len(p)] = p
            self._r[start : start + len(p)] = r
            self._n = start + len(p)
            near = self._nearest(start, self._n)
            self._alp[start : self._n] = np.where(near >= 0, np.abs(r - self._r[np.maximum(near, 0)]), 0.0)
            if self._n - self._tree_n > REBUILD:
                self._rebuild()
        if self.history is not None and self._n > self.history:
            drop = self._n - self.history
            for name in ("_X", "_r", "_alp"):
                arr = getattr(self, name)
                arr[: self.history] = arr[drop : self._n].copy()
            self._n = self.history
            self._rebuild()

    def episodes_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Copies of the kept history: unit-cube points, normalized rewards and their ALP."""
        n = self._n
        return self._X[:n].copy(), self._r[:n].copy(), self._alp[:n].copy()

    @staticmethod
    def alp_of(points: np.ndarray, rewards: np.ndarray) -> np.ndarray:
        """Reference ALP by brute force (for checks): |r_i - r_j|, j the nearest earlier row."""
        points, rewards = np.asarray(points, dtype=np.float64), np.asarray(rewards, dtype=np.float64)
        out = np.zeros(len(points))
        for i in range(1, len(points)):
            d = np.sqrt(((points[:i] - points[i]) ** 2).sum(-1))
            j = int(np.flatnonzero(d <= d.min() * (1 + _TIE) + 1e-12)[-1])
            out[i] = abs(rewards[i] - rewards[j])
        return out

    # ----- the mixture -----------------------------------------------------------------
    def _fit(self) -> None:
        from sklearn.mixture import GaussianMixture
        from threadpoolctl import threadpool_limits

        a = max(0, self._n - self.fit_rate)
        data = np.hstack([self._X[a : self._n], self._alp[a : self._n, None]])
        state = int(self.rng.integers(2**31 - 1))
        best, best_aic = None, math.inf
        for k in range(self.min_components, self.max_components + 1):
            if k > len(data):
                break
            g = GaussianMixture(n_components=k, covariance_type="full", random_state=state)
            try:
                # These fits are tiny: BLAS/OpenMP thread pools only add hand-off costs
                # (10x slower when another process holds the other cores).
                with warnings.catch_warnings(), threadpool_limits(1):
                    warnings.simplefilter("ignore")
                    g.fit(data)
                aic = float(g.aic(data))
            except (ValueError, np.linalg.LinAlgError):
                continue
            if aic < best_aic:
                best, best_aic = g, aic
        self._fits += 1
        if best is None:
            return
        self._set_gmm(
            {
                "weights": best.weights_.tolist(),
                "means": best.means_.tolist(),
                "covariances": best.covariances_.tolist(),
                "aic": best_aic,
            }
        )

    def _set_gmm(self, gmm: dict[str, Any] | None) -> None:
        self._gmm = gmm
        self._gmm_bins = None
        if gmm is None:
            self._chol = self._pick = self._means = None
            return
        means = np.asarray(gmm["means"], dtype=np.float64)
        covs = np.asarray(gmm["covariances"], dtype=np.float64)
        chol = []
        for c in covs:
            try:
                chol.append(np.linalg.cholesky(c))
            except np.linalg.LinAlgError:
                w, v = np.linalg.eigh(c)
                chol.append(v * np.sqrt(np.clip(w, 0.0, None)))
        self._chol = np.asarray(chol)
        self._means = means
        alp = np.clip(means[:, -1], 0.0, None)
        self._pick = alp / alp.sum() if alp.sum() > 0 else np.full(len(alp), 1.0 / len(alp))

    # ----- Teacher protocol ----------------------------------------------------------
    def _from_gmm(self, c: int, x: np.ndarray) -> dict[str, Any]:
        """Allowed params from component ``c``, starting with its draw ``x`` (redraws if held out)."""
        assert self._gmm is not None and self._chol is not None and self._means is not None
        space = self.tasks.space
        for _ in range(self.max_tries):
            p = params_from_unit(space, np.clip(x[: self.dim], 0.0, 1.0))
            if self.tasks.is_allowed(p):
                return p
            x = self._means[c] + self._chol[c] @ self.rng.standard_normal(self.dim + 1)
        return uniform_allowed(self.tasks, self.rng, self.max_tries)

    def _uniform(self) -> dict[str, Any]:
        return uniform_allowed(self.tasks, self.rng, self.max_tries)

    def sample(self, n: int) -> list[TaskSpec]:
        if self._gmm is None:
            return [self.tasks.spec_from(self.rng, self._uniform) for _ in range(n)]
        assert self._chol is not None and self._pick is not None and self._means is not None
        # Per call: one coin per task (uniform or mixture), its component and its Gaussian draw.
        coins = self.rng.random(n)
        comps = self.rng.choice(len(self._pick), size=n, p=self._pick)
        z = self.rng.standard_normal((n, self.dim + 1))
        draws = self._means[comps] + np.einsum("nij,nj->ni", self._chol[comps], z)
        out = []
        for i in range(n):
            if coins[i] < self.random_task_ratio:
                p = uniform_allowed(self.tasks, self.rng, self.max_tries)
            else:
                p = self._from_gmm(int(comps[i]), draws[i])
            # a proposal without training content: uniform allowed params instead
            out.append(self.tasks.spec_from(self.rng, _first_then(p, self._uniform)))
        return out

    def update(self, results: Sequence[GroupResult]) -> None:
        pts, rews = [], []
        for res in results:
            try:
                u = self.tasks.space.to_unit(res.task.params)
            except (ParamError, KeyError, TypeError, ValueError):
                self._skipped += 1
                continue
            pts.append(u)
            rews.append(
                float(np.mean([normalized_reward(x, self.reward_range) for x in res.outcomes])) if res.outcomes else 0.0
            )
        if not pts:
            return
        self._add(np.asarray(pts, dtype=np.float64).reshape(len(pts), self.dim), np.asarray(rews))
        self._episodes += len(pts)
        if self._episodes >= self._next_fit:
            self._fit()
            self._next_fit = (self._episodes // self.fit_rate + 1) * self.fit_rate

    def state_dict(self) -> dict[str, Any]:
        n = self._n
        return {
            "rng": self.rng.bit_generator.state,
            "points": self._X[:n].tolist(),
            "rewards": self._r[:n].tolist(),
            "alp": self._alp[:n].tolist(),
            "tree_n": self._tree_n,
            "episodes": self._episodes,
            "next_fit": self._next_fit,
            "fits": self._fits,
            "skipped": self._skipped,
            "gmm": None if self._gmm is None else {k: v for k, v in self._gmm.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pts = np.asarray(state["points"], dtype=np.float64).reshape(-1, self.dim)
        n = len(pts)
        self._X, self._r, self._alp = np.zeros((max(64, n), self.dim)), np.zeros(max(64, n)), np.zeros(max(64, n))
        self._X[:n] = pts
        self._r[:n] = np.asarray(state["rewards"], dtype=np.float64)
        self._alp[:n] = np.asarray(state["alp"], dtype=np.float64)
        self._n = n
        self._tree_n = int(state["tree_n"])
        self._tree = cKDTree(self._X[: self._tree_n]) if self._tree_n else None
        self._episodes = int(state["episodes"])
        self._next_fit = int(state["next_fit"])
        self._fits = int(state["fits"])
        self._skipped = int(state["skipped"])
        self._set_gmm(state["gmm"])
        self.rng.bit_generator.state = state["rng"]

    # ----- how far from uniform --------------------------------------------------------
    def _bin_counts(self) -> np.ndarray:
        """Bins per dim of the entropy estimate (see the module doc)."""
        out = []
        for d in self.tasks.space.dims:
            n = getattr(d, "n", None)
            out.append(n if n is not None and n <= ESTIMATE_BINS else ESTIMATE_BINS)
        return np.asarray(out, dtype=np.int64)

    def _histogram(self, units: np.ndarray) -> np.ndarray:
        """Share of the unit-cube points ``units`` (rows) in each bin of the estimate."""
        counts = self._bin_counts()
        idx = np.minimum(np.floor(np.clip(units, 0.0, 1.0) * counts).astype(np.int64), counts - 1)
        flat = np.ravel_multi_index(tuple(idx.T), tuple(counts)) if len(counts) else np.zeros(len(units), np.int64)
        h = np.bincount(flat, minlength=int(np.prod(counts))).astype(np.float64)
        return h / max(1.0, h.sum())

    def sampling_bins(self) -> tuple[np.ndarray, np.ndarray]:
        """(this teacher's sampling distribution, uniform allowed sampling) over the estimate's bins."""
        space = self.tasks.space
        if self._uniform_bins is None:
            rng = np.random.default_rng(0)
            pts = [space.to_unit(uniform_allowed(self.tasks, rng, self.max_tries)) for _ in range(ESTIMATE_DRAWS)]
            self._uniform_bins = self._histogram(np.asarray(pts).reshape(-1, self.dim))
        if self._gmm is None:
            return self._uniform_bins.copy(), self._uniform_bins.copy()
        if self._gmm_bins is None:
            assert self._chol is not None and self._pick is not None and self._means is not None
            rng = np.random.default_rng(1)
            comps = rng.choice(len(self._pick), size=ESTIMATE_DRAWS, p=self._pick)
            z = rng.standard_normal((ESTIMATE_DRAWS, self.dim + 1))
            draws = self._means[comps] + np.einsum("nij,nj->ni", self._chol[comps], z)
            self._gmm_bins = self._histogram(draws[:, : self.dim])
        r = self.random_task_ratio
        return r * self._uniform_bins + (1.0 - r) * self._gmm_bins, self._uniform_bins.copy()

    def metrics(self) -> dict[str, float]:
        a = max(0, self._n - self.fit_rate)
        return {
            "teacher/episodes": float(self._episodes),
            "teacher/fits": float(self._fits),
            "teacher/fit_rate": float(self.fit_rate),
            "teacher/gmm_fitted": float(self._gmm is not None),
            "teacher/gmm_components": float(len(self._gmm["weights"]) if self._gmm else 0),
            "teacher/alp_mean": float(self._alp[a : self._n].mean()) if self._n else 0.0,
            "teacher/reward_mean": float(self._r[a : self._n].mean()) if self._n else 0.0,
            "teacher/history": float(self._n),
            "teacher/skipped": float(self._skipped),
            **spread_metrics(*self.sampling_bins()),
        }


def _first_then(first: dict[str, Any], then: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """A proposer that gives ``first`` once, then calls ``then``."""
    given = [first]

    def propose() -> dict[str, Any]:
        return given.pop() if given else then()

    return propose
