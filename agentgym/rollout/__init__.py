"""Episodes, the rollout runner and its env pools.

One runner plays every registered env, single-agent or a multi-agent game, as seats
taking turns (:mod:`agentgym.rollout.seats`); it follows the :class:`Runner` protocol,
so the trainer, evaluation and the CLI play any env the same way. :func:`make_runner`
builds it and :func:`make_pool` the env pool of a config's ``rollout.backend``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from agentgym.rollout.episode import Episode
from agentgym.rollout.pool import EnvPool, InProcessPool, PoolStats
from agentgym.rollout.runner import RolloutRunner, RolloutStats

__all__ = [
    "EnvPool",
    "Episode",
    "InProcessPool",
    "PoolStats",
    "RolloutRunner",
    "RolloutStats",
    "Runner",
    "make_pool",
    "make_runner",
]


class Runner(Protocol):
    """Plays tasks with a policy: ``group_size`` episodes per task, grouped in task order.

    ``on_round(rounds, live)`` is called after every generation round (a trainer stops a
    rollout through it). ``last_stats`` counts what the last :meth:`run` dropped and spent.
    """

    last_stats: RolloutStats

    def run(
        self,
        env_id: str,
        tasks: Sequence[Any],
        group_size: int = 1,
        on_round: Callable[[int, int], None] | None = None,
        seeds: Sequence[int] | None = None,
    ) -> list[Episode]: ...

    def close(self) -> None: ...


def make_pool(
    backend: str = "inprocess", *, num_workers: int = 2, address: str | None = None, num_cpus_per_worker: float = 1.0
) -> EnvPool:
    """The pool of a config's ``rollout.backend`` (``inprocess`` or ``ray``)."""
    if backend == "inprocess":
        return InProcessPool()
    if backend == "ray":
        from agentgym.rollout.ray_pool import RayPool

        return RayPool(num_workers, address=address, num_cpus_per_worker=num_cpus_per_worker)
    raise ValueError(f"unknown rollout backend {backend!r}; use 'inprocess' or 'ray'")


def make_runner(
    env_id: str,
    policy: Any,
    sampling: Any,
    *,
    max_episode_tokens: int = 4096,
    env_kwargs: dict[str, Any] | None = None,
    pool: EnvPool | None = None,
    controllers: dict[str, str] | None = None,
    seed: int = 0,
) -> Runner:
    """The runner for ``env_id``, single-agent env or game (``controllers`` picks who plays
    each seat of a game; ``pool`` holds the envs, in this process or in Ray workers)."""
    return RolloutRunner(
        policy,
        sampling,
        max_episode_tokens=max_episode_tokens,
        env_kwargs=env_kwargs,
        pool=pool,
        controllers=controllers,
        seed=seed,
    )
