"""Env pools: where the rollout runner's environments live and are stepped.

The runner never holds an env. It asks a pool to reset a batch of episodes (getting one
opaque *handle* per episode), to step a batch of handles with the decoded texts of one
round, and to release the handles of episodes that ended. Results come back in request
order, so the runner builds the same Episodes whatever the backend.

- :class:`InProcessPool`: envs in this process, made with :func:`agentgym.make` and
  reused across calls; an env that raised is discarded, never reused.
- :class:`~agentgym.rollout.ray_pool.RayPool` (optional, needs ``ray``): the same pool
  inside each of N Ray actors; one batched remote call per worker and round.

A pool never sees the policy: generation stays batched in the trainer's process.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentgym.env import Message, TaskSpec, TextEnv


@dataclass
class ResetResult:
    """The opening of one episode, or why it could not be opened."""

    handle: int
    #: The task as the env normalised it (``env.task`` after reset).
    task: TaskSpec | None = None
    messages: list[Message] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    #: Set when the episode is lost before it began (its worker died and could not be
    #: replaced); the runner drops it and counts it.
    error: str | None = None


@dataclass
class StepResult:
    """What one ``env.step(text)`` returned, or why the episode is lost."""

    messages: list[Message] = field(default_factory=list)
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    #: The env raised (a bug, a crashed browser), or its worker died and the replay of
    #: the episode failed: the episode is dropped. The text says why (a traceback).
    error: str | None = None


@dataclass
class PoolStats:
    """Counters of a pool's life (the runner reports the change over each run)."""

    #: Ray workers that died and were replaced by a fresh actor.
    worker_restarts: int = 0
    #: Episodes replayed on a replacement worker (reset + the same texts again).
    replayed_episodes: int = 0
    #: Replays that diverged from the recorded observations or failed again: dropped.
    replay_failures: int = 0

    def copy(self) -> PoolStats:
        return PoolStats(self.worker_restarts, self.replayed_episodes, self.replay_failures)


class EnvPool(Protocol):
    """What :class:`~agentgym.rollout.runner.RolloutRunner` needs from an env backend."""

    stats: PoolStats

    def reset(
        self, env_id: str, tasks: Sequence[TaskSpec], env_kwargs: dict[str, Any] | None = None
    ) -> list[ResetResult]:
        """Open one episode per task. An env whose ``reset`` raises is a bug: it raises here."""
        ...

    def step(self, handles: Sequence[int], actions: Sequence[str]) -> list[StepResult]:
        """Step each handle's env with its text; one result per handle, in order."""
        ...

    def release(self, handles: Sequence[int]) -> None:
        """These episodes ended: their envs may serve other episodes."""
        ...

    def close(self) -> None:
        """Close every env (and worker)."""
        ...


def env_key(env_id: str, env_kwargs: dict[str, Any]) -> tuple[str, str]:
    """Envs are reused only for the same id and constructor kwargs."""
    return env_id, repr(sorted(env_kwargs.items()))


class InProcessPool:
    """Envs in this process, stepped one after another (today's single-process runner).

    ``make_env(env_id, **kwargs)`` builds an env (default :func:`agentgym.make`).
    """

    def __init__(self, make_env: Callable[..., TextEnv] | None = None):
        if make_env is None:
            from agentgym.registry import make as make_env
        self._make = make_env
        self._free: dict[tuple[str, str], list[TextEnv]] = {}
        self._live: dict[int, tuple[tuple[str, str], TextEnv]] = {}
        self._next_handle = 0
        self.stats = PoolStats()

    def reset_one(self, env_id: str, task: TaskSpec, env_kwargs: dict[str, Any]) -> ResetResult:
        """Open one episode; raises what ``env.reset`` raised (that env is discarded)."""
        key = env_key(env_id, env_kwargs)
        free = self._free.setdefault(key, [])
        env = free.pop() if free else self._make(env_id, **env_kwargs)
        try:
            messages, info = env.reset(options={"task": task})
        except BaseException:
            _close_quietly(env)
            raise
        handle = self._next_handle
        self._next_handle += 1
        self._live[handle] = (key, env)
        return ResetResult(handle, env.task, list(messages), dict(info))

    def reset(
        self, env_id: str, tasks: Sequence[TaskSpec], env_kwargs: dict[str, Any] | None = None
    ) -> list[ResetResult]:
        kwargs = dict(env_kwargs or {})
        out: list[ResetResult] = []
        try:
            for task in tasks:
                out.append(self.reset_one(env_id, task, kwargs))
        except BaseException:
            self.release([r.handle for r in out])
            raise
        return out

    def step_one(self, handle: int, action: str) -> StepResult:
        """Step one episode; an exception becomes an error result and the env is discarded."""
        entry = self._live.get(handle)
        if entry is None:
            return StepResult(error=f"no live episode with handle {handle} in this pool")
        try:
            messages, reward, terminated, truncated, info = entry[1].step(action)
        except Exception:  # an env bug or a crashed browser: drop the episode, keep the batch
            del self._live[handle]
            _close_quietly(entry[1])
            return StepResult(error=traceback.format_exc(limit=3))
        return StepResult(list(messages), float(reward), bool(terminated), bool(truncated), dict(info))

    def step(self, handles: Sequence[int], actions: Sequence[str]) -> list[StepResult]:
        if len(handles) != len(actions):
            raise ValueError(f"{len(handles)} handles but {len(actions)} actions")
        return [self.step_one(h, a) for h, a in zip(handles, actions)]

    def release(self, handles: Sequence[int]) -> None:
        for h in handles:
            entry = self._live.pop(h, None)
            if entry is not None:
                self._free.setdefault(entry[0], []).append(entry[1])

    def oracle(self, handles: Sequence[int]) -> list[str]:
        """Each live episode's oracle reply (``env.oracle()``), for demonstrations."""
        out = []
        for h in handles:
            env = self._live[h][1]
            if not hasattr(env.unwrapped, "oracle"):
                raise TypeError(f"{type(env.unwrapped).__name__} has no oracle() to demonstrate with")
            out.append(env.unwrapped.oracle())
        return out

    @property
    def live_handles(self) -> list[int]:
        return list(self._live)

    def close(self) -> None:
        for _, env in self._live.values():
            _close_quietly(env)
        for envs in self._free.values():
            for env in envs:
                _close_quietly(env)
        self._live.clear()
        self._free.clear()


def _close_quietly(env: TextEnv) -> None:
    try:
        env.close()
    except Exception:  # closing a broken env must not hide the error that broke it
        pass
