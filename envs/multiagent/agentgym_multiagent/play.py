"""Scripted players against each other: full games and a win-rate table, for sanity checks.

``python -m agentgym_multiagent play multiagent/nim-v0 --p0 optimal --p1 random --games 500``
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agentgym.env import TaskSpec
from agentgym.multiagent import TextAECEnv


@dataclass
class GameResult:
    """One finished game: each agent's return and success, and how it ended."""

    returns: dict[str, float]
    success: dict[str, bool]
    truncated: bool
    moves: int


@dataclass
class PlayReport:
    """Many games between the same scripted players."""

    env_id: str
    kinds: dict[str, str]
    results: list[GameResult] = field(default_factory=list)

    def success_rate(self, agent: str) -> float:
        return float(np.mean([r.success[agent] for r in self.results])) if self.results else 0.0

    def mean_return(self, agent: str) -> tuple[float, float]:
        """Mean return of ``agent`` and its standard error."""
        xs = np.array([r.returns[agent] for r in self.results], dtype=float)
        if len(xs) < 2:
            return float(xs.mean()) if len(xs) else 0.0, math.nan
        return float(xs.mean()), float(xs.std(ddof=1) / math.sqrt(len(xs)))

    def table(self) -> str:
        n = len(self.results)
        lines = [
            f"{self.env_id}: " + " vs ".join(f"{a}={k}" for a, k in self.kinds.items()) + f", {n} games",
            f"  {'seat':<10} {'player':<9} {'success':>8} {'mean return':>12} {'± s.e.':>8}",
        ]
        for agent, kind in self.kinds.items():
            mean, se = self.mean_return(agent)
            lines.append(f"  {agent:<10} {kind:<9} {self.success_rate(agent):>8.1%} {mean:>12.4f} {se:>8.4f}")
        truncated = sum(r.truncated for r in self.results)
        nobody = sum(not any(r.success.values()) for r in self.results)
        lines.append(
            f"  games truncated: {truncated}; games nobody won: {nobody}; "
            f"mean moves: {np.mean([r.moves for r in self.results]):.2f}"
        )
        return "\n".join(lines)


def play_game(env: Any, kinds: Mapping[str, str], rng: np.random.Generator, task: TaskSpec | None = None) -> GameResult:
    """Play one game of ``env`` (already made) with scripted ``kinds`` (agent -> kind) in every seat."""
    options = {"task": task} if task is not None else None
    returns = {a: 0.0 for a in env.possible_agents}
    success = {a: False for a in env.possible_agents}
    truncated = False
    moves = 0
    if isinstance(env, TextAECEnv):
        env.reset(options=options)
        for agent in env.agent_iter():
            _, _, term, trunc, info = env.last()
            if term or trunc:
                success[agent] = bool(info["success"])
                truncated = truncated or trunc
                env.step(None)
                continue
            env.step(env.scripted_action(agent, kinds[agent], rng))
            moves += 1
            for a, r in env.rewards.items():
                returns[a] += r
    else:
        env.reset(options=options)
        while env.agents:
            actions = {a: env.scripted_action(a, kinds[a], rng) for a in env.agents}
            _, rewards, terms, truncs, infos = env.step(actions)
            moves += 1
            for a, r in rewards.items():
                returns[a] += r
                success[a] = bool(infos[a]["success"])
            truncated = truncated or any(truncs.values())
    return GameResult(returns, success, truncated, moves)


def play_games(
    env_id: str,
    kinds: Mapping[str, str] | list[str],
    games: int,
    *,
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
) -> PlayReport:
    """``games`` games of ``env_id`` between scripted players (training tasks drawn from ``seed``).

    ``kinds`` maps each seat to a scripted kind (a list is read in seat order). ``params``
    fixes some task parameters; the others are drawn per game.
    """
    from agentgym.registry import make

    env = make(env_id, **dict(env_kwargs or {}))
    if not isinstance(kinds, Mapping):
        kinds = dict(zip(env.possible_agents, kinds))
    kinds = dict(kinds)
    env.check_players(kinds)  # every seat named exists and every kind is one of its scripted players
    if set(kinds) != set(env.possible_agents):
        raise ValueError(f"give a scripted kind for every seat of {env_id!r}: {env.possible_agents}")
    rng = np.random.default_rng(seed)
    report = PlayReport(env_id, kinds)
    for _ in range(games):
        task = env.sample_train_task(rng)
        if params:
            task = TaskSpec(env.param_space.validate({**task.params, **params}), task.seed)
        report.results.append(play_game(env, kinds, rng, task))
    env.close()
    return report
