"""Held-out evaluation of a policy in multi-agent games, against fixed opponents.

For every opponent kind (a scripted player of the game, or ``"self"`` for the policy in
every seat) and every seat, the policy plays each held-out task k times in that seat
(and once more greedily, as in :mod:`agentgym.eval.heldout`). A row's ``success``
(mean@k) is the learner seat's success (a win, a correct final answer), with pass@k and
greedy success beside it, each with its standard error over distinct tasks; its
``mean_reward`` is the seat's mean return; ``by_param["opponent"]`` and ``["seat"]`` split
them, ``overall`` pools every game. Under ``"self"`` every seat's episode counts. A game
that ends before the learner's seat moves (the opponent takes the last object) still
counts, with the seat's return.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from agentgym.env import TaskSpec
from agentgym.eval.heldout import EnvReport, TaskResult, _aggregate, sample_record
from agentgym.multiagent import POLICY
from agentgym.policies.base import Policy, SamplingParams, stream_seed
from agentgym.registry import make
from agentgym.registry import spec as env_spec
from agentgym.rollout.episode import Episode
from agentgym.rollout.multi import MultiAgentRunner


def evaluate_games(
    policy: Policy,
    env_id: str,
    *,
    opponents: Sequence[str] = ("random",),
    n_tasks: int = 64,
    tasks: Sequence[TaskSpec] | None = None,
    k: int = 1,
    sampling: SamplingParams | None = None,
    greedy: bool = True,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
    on_samples: Callable[[list[dict[str, Any]]], None] | None = None,
) -> EnvReport:
    """Play ``tasks`` (default: ``n_tasks`` held-out ones) against each opponent in each seat,
    ``k`` times with ``sampling`` (default greedy) and, with ``greedy``, once more greedily.

    A distinct task (a deal) is one unit of the standard errors: its number in a row is
    the mean over the opponents and seats of that row. ``progress`` gets the tasks of each
    finished play of each pass; ``on_samples`` each finished play's samples (with
    ``opponent``, ``seat`` and ``pass``) as they end."""
    sampling = sampling or SamplingParams(max_new_tokens=64, temperature=0.0)
    env_cls = env_spec(env_id).load_class()
    probe = make(env_id, **(env_kwargs or {}))
    probe.check_players(opponents=opponents)
    seats = list(probe.possible_agents)
    probe.close()
    if tasks is None:
        tasks = env_cls.held_out_tasks(n_tasks, seed=seed, env_kwargs=env_kwargs)
    tasks = list(tasks)
    seeds = [stream_seed("heldout", env_id, seed, i) for i in range(len(tasks))]
    passes = [("sampled", MultiAgentRunner(policy, sampling, env_kwargs=env_kwargs, seed=seed), k)]
    if greedy and sampling.temperature > 0:
        greedy_sp = replace(sampling, temperature=0.0)
        passes.append(("greedy", MultiAgentRunner(policy, greedy_sp, env_kwargs=env_kwargs, seed=seed), 1))
    t0 = time.perf_counter()
    # (opponent, seat) -> pass name -> each task's episodes
    plays: dict[tuple[str, str], dict[str, list[list[Episode]]]] = {}
    for opp in opponents:
        settings = (
            [("all", {a: POLICY for a in seats})]
            if opp == "self"
            else [(seat, {a: (POLICY if a == seat else opp) for a in seats}) for seat in seats]
        )
        for seat, ctl in settings:
            for name, runner, group_size in passes:
                eps = runner.run(env_id, tasks, group_size=group_size, controllers=ctl, idle_seats=True, seeds=seeds)
                per_task: dict[int, list[Episode]] = defaultdict(list)
                for e in eps:
                    per_task[e.group].append(e)
                plays.setdefault((opp, seat), {})[name] = [per_task[i] for i in range(len(tasks))]
                if on_samples is not None:
                    on_samples(
                        [{**sample_record(e, e.group), "opponent": opp, "seat": e.agent, "pass": name} for e in eps]
                    )
                if progress is not None:
                    progress(len(tasks))
    results: list[TaskResult] = []
    by_opp: dict[str, list[TaskResult]] = defaultdict(list)
    by_seat: dict[str, list[TaskResult]] = defaultdict(list)
    by_both: dict[str, list[TaskResult]] = defaultdict(list)
    regions: dict[str, list[TaskResult]] = defaultdict(list)
    region = env_cls.held_out.region
    for (opp, seat), got in plays.items():
        sampled = got["sampled"]
        greedy_eps = got.get("greedy", sampled if sampling.temperature == 0 else [[] for _ in tasks])
        for task, s, g in zip(tasks, sampled, greedy_eps):
            if not s:
                continue
            r = TaskResult(task, s, g)
            results.append(r)
            by_opp[opp].append(r)
            by_seat[seat].append(r)
            by_both[f"{opp} / {seat}"].append(r)
            inside = region is not None and region.contains(task.params)
            regions["unseen region" if inside else "trained region, unseen seeds"].append(r)
    return EnvReport(
        env_id=env_id,
        k=k,
        overall=_aggregate(results, k),
        by_region={name: _aggregate(rs, k) for name, rs in sorted(regions.items())},
        by_param={
            "opponent": {o: _aggregate(rs, k) for o, rs in by_opp.items()},
            "seat": {s: _aggregate(rs, k) for s, rs in by_seat.items()},
            "opponent / seat": {b: _aggregate(rs, k) for b, rs in by_both.items()},
        },
        tasks=[
            {
                "opponent": opp,
                "seat": seat,
                "pass": name,
                "task": e.task.to_dict(),
                "agent": e.agent,
                "success": e.success,
                "reward": e.reward,
                "reply": next((m["content"][:300] for m in reversed(e.messages) if m["role"] == "assistant"), ""),
            }
            for (opp, seat), got in plays.items()
            for name, per_task in got.items()
            for eps in per_task
            for e in eps
        ],
        seconds=time.perf_counter() - t0,
        temperature=sampling.temperature,
    )
