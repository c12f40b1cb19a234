"""What one training step logs: rollout, reward and response statistics of its batch;
and, at the end of a run, what its teacher did."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
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
    # A group whose rewards are all equal has zero advantages: it teaches nothing.
    played = [r for r in results if len(r.rewards)]
    out["groups/with_signal"] = float(np.mean([np.ptp(r.rewards) > 0 for r in played])) if played else 0.0
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


#: A teacher departed from uniform when, at some step, its sampling entropy fell below
#: this share of uniform's or its most likely arm was this many times uniform's probability.
DEPARTED_ENTROPY = 0.95
DEPARTED_MAX_PROB = 1.5


def teacher_summary(name: str, metrics_path: Path) -> dict[str, Any]:
    """Whether the run's teacher sampled anything but uniformly, from the steps' logged
    ``teacher/entropy_ratio`` and ``teacher/max_prob_ratio`` (see
    :func:`agentgym.curriculum.base.spread_metrics`); ``line`` says it in words, e.g.
    ``teacher: stayed uniform (entropy 1.00 of uniform)``."""
    rows = []
    if metrics_path.exists():
        for text in metrics_path.read_text().splitlines():
            if text.strip():
                row = json.loads(text)
                if row.get("kind") in ("train", "sft") and "teacher/entropy_ratio" in row:
                    rows.append(row)
    out: dict[str, Any] = {"name": name}
    if name == "fixed":
        out.update(verdict="fixed", line="teacher: a fixed set of training tasks, cycled (teacher.name=fixed)")
        return out
    if not rows:
        out.update(
            verdict="unknown",
            line=f"teacher: {name} logged no teacher/entropy_ratio, so whether it departed from uniform is unknown",
        )
        return out
    lowest = min(rows, key=lambda r: r["teacher/entropy_ratio"])
    low, last = lowest["teacher/entropy_ratio"], rows[-1]["teacher/entropy_ratio"]
    top = max(r.get("teacher/max_prob_ratio", 1.0) for r in rows)
    out.update(
        entropy_ratio_min=low,
        entropy_ratio_min_step=lowest["step"],
        entropy_ratio_last=last,
        max_prob_ratio_max=top,
    )
    if low < DEPARTED_ENTROPY or top >= DEPARTED_MAX_PROB:
        verdict = "departed"
        line = (
            f"teacher: departed from uniform (entropy {low:.2f} of uniform at its lowest, step {lowest['step']}; "
            f"{last:.2f} at the end; most likely arm {top:.1f}x uniform)"
        )
    elif round(low, 2) >= 1.0 and round(top, 2) <= 1.0:
        verdict = "uniform"
        line = "teacher: stayed uniform (entropy 1.00 of uniform)"
    else:
        verdict = "near_uniform"
        line = (
            f"teacher: stayed near uniform (entropy {low:.2f} of uniform at its lowest; "
            f"most likely arm {top:.2f}x uniform)"
        )
    out.update(verdict=verdict, line=line)
    return out
