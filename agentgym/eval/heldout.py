"""Held-out evaluation: play an env's held-out tasks and report success with its uncertainty.

Held-out tasks come from the env's held-out seed range, spread over its whole parameter
space; a share of them lies in the held-out region that training never samples, and
the report splits the two ("unseen region" vs "trained region, unseen seeds").

Each task is played twice over: ``k`` samples at the evaluation temperature (the
training temperature in the trainer: what GRPO optimises) and, by default, once
greedily. A row of the report gives three means over its distinct tasks, each an
:class:`~agentgym.eval.stats.Estimate` with a standard error and a 95% interval:

- ``mean_at_k``: the task's success rate over its k samples (the primary number);
- ``pass_at_k``: the unbiased pass@k estimate of the task (at least one of k succeeds);
- ``greedy``: the task's greedy success (0 or 1).

Standard errors are over tasks (see :mod:`agentgym.eval.stats`); tasks that repeat in
the list (the same params and seed) are one unit, so ``tasks`` counts distinct tasks.

A multi-agent game is evaluated the same way, in each of its settings
(:func:`~agentgym.rollout.seats.eval_settings`): for every opponent (a scripted player of
the game, or ``"self"`` for the policy in every seat) and every seat, the policy plays
each task in that seat. A row's ``success`` is then the learner seat's success (a win,
a correct final answer) and its ``mean_reward`` the seat's mean return; a distinct task's
number is the mean over the settings in the row, ``by_param["opponent"]``, ``["seat"]``
and ``["opponent / seat"]`` split them. Under ``"self"`` every seat's episode counts. A
game that ends before the learner's seat moves (the opponent takes the last object)
still counts, with the seat's return.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from agentgym.env import TaskSpec
from agentgym.eval.stats import Estimate, estimate, pass_at_k
from agentgym.policies.base import Policy, SamplingParams, stream_seed
from agentgym.registry import spec as env_spec
from agentgym.rollout.episode import Episode
from agentgym.rollout.pool import EnvPool, InProcessPool
from agentgym.rollout.runner import RolloutRunner
from agentgym.rollout.seats import Setting, eval_settings

__all__ = ["EnvReport", "RowStats", "TaskResult", "evaluate_env", "eval_passes", "pass_at_k", "write_json"]


@dataclass
class RowStats:
    """Aggregates over a set of tasks (a report's row).

    ``mean_at_k``, ``pass_at_k`` and ``greedy`` are means over the ``tasks`` distinct
    tasks with their standard errors; ``greedy`` is None when no greedy pass ran.
    ``mean_reward``, ``format_errors`` and ``reward_parts`` are means over the sampled
    episodes."""

    #: Distinct tasks: the unit of every standard error.
    tasks: int = 0
    #: Sampled episodes (k per task and setting; the greedy pass not counted).
    episodes: int = 0
    #: The primary number, ``mean_at_k.value`` (kept as a plain float for older readers).
    success: float = 0.0
    mean_reward: float = 0.0
    #: Share of sampled episodes without a usable answer (any env error).
    format_errors: float = 0.0
    #: Mean of each reward part over the episodes (parts an episode lacks count as 0).
    reward_parts: dict[str, float] = field(default_factory=dict)
    mean_at_k: Estimate = field(default_factory=Estimate.empty)
    pass_at_k: Estimate = field(default_factory=Estimate.empty)
    greedy: Estimate | None = None


@dataclass
class EnvReport:
    """One env's held-out evaluation: the whole set, by held-out region and by parameter."""

    env_id: str
    #: Samples per task (and setting) at ``temperature``.
    k: int
    overall: RowStats
    by_region: dict[str, RowStats]
    by_param: dict[str, dict[str, RowStats]]
    tasks: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    #: Temperature of the k samples (0: they are the greedy pass).
    temperature: float = 0.0


@dataclass
class TaskResult:
    """A task's episodes in one setting (a game: one opponent and seat).

    ``greedy`` is the greedy pass: the same list as ``sampled`` when those were greedy,
    empty when no greedy pass ran."""

    task: TaskSpec
    sampled: list[Episode]
    greedy: list[Episode] = field(default_factory=list)
    setting: Setting = field(default_factory=Setting)


def task_key(task: TaskSpec) -> Hashable:
    """What makes two tasks the same unit: their params and seed."""
    return json.dumps(task.params, sort_keys=True, default=str), int(task.seed)


def _rate(eps: Sequence[Episode]) -> float:
    return sum(bool(e.success) for e in eps) / len(eps)


def _aggregate(results: Sequence[TaskResult], k: int, key: Callable[[TaskSpec], Hashable] = task_key) -> RowStats:
    """A row over ``results``: a distinct task's number is the mean over its settings."""
    results = [r for r in results if r.sampled]
    if not results:
        return RowStats()
    units: dict[Hashable, list[TaskResult]] = defaultdict(list)
    for r in results:
        units[key(r.task)].append(r)

    def per_task(value: Callable[[TaskResult], float], rows: Sequence[Sequence[TaskResult]]) -> list[float]:
        return [sum(value(r) for r in rs) / len(rs) for rs in rows if rs]

    rows = list(units.values())
    mean_k = estimate(per_task(lambda r: _rate(r.sampled), rows))
    pass_k = estimate(
        per_task(lambda r: pass_at_k(len(r.sampled), sum(e.success for e in r.sampled), min(k, len(r.sampled))), rows)
    )
    greedy_rows = [[r for r in rs if r.greedy] for rs in rows]
    greedy = estimate(per_task(lambda r: _rate(r.greedy), greedy_rows)) if any(greedy_rows) else None
    eps = [e for r in results for e in r.sampled]
    return RowStats(
        tasks=len(units),
        episodes=len(eps),
        success=mean_k.value,
        mean_reward=sum(e.reward for e in eps) / len(eps),
        format_errors=sum(bool(e.errors) for e in eps) / len(eps),
        reward_parts={
            part: sum(e.reward_parts.get(part, 0.0) for e in eps) / len(eps)
            for part in sorted({p for e in eps for p in e.reward_parts})
        },
        mean_at_k=mean_k,
        pass_at_k=pass_k,
        greedy=greedy,
    )


def eval_passes(sampling: SamplingParams, greedy: bool) -> int:
    """Passes over the task list: the sampled one, and a greedy one unless it is greedy already."""
    return 1 + (greedy and sampling.temperature > 0)


def _play(
    runner: RolloutRunner,
    env_id: str,
    tasks: Sequence[TaskSpec],
    k: int,
    *,
    setting: Setting,
    seed: int,
    batch_tasks: int,
    name: str,
    on_samples: Callable[[list[dict[str, Any]]], None] | None,
    progress: Callable[[int], None] | None,
) -> list[list[Episode]]:
    """Each task's ``k`` plays' episodes in ``setting``, in task order. Task i samples from
    streams seeded by ``(env_id, seed, i)``: the same draws at every evaluation of a run,
    whatever the batch, and none taken from the policy's own generator (training's RNG
    stays untouched)."""
    out: list[list[Episode]] = []
    labels = {"opponent": setting.opponent} if setting.opponent else {}
    for start in range(0, len(tasks), batch_tasks):
        chunk = tasks[start : start + batch_tasks]
        seeds = [stream_seed("heldout", env_id, seed, start + i) for i in range(len(chunk))]
        by_task: dict[int, list[Episode]] = defaultdict(list)
        eps = runner.run(env_id, chunk, group_size=k, seeds=seeds, controllers=setting.controllers, idle_seats=True)
        for e in eps:
            by_task[e.group].append(e)
        out.extend(by_task[i] for i in range(len(chunk)))
        if on_samples is not None:
            seat = (lambda e: {"seat": e.agent}) if setting.opponent else (lambda e: {})
            on_samples(
                [
                    {**sample_record(e, start + i), **labels, **seat(e), "pass": name}
                    for i in range(len(chunk))
                    for e in by_task[i]
                ]
            )
        if progress is not None:
            progress(len(chunk))
    return out


def evaluate_env(
    policy: Policy,
    env_id: str,
    *,
    n_tasks: int = 100,
    k: int = 1,
    sampling: SamplingParams | None = None,
    greedy: bool = True,
    seed: int = 0,
    batch_tasks: int = 32,
    env_kwargs: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
    tasks: Sequence[TaskSpec] | None = None,
    pool: EnvPool | None = None,
    on_samples: Callable[[list[dict[str, Any]]], None] | None = None,
    opponents: Sequence[str] = ("random",),
) -> EnvReport:
    """Evaluate ``policy`` on ``n_tasks`` held-out tasks of ``env_id`` (or on ``tasks``),
    a single-agent env or a game (in each seat against each of ``opponents``).

    Each task is played ``k`` times with ``sampling`` (default: greedy for k=1, else
    temperature 1) and, with ``greedy``, once more at temperature 0 over the same tasks;
    a greedy ``sampling`` is its own greedy pass. ``pool`` holds the envs (default: in
    this process).

    ``progress`` gets the number of tasks of each finished chunk of each pass and setting
    (a single-agent env's whole evaluation counts ``len(tasks) * eval_passes(sampling,
    greedy)``); ``on_samples`` gets every sample of each finished chunk as it completes
    (see :func:`sample_record`, with ``pass``: "sampled" or "greedy", and a game's
    ``opponent`` and ``seat``), so a stopped evaluation keeps what it had done."""
    sampling = sampling or SamplingParams(max_new_tokens=256, temperature=0.0 if k == 1 else 1.0)
    env_cls = env_spec(env_id).family_class()
    probe = env_spec(env_id).make(**(env_kwargs or {}))
    try:
        settings = eval_settings(probe, opponents)
    finally:
        probe.close()
    tasks = list(tasks) if tasks is not None else env_cls.held_out_tasks(n_tasks, seed=seed, env_kwargs=env_kwargs)
    own_pool = pool is None
    pool = pool if pool is not None else InProcessPool()
    t0 = time.perf_counter()
    common: dict[str, Any] = {"seed": seed, "batch_tasks": batch_tasks, "on_samples": on_samples, "progress": progress}
    greedy_sp = replace(sampling, temperature=0.0)
    results: list[TaskResult] = []
    try:
        runner = RolloutRunner(policy, sampling, env_kwargs=env_kwargs, pool=pool, seed=seed)
        greedy_runner = RolloutRunner(policy, greedy_sp, env_kwargs=env_kwargs, pool=pool, seed=seed)
        for setting in settings:
            sampled = _play(runner, env_id, tasks, k, setting=setting, name="sampled", **common)
            if sampling.temperature == 0:
                greedy_eps = sampled
            elif greedy:
                greedy_eps = _play(greedy_runner, env_id, tasks, 1, setting=setting, name="greedy", **common)
            else:
                greedy_eps = [[] for _ in tasks]
            results.extend(TaskResult(t, s, g, setting) for t, s, g in zip(tasks, sampled, greedy_eps) if s)
    finally:
        if own_pool:
            pool.close()
    by_region, by_param = _breakdown(results, env_cls.held_out.region, k)
    return EnvReport(
        env_id=env_id,
        k=k,
        overall=_aggregate(results, k),
        by_region=by_region,
        by_param=by_param,
        tasks=[
            {
                "task": r.task.to_dict(),
                **({"opponent": r.setting.opponent, "seat": r.setting.seat} if r.setting.opponent else {}),
                "successes": [e.success for e in r.sampled],
                "rewards": [e.reward for e in r.sampled],
                "greedy_successes": [e.success for e in r.greedy],
                "reply": _last_reply(r.sampled[0], 500),
            }
            for r in results
        ],
        seconds=time.perf_counter() - t0,
        temperature=sampling.temperature,
    )


def _breakdown(
    results: Sequence[TaskResult], region: Any, k: int
) -> tuple[dict[str, RowStats], dict[str, dict[str, RowStats]]]:
    """Rows by held-out region and by parameter value (every non-float task param; a
    game's settings by opponent, seat and both, in place of the task's own params)."""
    regions: dict[str, list[TaskResult]] = defaultdict(list)
    params: dict[str, dict[str, list[TaskResult]]] = defaultdict(lambda: defaultdict(list))
    games: dict[str, dict[str, list[TaskResult]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        p = r.task.params
        inside = region is not None and region.contains(p)
        regions["unseen region" if inside else "trained region, unseen seeds"].append(r)
        for name, v in p.items():
            if not isinstance(v, float):
                params[name][str(v)].append(r)
        if r.setting.opponent:  # the setting, not the task's own opponent/seat params, says who played
            opp, seat = r.setting.opponent, r.setting.seat
            for name, v in (("opponent", opp), ("seat", seat), ("opponent / seat", f"{opp} / {seat}")):
                games[name][v].append(r)
    by_param = {n: {v: _aggregate(rs, k) for v, rs in sorted(vals.items())} for n, vals in params.items()}
    by_param.update({n: {v: _aggregate(rs, k) for v, rs in vals.items()} for n, vals in games.items()})
    return {name: _aggregate(rs, k) for name, rs in sorted(regions.items())}, by_param


def _last_reply(ep: Episode, chars: int) -> str:
    return next((m["content"][:chars] for m in reversed(ep.messages) if m["role"] == "assistant"), "")


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
    """Write ``{"meta": ..., "envs": [report, ...]}`` atomically (unknown standard errors are NaN)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"meta": meta or {}, "envs": [asdict(r) for r in reports]}
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(path)
    return path
