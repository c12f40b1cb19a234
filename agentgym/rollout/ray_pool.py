"""Env pools in Ray actors: the runner's plays spread over N worker processes.

Generation stays batched in the trainer's process; only environments move, single-agent
envs and games alike (a game's scripted seats play inside the worker). Each worker is a
Ray actor holding its own :class:`~agentgym.rollout.pool.InProcessPool`. Plays are dealt
to workers round-robin at reset; each round the runner's moves go out as one batched
remote call per worker, all workers are stepped concurrently, and the results are put
back in request order, so Episodes are identical to the in-process backend's.

A dead worker (crashed process, killed actor, lost node) is replaced by a fresh actor and
each of its live plays is *replayed*: reset with the same task and seating, then the same
moves sent again, in order (envs and scripted seats are deterministic given task, seating
and moves). Every replayed turn must equal the recorded one; a play whose replay diverges
or fails again is dropped. Counted in :attr:`RayPool.stats` (``worker_restarts``, ``replayed_episodes``,
``replay_failures``) and from there in the runner's and trainer's metrics.

Ray is optional: ``pip install agentgym[ray]``.
"""

from __future__ import annotations

import os
import traceback
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agentgym import registry
from agentgym.env import TaskSpec
from agentgym.rollout.pool import Action, InProcessPool, PoolStats, ResetResult, StepResult, env_key
from agentgym.rollout.seats import Seating

try:
    import ray
    from ray.exceptions import RayActorError
except ImportError as exc:  # pragma: no cover - exercised only without ray
    raise ImportError("the Ray rollout backend needs Ray: pip install agentgym[ray]") from exc


class EnvWorker:
    """The body of one Ray actor: an in-process pool plus the specs it was sent.

    Env ids registered only in the driver (a test's toy env, a plugin registered by
    hand) still work: each reset carries the driver's :class:`~agentgym.EnvSpec`.
    """

    def __init__(self) -> None:
        self.pool = InProcessPool()

    def ready(self) -> int:
        return os.getpid()

    def reset(
        self,
        spec: registry.EnvSpec,
        env_kwargs: dict[str, Any],
        tasks: list[TaskSpec],
        seatings: list[Seating | None],
        release: list[int],
    ) -> list[ResetResult]:
        self.pool.release(release)
        _ensure_registered(spec)
        out = []
        for task, seating in zip(tasks, seatings):
            try:
                out.append(self.pool.reset_one(spec.id, task, env_kwargs, seating))
            except Exception:
                out.append(ResetResult(-1, error=traceback.format_exc(limit=5)))
        return out

    def step(self, pairs: list[tuple[int, Action]], release: list[int]) -> list[StepResult]:
        self.pool.release(release)
        return [self.pool.step_one(h, a) for h, a in pairs]

    def close(self) -> None:
        self.pool.close()


def _ensure_registered(spec: registry.EnvSpec) -> None:
    try:
        known = registry.spec(spec.id)
    except registry.EnvNotFound:
        known = None
    if known is None or (known.entry_point, known.kwargs) != (spec.entry_point, spec.kwargs):
        registry.register(spec.id, spec.entry_point, spec.kwargs, spec.description)


@dataclass
class _Record:
    """What is needed to replay one live play on another worker."""

    worker: int
    local: int  # the play's handle inside its worker's pool
    env_id: str
    env_kwargs: dict[str, Any]
    task: TaskSpec
    seating: Seating | None
    #: The first turn as observed (see :meth:`~agentgym.rollout.seats.Turn.observed`).
    opening: tuple
    #: (moves sent, the turn observed after them) for every step so far.
    steps: list[tuple[Action, tuple]] = field(default_factory=list)


def _observed(r: StepResult | ResetResult) -> tuple:
    """The part of a result a replay must reproduce exactly."""
    return r.turn.observed() if r.turn is not None else ()


