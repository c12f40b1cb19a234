"""Held-out evaluation of a policy in multi-agent games, against fixed opponents.

For every opponent kind (a scripted player of the game, or ``"self"`` for the policy in
every seat) and every seat, the policy plays each held-out task once in that seat. A
row's ``success`` is the learner seat's success (a win, a correct final answer), its
``mean_reward`` the seat's mean return; ``by_param["opponent"]`` and ``["seat"]`` split
them, ``overall`` pools every game. Under ``"self"`` every seat's episode counts. A game
that ends before the learner's seat moves (the opponent takes the last object) still
counts, with the seat's return.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from agentgym.env import TaskSpec
from agentgym.eval.heldout import EnvReport, _aggregate, sample_record
from agentgym.multiagent import POLICY
from agentgym.policies.base import Policy, SamplingParams
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
    sampling: SamplingParams | None = None,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
    on_samples: Callable[[list[dict[str, Any]]], None] | None = None,
) -> EnvReport:
    """Play ``tasks`` (default: ``n_tasks`` held-out ones) against each opponent in each seat;
    ``on_samples`` gets each finished play's samples (with ``opponent`` and ``seat``) as they end."""
    sampling = sampling or SamplingParams(max_new_tokens=64, temperature=0.0)
    env_cls = env_spec(env_id).load_class()
    probe = make(env_id, **(env_kwargs or {}))
    probe.check_players(opponents=opponents)
    seats = list(probe.possible_agents)
    probe.close()
    if tasks is None:
        tasks = env_cls.held_out_tasks(n_tasks, seed=seed)
    runner = MultiAgentRunner(policy, sampling, env_kwargs=env_kwargs, seed=seed)
    t0 = time.perf_counter()
    rows: list[tuple[str, str, list[Episode]]] = []  # (opponent, seat, one group per task)
    for opp in opponents:
        plays = (
            [("all", {a: POLICY for a in seats})]
            if opp == "self"
            else [(seat, {a: (POLICY if a == seat else opp) for a in seats}) for seat in seats]
        )
        for seat, ctl in plays:
            eps = runner.run(env_id, tasks, group_size=1, controllers=ctl, idle_seats=True)
            rows.append((opp, seat, eps))
            if on_samples is not None:
                on_samples([{**sample_record(e, e.group), "opponent": opp, "seat": e.agent} for e in eps])
            if progress is not None:
                progress(len(tasks))
    groups: list[list[Episode]] = []
    by_opp: dict[str, list[list[Episode]]] = defaultdict(list)
    by_seat: dict[str, list[list[Episode]]] = defaultdict(list)
    by_both: dict[str, list[list[Episode]]] = defaultdict(list)
    regions: dict[str, list[list[Episode]]] = defaultdict(list)
    region = env_cls.held_out.region
    for opp, seat, eps in rows:
        per_task: dict[int, list[Episode]] = defaultdict(list)
        for e in eps:
            per_task[e.group].append(e)
        for g in per_task.values():
            groups.append(g)
            by_opp[opp].append(g)
            by_seat[seat].append(g)
            by_both[f"{opp} / {seat}"].append(g)
            inside = region is not None and region.contains(g[0].task.params)
            regions["unseen region" if inside else "trained region, unseen seeds"].append(g)
    return EnvReport(
        env_id=env_id,
        k=1,
        overall=_aggregate(groups, 1),
        by_region={name: _aggregate(gs, 1) for name, gs in sorted(regions.items())},
        by_param={
            "opponent": {o: _aggregate(gs, 1) for o, gs in by_opp.items()},
            "seat": {s: _aggregate(gs, 1) for s, gs in by_seat.items()},
            "opponent / seat": {k: _aggregate(gs, 1) for k, gs in by_both.items()},
        },
        tasks=[
            {
                "opponent": opp,
                "seat": seat,
                "task": e.task.to_dict(),
                "agent": e.agent,
                "success": e.success,
                "reward": e.reward,
                "reply": next((m["content"][:300] for m in reversed(e.messages) if m["role"] == "assistant"), ""),
            }
            for opp, seat, eps in rows
            for e in eps
        ],
        seconds=time.perf_counter() - t0,
    )
