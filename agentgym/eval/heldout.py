"""Held-out evaluation: play an env's held-out tasks and report success and pass@k.

Held-out tasks come from the env's held-out seed range, spread over its whole parameter
space; a share of them lies in the held-out region that training never samples, and
the report splits the two ("unseen region" vs "trained region, unseen seeds").
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agentgym.env import TaskSpec
from agentgym.policies.base import Policy, SamplingParams
from agentgym.registry import spec as env_spec
from agentgym.rollout.episode import Episode
from agentgym.rollout.pool import EnvPool
from agentgym.rollout.runner import RolloutRunner


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``n`` samples of which ``c`` succeeded (Chen et al., 2021)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@dataclass
class RowStats:
    """Aggregates over a set of tasks."""

    tasks: int = 0
    episodes: int = 0
    success: float = 0.0
    mean_reward: float = 0.0
    pass_at_k: float = 0.0
    format_errors: float = 0.0
    #: Mean of each reward part over the episodes (parts an episode lacks count as 0).
    reward_parts: dict[str, float] = field(default_factory=dict)


@dataclass
class EnvReport:
    env_id: str
    k: int
    overall: RowStats
    by_region: dict[str, RowStats]
    by_param: dict[str, dict[str, RowStats]]
    tasks: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def _aggregate(groups: Sequence[Sequence[Episode]], k: int) -> RowStats:
    eps = [e for g in groups for e in g]
    if not eps:
        return RowStats()
    return RowStats(
        tasks=len(groups),
        episodes=len(eps),
        success=sum(e.success for e in eps) / len(eps),
        mean_reward=sum(e.reward for e in eps) / len(eps),
        pass_at_k=sum(pass_at_k(len(g), sum(e.success for e in g), min(k, len(g))) for g in groups) / len(groups),
        format_errors=sum(bool(e.errors) for e in eps) / len(eps),
        reward_parts={
            part: sum(e.reward_parts.get(part, 0.0) for e in eps) / len(eps)
            for part in sorted({p for e in eps for p in e.reward_parts})
        },
    )


def evaluate_env(
    policy: Policy,
    env_id: str,
    *,
    n_tasks: int = 100,
    k: int = 1,
    sampling: SamplingParams | None = None,
    seed: int = 0,
    batch_tasks: int = 32,
    env_kwargs: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
    tasks: Sequence[TaskSpec] | None = None,
    pool: EnvPool | None = None,
    on_samples: Callable[[list[dict[str, Any]]], None] | None = None,
) -> EnvReport:
    """Evaluate ``policy`` on ``n_tasks`` held-out tasks of ``env_id``, ``k`` samples each
    (or on the given ``tasks``); ``pool`` holds the envs (default: in this process).

    ``on_samples`` gets every sample of each finished chunk as it completes (see
    :func:`sample_record`), so a stopped evaluation keeps what it had done."""
    sampling = sampling or SamplingParams(max_new_tokens=256, temperature=0.0 if k == 1 else 1.0)
    env_cls = env_spec(env_id).load_class()
    if tasks is None:
        tasks = env_cls.held_out_tasks(n_tasks, seed=seed)
    runner = RolloutRunner(policy, sampling, env_kwargs=env_kwargs, pool=pool)
    t0 = time.perf_counter()
    groups: list[list[Episode]] = []
    for start in range(0, len(tasks), batch_tasks):
        chunk = tasks[start : start + batch_tasks]
        eps = runner.run(env_id, chunk, group_size=k)
        by_group: dict[int, list[Episode]] = defaultdict(list)
        for e in eps:
            by_group[e.group].append(e)
        groups.extend(by_group[i] for i in range(len(chunk)) if by_group[i])
        if on_samples is not None:
            on_samples([sample_record(e, i) for i in range(len(chunk)) for e in by_group[i]])
        if progress is not None:
            progress(len(chunk))
    region = env_cls.held_out.region
    regions: dict[str, list[list[Episode]]] = defaultdict(list)
    params: dict[str, dict[str, list[list[Episode]]]] = defaultdict(lambda: defaultdict(list))
    for g in groups:
        p = g[0].task.params
        inside = region is not None and region.contains(p)
        regions["unseen region" if inside else "trained region, unseen seeds"].append(g)
        for name, v in p.items():
            if not isinstance(v, float):
                params[name][str(v)].append(g)
    return EnvReport(
        env_id=env_id,
        k=k,
        overall=_aggregate(groups, k),
        by_region={name: _aggregate(gs, k) for name, gs in sorted(regions.items())},
        by_param={n: {v: _aggregate(gs, k) for v, gs in sorted(vals.items())} for n, vals in params.items()},
        tasks=[
            {
                "task": g[0].task.to_dict(),
                "successes": [e.success for e in g],
                "rewards": [e.reward for e in g],
                "reply": next((m["content"][:500] for m in reversed(g[0].messages) if m["role"] == "assistant"), ""),
            }
            for g in groups
        ],
        seconds=time.perf_counter() - t0,
    )


def sample_record(ep: Episode, task_index: int) -> dict[str, Any]:
    """One evaluated sample as a JSON line: the task, the whole conversation, the reward and its parts."""
    return {
        "env_id": ep.env_id,
        "task": ep.task.to_dict(),
        "task_index": task_index,
        "messages": ep.messages,
        "reward": ep.reward,
        "reward_parts": dict(ep.reward_parts),
        "success": bool(ep.success),
        "errors": list(ep.errors),
        "end_reason": ep.end_reason,
        "turns": ep.num_turns,
    }


def write_json(reports: Sequence[EnvReport], path: str | Path, meta: dict[str, Any] | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"meta": meta or {}, "envs": [asdict(r) for r in reports]}
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(path)
    return path
