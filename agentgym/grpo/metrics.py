"""What one training step logs: rollout, reward and response statistics of its batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from agentgym.curriculum import GroupResult
from agentgym.rollout import Episode


def rollout_metrics(episodes: Sequence[Episode], results: Sequence[GroupResult], step: int) -> dict[str, float]:
    """Rewards and successes of every group played (dropped ones included), per reward
    part and per seat over the kept episodes, and how stale the batch was."""
    out: dict[str, float] = {}
    staleness = [step - e.policy_version for e in episodes]
    out["rollout/staleness"] = float(max(staleness)) if staleness else 0.0
    rewards = [x for r in results for x in r.rewards]
    out["reward/mean"] = float(np.mean(rewards)) if rewards else 0.0
    out["success/mean"] = float(np.mean([s for r in results for s in r.successes])) if rewards else 0.0
    for k in sorted({k for e in episodes for k in e.reward_parts}):
        out[f"reward/{k}"] = float(np.mean([e.reward_parts.get(k, 0.0) for e in episodes]))
    for seat in sorted({e.agent for e in episodes if e.agent}):
        mine = [e for e in episodes if e.agent == seat]
        out[f"reward/seat/{seat}"] = float(np.mean([e.reward for e in mine]))
        out[f"success/seat/{seat}"] = float(np.mean([e.success for e in mine]))
    return out


def batch_metrics(episodes: Sequence[Episode], advantages: np.ndarray) -> dict[str, float]:
    """Advantages and response shapes of the episodes trained on."""
    return {
        "adv/abs_mean": float(np.abs(advantages).mean()),
        "response/tokens_mean": float(np.mean([e.num_policy_tokens for e in episodes])),
        "response/truncated_frac": float(np.mean([e.hit_length_limit for e in episodes])),
        "response/turns_mean": float(np.mean([e.num_turns for e in episodes])),
    }


def teacher_groups(results: Sequence[GroupResult]) -> list[dict[str, Any]]:
    """What the teacher chose and how it went, one entry per group, for ``teacher.jsonl``."""
    out = []
    for r in results:
        row = {
            "params": r.task.params,
            "success": r.success_rate,
            "reward": float(np.mean(r.rewards)) if r.rewards else 0.0,
            "abs_adv": r.mean_abs_advantage,
        }
        if r.agent:
            row["agent"] = r.agent
        out.append(row)
    return out
