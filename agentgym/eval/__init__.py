"""Held-out evaluation, pass@k and reports with standard errors."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from agentgym.eval.heldout import EnvReport, RowStats, eval_passes, evaluate_env, write_json
from agentgym.eval.stats import Estimate, estimate, pass_at_k

__all__ = [
    "ESTIMATES",
    "EnvReport",
    "Estimate",
    "RowStats",
    "estimate",
    "eval_passes",
    "evaluate_env",
    "pass_at_k",
    "report_metrics",
    "report_summary",
    "write_json",
]

#: The three numbers of every row, primary first.
ESTIMATES = ("mean_at_k", "pass_at_k", "greedy")


def _estimate_metrics(prefix: str, row: RowStats, split: str = "") -> dict[str, float]:
    """``{prefix}{name}{split}`` and its ``_se``, ``_low`` and ``_high`` for each estimate of ``row``."""
    out: dict[str, float] = {}
    for name in ESTIMATES:
        est = getattr(row, name)
        if est is None:
            continue
        for suffix, v in (("", est.value), ("_se", est.se), ("_low", est.low), ("_high", est.high)):
            out[f"{prefix}{name}{suffix}{split}"] = v
    return out


def report_metrics(rep: EnvReport, prefix: str = "eval/") -> dict[str, float]:
    """A report as flat metrics (one eval line of ``metrics.jsonl``).

    ``success`` (with ``success_se``) is the primary number, mean@k; ``mean_at_k``,
    ``pass_at_k`` and ``greedy`` each come with ``_se`` and the 95% interval's ``_low``
    and ``_high``; ``tasks`` counts distinct tasks. The same per held-out region as
    ``name[region]``, and per opponent (games) as ``opponent/O``, ``opponent_se/O``,
    ``opponent_greedy/O``. Then the mean reward, the share without a usable answer and
    each reward part, over the sampled episodes."""
    o = rep.overall
    out: dict[str, float] = {
        f"{prefix}success": o.mean_at_k.value,
        f"{prefix}success_se": o.mean_at_k.se,
        f"{prefix}tasks": o.tasks,
        f"{prefix}k": rep.k,
        f"{prefix}temperature": rep.temperature,
        **_estimate_metrics(prefix, o),
        f"{prefix}mean_reward": o.mean_reward,
        f"{prefix}no_answer": o.format_errors,
    }
    for name, r in rep.by_region.items():
        split = f"[{name}]"
        out[f"{prefix}success{split}"] = r.mean_at_k.value
        out[f"{prefix}success_se{split}"] = r.mean_at_k.se
        out[f"{prefix}tasks{split}"] = r.tasks
        out.update(_estimate_metrics(prefix, r, split))
    for opp, r in rep.by_param.get("opponent", {}).items():
        out[f"{prefix}opponent/{opp}"] = r.mean_at_k.value
        out[f"{prefix}opponent_se/{opp}"] = r.mean_at_k.se
        if r.greedy is not None:
            out[f"{prefix}opponent_greedy/{opp}"] = r.greedy.value
            out[f"{prefix}opponent_greedy_se/{opp}"] = r.greedy.se
    out.update({f"{prefix}reward/{k}": v for k, v in o.reward_parts.items()})
    return out


def _row_summary(row: RowStats) -> dict[str, Any]:
    return {"tasks": row.tasks, **{n: (asdict(e) if (e := getattr(row, n)) is not None else None) for n in ESTIMATES}}


def report_summary(rep: EnvReport) -> dict[str, Any]:
    """The headline of a report as plain JSON: k, temperature, distinct tasks, and each
    estimate (``value``, ``se``, ``low``, ``high``, ``tasks``), overall and per region."""
    return {
        "k": rep.k,
        "temperature": rep.temperature,
        **_row_summary(rep.overall),
        "by_region": {name: _row_summary(r) for name, r in rep.by_region.items()},
    }
