"""Held-out evaluation, pass@k and reports."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agentgym.eval.heldout import EnvReport, RowStats, evaluate_env, pass_at_k, write_json

__all__ = ["EnvReport", "RowStats", "evaluate_any", "evaluate_env", "pass_at_k", "report_metrics", "write_json"]


def evaluate_any(
    policy: Any,
    env_id: str,
    *,
    tasks: Sequence[Any],
    sampling: Any,
    env_kwargs: dict[str, Any] | None = None,
    pool: Any = None,
    opponents: Sequence[str] = ("random",),
    seed: int = 0,
) -> EnvReport:
    """Greedy held-out evaluation of any registered env: a single-agent env plays each task
    once; a game plays each task in every seat against each of ``opponents``."""
    from agentgym.registry import is_multiagent_id

    if is_multiagent_id(env_id):
        from agentgym.eval.games import evaluate_games

        return evaluate_games(
            policy, env_id, opponents=opponents, tasks=tasks, sampling=sampling, env_kwargs=env_kwargs, seed=seed
        )
    return evaluate_env(policy, env_id, tasks=tasks, k=1, sampling=sampling, env_kwargs=env_kwargs, pool=pool)


def report_metrics(rep: EnvReport, prefix: str = "eval/") -> dict[str, float]:
    """A report as flat metrics: success, reward, share without a usable answer, per
    held-out split, per opponent (games) and per reward part."""
    out = {
        f"{prefix}success": rep.overall.success,
        f"{prefix}mean_reward": rep.overall.mean_reward,
        f"{prefix}no_answer": rep.overall.format_errors,
    }
    out.update({f"{prefix}success[{k}]": r.success for k, r in rep.by_region.items()})
    out.update({f"{prefix}opponent/{o}": r.success for o, r in rep.by_param.get("opponent", {}).items()})
    out.update({f"{prefix}reward/{k}": v for k, v in rep.overall.reward_parts.items()})
    return out