class RayPool:
    """``num_workers`` Ray actors, each with its own env pool (see module doc).

    Joins the running Ray session if there is one; else ``ray.init(address=address)``
    (``None``: start a local cluster; ``"auto"`` or ``"ray://host:10001"``: an existing
    one). :meth:`close` kills the actors, and shuts Ray down if this pool started it.
    """

    def __init__(
        self,
        num_workers: int = 2,
        *,
        address: str | None = None,
        num_cpus_per_worker: float = 1.0,
        ready_timeout_s: float = 300.0,
    ):
        if num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        if num_cpus_per_worker <= 0:
            raise ValueError(f"num_cpus_per_worker must be > 0, got {num_cpus_per_worker}")
        self._started_ray = False
        if not ray.is_initialized():
            ray.init(**({"address": address} if address else {"include_dashboard": False}))
            self._started_ray = True
        cpus = float(ray.cluster_resources().get("CPU", 0.0))
        if num_workers * num_cpus_per_worker > cpus:
            self._shutdown_ray()
            raise RuntimeError(
                f"{num_workers} Ray env workers x {num_cpus_per_worker:g} CPUs need "
                f"{num_workers * num_cpus_per_worker:g} "
                f"CPUs but the Ray cluster has {cpus:g}: lower rollout.ray.num_workers or "
                "rollout.ray.num_cpus_per_worker"
            )
        self.num_workers = num_workers
        self._actor_cls = ray.remote(num_cpus=num_cpus_per_worker, max_restarts=0)(EnvWorker)
        self._workers: list[Any] = [self._actor_cls.remote() for _ in range(num_workers)]
        try:
            ray.get([w.ready.remote() for w in self._workers], timeout=ready_timeout_s)
        except Exception:
            self.close()
            raise
        self._records: dict[int, _Record] = {}
        self._lost: dict[int, str] = {}  # live episodes whose worker died and whose replay failed
        self._release: list[list[int]] = [[] for _ in range(num_workers)]
        self._next_handle = 0
        self._closed = False
        self.stats = PoolStats()

    @property
    def workers(self) -> list[Any]:
        """The current actor handles (a replaced worker's slot holds its replacement)."""
        return list(self._workers)

    # ----- the pool API ---------------------------------------------------------------
    def reset(
        self,
        env_id: str,
        tasks: Sequence[TaskSpec],
        env_kwargs: dict[str, Any] | None = None,
        seatings: Sequence[Seating] | None = None,
    ) -> list[ResetResult]:
        kwargs = dict(env_kwargs or {})
        spec = registry.spec(env_id)
        seats: list[Seating | None] = list(seatings) if seatings is not None else [None] * len(tasks)
        dealt: dict[int, list[int]] = defaultdict(list)  # worker -> indices of tasks
        for i in range(len(tasks)):
            dealt[i % self.num_workers].append(i)

        def call(w: int, idx: list[int], release: list[int]) -> Any:
            chosen = [tasks[i] for i in idx], [seats[i] for i in idx]
            return self._workers[w].reset.remote(spec, kwargs, *chosen, release)

        futures = {w: call(w, idx, self._take_release(w)) for w, idx in dealt.items()}
        results: list[ResetResult | None] = [None] * len(tasks)
        bugs: list[str] = []
        for w, idx in dealt.items():
            try:
                outs = ray.get(futures[w])
            except RayActorError:
                self._recover(w, {})  # its other live episodes, if any, come back first
                self.stats.replayed_episodes += len(idx)
                try:
                    outs = ray.get(call(w, idx, []))
                except RayActorError:
                    self._recover(w, {})  # replaced again; its other episodes are replayed again
                    self.stats.replay_failures += len(idx)
                    why = f"env worker {w} died twice while opening the episode"
                    for i in idx:
                        results[i] = ResetResult(self._new_handle(), error=why)
                    continue
            for i, out in zip(idx, outs):
                if out.error is not None:
                    bugs.append(out.error)
                    continue
                h = self._new_handle()
                self._records[h] = _Record(w, out.handle, env_id, kwargs, tasks[i], seats[i], _observed(out))
                results[i] = ResetResult(h, out.task, out.turn, out.seats, out.info)
        if bugs:  # env.reset raised: a bug, raised as in-process (the others are freed)
            self.release([r.handle for r in results if r is not None])
            raise RuntimeError(f"env.reset of {env_id!r} raised in a Ray worker:\n{bugs[0]}")
        return results  # type: ignore[return-value]

    def step(self, handles: Sequence[int], actions: Sequence[Action]) -> list[StepResult]:
        if len(handles) != len(actions):
            raise ValueError(f"{len(handles)} handles but {len(actions)} actions")
        results: list[StepResult | None] = [None] * len(handles)
        batches: dict[int, list[tuple[int, int, Action]]] = defaultdict(list)  # worker -> (index, handle, moves)
        for i, (h, a) in enumerate(zip(handles, actions)):
            if h in self._lost:
                results[i] = StepResult(error=self._lost.pop(h))
            elif h not in self._records:
                results[i] = StepResult(error=f"no live episode with handle {h} in this pool")
            else:
                batches[self._records[h].worker].append((i, h, a))
        futures = {
            w: self._workers[w].step.remote([(self._records[h].local, a) for _, h, a in items], self._take_release(w))
            for w, items in batches.items()
        }
        for w, items in batches.items():  # every worker is already stepping: this only collects
            try:
                outs = ray.get(futures[w])
            except RayActorError:
                replayed = self._recover(w, {h: a for _, h, a in items})
                for i, h, _ in items:
                    results[i] = replayed[h]
                continue
            for (i, h, a), out in zip(items, outs):
                self._note(h, a, out)
                results[i] = out
        return results  # type: ignore[return-value]

    def release(self, handles: Sequence[int]) -> None:
        for h in handles:
            self._lost.pop(h, None)
            rec = self._records.pop(h, None)
            if rec is not None:
                self._release[rec.worker].append(rec.local)  # sent with the worker's next call

    def close(self) -> None:
        if getattr(self, "_closed", False):
            return
        self._closed = True
        for w in getattr(self, "_workers", []):
            try:
                ray.kill(w)
            except Exception:  # already dead
                pass
        self._workers = []
        self._shutdown_ray()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            if not getattr(self, "_closed", True) and ray.is_initialized():
                self.close()
        except Exception:
            pass

    # ----- bookkeeping ----------------------------------------------------------------
    def _new_handle(self) -> int:
        self._next_handle += 1
        return self._next_handle - 1

    def _take_release(self, w: int) -> list[int]:
        out, self._release[w] = self._release[w], []
        return out

    def _note(self, h: int, text: Action, out: StepResult) -> None:
        if out.error is not None:
            self._records.pop(h, None)  # the worker discarded that env
        else:
            self._records[h].steps.append((text, _observed(out)))

    def _shutdown_ray(self) -> None:
        if self._started_ray and ray.is_initialized():
            ray.shutdown()
        self._started_ray = False

    def _restart(self, w: int) -> None:
        try:
            ray.kill(self._workers[w])
        except Exception:  # already gone
            pass
        self._workers[w] = self._actor_cls.remote()
        self._release[w] = []  # the envs those handles named died with the worker
        self.stats.worker_restarts += 1

    # ----- dead workers ---------------------------------------------------------------
    def _recover(self, w: int, pending: dict[int, Action]) -> dict[int, StepResult]:
        """Replace worker ``w`` and replay its live episodes on the new actor.

        ``pending`` maps handles to the text of the step that was in flight when the
        worker died: it is sent once more after the replay and its result returned.
        Episodes whose replay diverges or fails are dropped (an error result for the
        pending ones; the others report it at their next step).
        """
        self._restart(w)
        mine = [h for h, r in self._records.items() if r.worker == w]
        self.stats.replayed_episodes += len(mine)
        failed: dict[int, str] = {}
        done: dict[int, StepResult] = {}
        try:
            # Reset: one call per (env id, kwargs) among the episodes, usually one.
            kinds: dict[tuple[str, str], list[int]] = defaultdict(list)
            for h in mine:
                kinds[env_key(self._records[h].env_id, self._records[h].env_kwargs)].append(h)
            for hs in kinds.values():
                first = self._records[hs[0]]
                outs = ray.get(
                    self._workers[w].reset.remote(
                        registry.spec(first.env_id),
                        first.env_kwargs,
                        [self._records[h].task for h in hs],
                        [self._records[h].seating for h in hs],
                        [],
                    )
                )
                for h, out in zip(hs, outs):
                    rec = self._records[h]
                    if out.error is not None:
                        failed[h] = f"replay on a new worker failed at reset:\n{out.error}"
                    elif _observed(out) != rec.opening:
                        failed[h] = "replay on a new worker diverged at reset: the opening messages differ"
                    else:
                        rec.local = out.handle
            # Then the recorded texts, round by round, and the pending one last.
            rounds = max((len(self._records[h].steps) + (h in pending) for h in mine), default=0)
            for k in range(rounds):
                batch: list[tuple[int, Action, tuple | None]] = []
                for h in mine:
                    if h in failed:
                        continue
                    steps = self._records[h].steps
                    if k < len(steps):
                        batch.append((h, steps[k][0], steps[k][1]))
                    elif k == len(steps) and h in pending:
                        batch.append((h, pending[h], None))
                if not batch:
                    continue
                outs = ray.get(
                    self._workers[w].step.remote([(self._records[h].local, text) for h, text, _ in batch], [])
                )
                for (h, text, expected), out in zip(batch, outs):
                    if expected is None:  # the step that was in flight: its result is the answer
                        done[h] = out
                        self._note(h, text, out)
                    elif out.error is not None:
                        failed[h] = f"replay on a new worker failed at step {k + 1}:\n{out.error}"
                    elif _observed(out) != expected:
                        failed[h] = f"replay on a new worker diverged at step {k + 1}: the env answered differently"
        except RayActorError:
            self._restart(w)  # it died again: every episode not yet answered is lost
            for h in mine:
                if h not in done and h not in failed:
                    failed[h] = f"env worker {w} died again while replaying the episode"
        self.stats.replay_failures += len(failed)
        for h, why in failed.items():
            self._records.pop(h, None)
            if h in pending:
                done[h] = StepResult(error=why)
            else:
                self._lost[h] = why
        return done
