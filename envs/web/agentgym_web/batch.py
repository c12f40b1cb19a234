"""Step many web envs at once.

A :class:`~agentgym_web.env.WebEnv` is synchronous, but all its browser work runs on the
pool's event loop, so envs stepped from several threads have their page work overlap:
:func:`step_many` and :func:`reset_many` do that with a shared thread pool (the threads
only wait; the work is in Chromium and on the loop). :func:`play` runs whole episodes
of many envs side by side with a policy (a function from env to action text, such as
the envs' scripted oracles), as the benchmark and the tests do.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentgym import TaskSpec

_EXECUTOR: concurrent.futures.ThreadPoolExecutor | None = None
_LOCK = threading.Lock()


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    global _EXECUTOR
    with _LOCK:
        if _EXECUTOR is None:
            _EXECUTOR = concurrent.futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="agentgym-web-step")
        return _EXECUTOR


def _gather(futures: list[concurrent.futures.Future], return_exceptions: bool) -> list[Any]:
    out: list[Any] = []
    for f in futures:
        try:
            out.append(f.result())
        except Exception as exc:
            if not return_exceptions:
                raise
            out.append(exc)
    return out


def step_many(envs: Sequence[Any], actions: Sequence[Any], *, return_exceptions: bool = True) -> list[Any]:
    """``env.step(action)`` for each pair, concurrently; results in order.

    With ``return_exceptions`` (the default) an env that raised (for example an episode
    dropped after a browser crash, :class:`~agentgym_web.env.EpisodeDropped`) gives its
    exception in place of a result, and the others are unaffected.
    """
    if len(envs) != len(actions):
        raise ValueError(f"{len(envs)} envs but {len(actions)} actions")
    ex = _executor()
    return _gather([ex.submit(env.step, a) for env, a in zip(envs, actions)], return_exceptions)


def reset_many(
    envs: Sequence[Any], tasks: Sequence[TaskSpec | None] | None = None, *, return_exceptions: bool = True
) -> list[Any]:
    """``env.reset(options={"task": task})`` for each env, concurrently; results in order."""
    tasks = list(tasks) if tasks is not None else [None] * len(envs)
    if len(envs) != len(tasks):
        raise ValueError(f"{len(envs)} envs but {len(tasks)} tasks")
    ex = _executor()
    futs = [ex.submit(env.reset, options={"task": t} if t is not None else None) for env, t in zip(envs, tasks)]
    return _gather(futs, return_exceptions)


@dataclass
class EpisodeResult:
    """How one episode of :func:`play` went."""

    task: TaskSpec | None
    success: bool = False
    reward: float = 0.0
    steps: int = 0
    dropped: bool = False
    error: str | None = None
    errors: list[str] = field(default_factory=list)


@dataclass
class PlayStats:
    """Totals of a :func:`play` call."""

    results: list[EpisodeResult]
    seconds: float
    steps: int
    step_seconds: float

    @property
    def success_rate(self) -> float:
        return sum(r.success for r in self.results) / max(1, len(self.results))

    @property
    def steps_per_second(self) -> float:
        """Steps per second of wall time spent stepping (resets excluded)."""
        return self.steps / self.step_seconds if self.step_seconds > 0 else 0.0


def play(
    envs: Sequence[Any],
    tasks: Sequence[TaskSpec],
    policy: Callable[[Any], str] | None = None,
    *,
    on_round: Callable[[int], None] | None = None,
) -> PlayStats:
    """Play every task to the end, ``len(envs)`` episodes at a time, stepping them together.

    ``policy(env)`` gives the next action text (default: the env's ``oracle()``). An env
    whose episode is dropped or whose policy fails is freed for the next task. Returns
    per-episode results and the throughput of the stepping rounds.
    """
    policy = policy or (lambda env: env.oracle())
    queue = list(tasks)
    results: list[EpisodeResult] = []
    live: dict[int, EpisodeResult] = {}
    free = list(range(len(envs)))
    steps, step_time, rounds = 0, 0.0, 0
    t0 = time.perf_counter()
    while queue or live:
        starting = []
        while free and queue:
            i = free.pop(0)
            starting.append((i, queue.pop(0)))
        if starting:
            outs = reset_many([envs[i] for i, _ in starting], [t for _, t in starting])
            for (i, task), out in zip(starting, outs):
                res = EpisodeResult(task)
                if isinstance(out, Exception):
                    res.dropped, res.error = True, f"{type(out).__name__}: {out}"
                    results.append(res)
                    free.append(i)
                else:
                    live[i] = res
        if not live:
            continue
        ids, actions = [], []
        for i in list(live):
            try:
                actions.append(policy(envs[i]))
                ids.append(i)
            except Exception as exc:  # the policy gave up: the episode ends unsolved
                res = live.pop(i)
                res.error = f"policy: {type(exc).__name__}: {exc}"
                results.append(res)
                free.append(i)
        if not ids:
            continue
        t = time.perf_counter()
        outs = step_many([envs[i] for i in ids], actions)
        step_time += time.perf_counter() - t
        rounds += 1
        for i, out in zip(ids, outs):
            res = live[i]
            if isinstance(out, Exception):
                res.dropped, res.error = True, f"{type(out).__name__}: {out}"
                results.append(live.pop(i))
                free.append(i)
                continue
            steps += 1
            _, reward, terminated, truncated, info = out
            res.steps += 1
            res.reward += reward
            if info.get("error"):
                res.errors.append(info["error"])
            if terminated or truncated:
                res.success = bool(info.get("success"))
                results.append(live.pop(i))
                free.append(i)
        if on_round is not None:
            on_round(rounds)
    return PlayStats(results, time.perf_counter() - t0, steps, step_time)
