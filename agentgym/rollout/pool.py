"""Env pools: where the rollout runner's plays live and are stepped.

The runner never holds an env. It asks a pool to open a batch of plays (getting one
opaque *handle* per play), to step a batch of handles with the moves of one round, and
to release the handles of plays that ended. A play is an env seen through its seats
(:mod:`agentgym.rollout.seats`): a single-agent env has one seat, a game several, and
each result says whose turn it is (a :class:`~agentgym.rollout.seats.Turn`). Results
come back in request order, so the runner builds the same Episodes whatever the backend.

- :class:`InProcessPool`: envs in this process, made with :func:`agentgym.make` and
  reused across calls; an env that raised is discarded, never reused.
- :class:`~agentgym.rollout.ray_pool.RayPool` (optional, needs ``ray``): the same pool
  inside each of N Ray actors; one batched remote call per worker and round.

A pool never sees the policy: generation stays batched in the trainer's process.
"""

from __future__ import annotations

import concurrent.futures
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from agentgym.env import Message, TaskSpec, TextEnv
from agentgym.rollout.seats import GameSeats, OneSeat, Seating, Turn, seat_env

#: One play's moves of a round: a text (the only seat to move) or texts by seat.
Action = str | Mapping[str, str]


def _sole(turn: Turn | None) -> list[Message]:
    """The messages of a one-seat play's turn (a game's are by seat: read ``turn``)."""
    if turn is None or len(turn.observations) != 1:
        return []
    return next(iter(turn.observations.values()))


@dataclass
class ResetResult:
    """The opening of one play, or why it could not be opened."""

    handle: int
    #: The task as the env normalised it (``env.task`` after reset).
    task: TaskSpec | None = None
    #: Whose turn it is first, and what each policy seat was told.
    turn: Turn | None = None
    #: The play's policy seats, in seat order (``[""]`` for a single-agent env).
    seats: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    #: Set when the play is lost before it began (its worker died and could not be
    #: replaced); the runner drops it and counts it.
    error: str | None = None

    @property
    def messages(self) -> list[Message]:
        """A single-agent env's opening messages."""
        return _sole(self.turn)


@dataclass
class StepResult:
    """Where a play stands after one step, or why it is lost.

    ``messages``, ``reward``, ``terminated``, ``truncated`` and ``info`` read a one-seat
    play's step as ``env.step(text)`` returned it."""

    turn: Turn | None = None
    #: The env raised (a bug, a crashed browser), or its worker died and the replay of
    #: the play failed: the play is dropped. The text says why (a traceback).
    error: str | None = None

    @property
    def messages(self) -> list[Message]:
        return _sole(self.turn)

    @property
    def reward(self) -> float:
        return float(sum(r for _, r, _ in self.turn.credits)) if self.turn else 0.0

    @property
    def terminated(self) -> bool:
        return bool(self.turn and self.turn.done and self.turn.end_reason == "terminated")

    @property
    def truncated(self) -> bool:
        return bool(self.turn and self.turn.done and self.turn.end_reason == "truncated")

    @property
    def info(self) -> dict[str, Any]:
        return dict(self.turn.credits[-1][2]) if self.turn and self.turn.credits else {}


@dataclass
class PoolStats:
    """Counters of a pool's life (the runner reports the change over each run)."""

    #: Ray workers that died and were replaced by a fresh actor.
    worker_restarts: int = 0
    #: Plays replayed on a replacement worker (reset + the same moves again).
    replayed_episodes: int = 0
    #: Replays that diverged from the recorded observations or failed again: dropped.
    replay_failures: int = 0

    def copy(self) -> PoolStats:
        return PoolStats(self.worker_restarts, self.replayed_episodes, self.replay_failures)


class EnvPool(Protocol):
    """What :class:`~agentgym.rollout.runner.RolloutRunner` needs from an env backend."""

    stats: PoolStats

    def reset(
        self,
        env_id: str,
        tasks: Sequence[TaskSpec],
        env_kwargs: dict[str, Any] | None = None,
        seatings: Sequence[Seating] | None = None,
    ) -> list[ResetResult]:
        """Open one play per task (seated by ``seatings[i]``). An env whose ``reset``
        raises is a bug: it raises here."""
        ...

    def step(self, handles: Sequence[int], actions: Sequence[Action]) -> list[StepResult]:
        """Step each handle's play with its moves; one result per handle, in order."""
        ...

    def release(self, handles: Sequence[int]) -> None:
        """These plays ended: their envs may serve other plays."""
        ...

    def close(self) -> None:
        """Close every env (and worker)."""
        ...


def env_key(env_id: str, env_kwargs: dict[str, Any]) -> tuple[str, str]:
    """Envs are reused only for the same id and constructor kwargs."""
    return env_id, repr(sorted(env_kwargs.items()))


class InProcessPool:
    """Plays in this process.

    ``make_env(env_id, **kwargs)`` builds an env (default :func:`agentgym.make`). Envs
    whose class sets ``concurrent_steps`` (the web envs: their work is in the browser)
    are reset and stepped from up to ``max_threads`` threads at once, so a batch's page
    work overlaps; every other env is stepped in the caller's thread, one after another.
    Either way the results come back in request order and each env sees the same calls,
    so the Episodes do not depend on it.
    """

    def __init__(self, make_env: Callable[..., TextEnv] | None = None, max_threads: int = 16):
        if max_threads < 1:
            raise ValueError(f"max_threads must be >= 1, got {max_threads}")
        if make_env is None:
            from agentgym.registry import make

            make_env = make
        self._make: Callable[..., Any] = make_env
        self._free: dict[tuple[str, str], list[Any]] = {}
        self._live: dict[int, tuple[tuple[str, str], OneSeat | GameSeats]] = {}
        self._next_handle = 0
        self.max_threads = int(max_threads)
        self._threads: concurrent.futures.ThreadPoolExecutor | None = None
        self.stats = PoolStats()

    def _map(self, envs: Sequence[Any], calls: Sequence[Callable[[], Any]]) -> list[tuple[bool, Any]]:
        """``calls[i]()`` (a call on ``envs[i]``) for each i, concurrently where the env
        allows it; in order, each as (ok, result or the exception)."""

        def guarded(i: int) -> tuple[bool, Any]:
            try:
                return True, calls[i]()
            except Exception as exc:
                return False, exc

        side = [i for i, env in enumerate(envs) if len(envs) > 1 and _concurrent(env)]
        out: list[tuple[bool, Any] | None] = [None] * len(envs)
        futures = {}
        if len(side) > 1 and self.max_threads > 1:
            if self._threads is None:
                self._threads = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self.max_threads, thread_name_prefix="agentgym-env"
                )
            futures = {i: self._threads.submit(guarded, i) for i in side}
        for i in range(len(envs)):  # the rest here, while the threads work
            if i not in futures:
                out[i] = guarded(i)
        for i, fut in futures.items():
            out[i] = fut.result()
        return out  # type: ignore[return-value]

    def _acquire(self, key: tuple[str, str], env_id: str, env_kwargs: dict[str, Any]) -> OneSeat | GameSeats:
        free = self._free.setdefault(key, [])
        return seat_env(free.pop() if free else self._make(env_id, **env_kwargs))

    def _open(self, key: tuple[str, str], play: OneSeat | GameSeats, turn: Turn) -> ResetResult:
        handle = self._next_handle
        self._next_handle += 1
        self._live[handle] = (key, play)
        return ResetResult(handle, play.task, turn, list(play.seats), dict(getattr(play, "info", {})))

    def reset_one(
        self, env_id: str, task: TaskSpec, env_kwargs: dict[str, Any], seating: Seating | None = None
    ) -> ResetResult:
        """Open one play; raises what ``env.reset`` raised (that env is discarded)."""
        key = env_key(env_id, env_kwargs)
        play = self._acquire(key, env_id, env_kwargs)
        try:
            turn = play.reset(task, seating)
        except BaseException:
            _close_quietly(play.env)
            raise
        return self._open(key, play, turn)

    def reset(
        self,
        env_id: str,
        tasks: Sequence[TaskSpec],
        env_kwargs: dict[str, Any] | None = None,
        seatings: Sequence[Seating] | None = None,
    ) -> list[ResetResult]:
        """Open one play per task. If any ``reset`` raised, the envs that raised are
        discarded, the plays that did open are released, and the first error (in task
        order) is raised."""
        kwargs = dict(env_kwargs or {})
        key = env_key(env_id, kwargs)
        seats = list(seatings) if seatings is not None else [None] * len(tasks)
        plays: list[OneSeat | GameSeats] = []
        try:
            for _ in tasks:
                plays.append(self._acquire(key, env_id, kwargs))
        except BaseException:
            self._free.setdefault(key, []).extend(p.env for p in plays)
            raise
        calls = [partial(p.reset, t, s) for p, t, s in zip(plays, tasks, seats)]
        results = self._map([p.env for p in plays], calls)
        out = [self._open(key, play, got) for play, (ok, got) in zip(plays, results) if ok]
        errors = [got for ok, got in results if not ok]
        if errors:
            for play, (ok, _) in zip(plays, results):
                if not ok:
                    _close_quietly(play.env)
            self.release([r.handle for r in out])
            raise errors[0]
        return out

    def step_one(self, handle: int, action: Action) -> StepResult:
        """Step one play; an exception becomes an error result and the env is discarded."""
        return self.step([handle], [action])[0]

    def step(self, handles: Sequence[int], actions: Sequence[Action]) -> list[StepResult]:
        """Step each handle's play with its moves. An env that raises (a bug, a crashed
        browser) gives an error result and is discarded; the others are unaffected."""
        if len(handles) != len(actions):
            raise ValueError(f"{len(handles)} handles but {len(actions)} actions")
        if len(set(handles)) != len(handles):
            raise ValueError("a handle appears twice in one step: one env cannot take two actions at once")
        live = [(i, self._live[h][1]) for i, h in enumerate(handles) if h in self._live]
        done = self._map([play.env for _, play in live], [partial(play.step, actions[i]) for i, play in live])
        out: list[StepResult] = [StepResult(error=f"no live episode with handle {h} in this pool") for h in handles]
        for (i, play), (ok, got) in zip(live, done):
            if ok:
                out[i] = StepResult(got)
            else:  # drop the play, keep the batch
                del self._live[handles[i]]
                _close_quietly(play.env)
                out[i] = StepResult(error="".join(traceback.format_exception(got, limit=3)))
        return out

    def release(self, handles: Sequence[int]) -> None:
        for h in handles:
            entry = self._live.pop(h, None)
            if entry is not None:
                self._free.setdefault(entry[0], []).append(entry[1].env)

    def oracle(self, handles: Sequence[int], seats: Sequence[str | None] | None = None) -> list[str]:
        """Each live play's demonstration for a seat (default: the seat to move): a
        single-agent env's ``env.oracle()``, a game's demonstrating scripted player."""
        seats = list(seats) if seats is not None else [None] * len(handles)
        return [self._live[h][1].oracle(s) for h, s in zip(handles, seats)]

    @property
    def live_handles(self) -> list[int]:
        return list(self._live)

    def close(self) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=True)
            self._threads = None
        for _, play in self._live.values():
            _close_quietly(play.env)
        for envs in self._free.values():
            for env in envs:
                _close_quietly(env)
        self._live.clear()
        self._free.clear()


def _concurrent(env: Any) -> bool:
    """Whether ``env`` (through its wrappers) may be stepped beside other instances."""
    return bool(getattr(getattr(env, "unwrapped", env), "concurrent_steps", False))


def _close_quietly(env: Any) -> None:
    try:
        env.close()
    except Exception:  # closing a broken env must not hide the error that broke it
        pass
