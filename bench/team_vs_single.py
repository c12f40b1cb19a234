"""Two agents vs one on the same held-out tasks: pioneer/observer and solver/critic against
the single agent, with one policy in every seat.

    python bench/team_vs_single.py [--policy smollm2-135m|PATH] [--tasks 64]
                                   [--max-new-tokens 48] [--out bench/results/team_vs_single.json]

The tasks are the held-out tasks the quickstart evaluates on (``math/arithmetic-v0``,
one-digit + and +-, held-out seeds, the trainer's evaluation seed), so a checkpoint from
``configs/quickstart.yaml`` or ``configs/pioneer-observer.yaml`` is compared on exactly
the questions its own evaluation used. The team games ask the same question (same
params, same seed) and judge every answer with the math env's own verifier. Greedy
decoding, so each number is one pass over the tasks.

Rows:

- ``single``: the policy answers alone (``math/arithmetic-v0``'s success);
- ``pioneer/observer``: the team's final answer; also the pioneer's own answer, and how
  often the observer fixed a wrong pioneer answer or broke a right one;
- ``solver/critic``: the solver's final answer (after a revision the critic asked for);
  also the solver's first answer and the critic's verdict accuracy.

``--params`` restricts the task space differently (JSON, e.g. '{"digits": [1, 2]}').
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from common import add_out, write_report  # noqa: E402  (bench/ is on sys.path when run)

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART_PARAMS = {"digits": [1], "n_operands": [2], "operators": ["+", "+-"], "negatives": [False]}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--policy", default="smollm2-135m", help="smollm2-135m, tiny, or a checkpoint folder")
    ap.add_argument("--tasks", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--params", default=json.dumps(QUICKSTART_PARAMS), help="task restriction, JSON")
    ap.add_argument(
        "--setups",
        nargs="+",
        default=["pioneer-observer", "solver-critic"],
        choices=["pioneer-observer", "solver-critic"],
        help="team games to compare with the single agent",
    )
    add_out(ap, "team_vs_single")
    args = ap.parse_args(argv)

    import agentgym_multiagent  # noqa: F401  (registers the games)

    from agentgym.env import TaskSpec
    from agentgym.eval.heldout import evaluate_env
    from agentgym.grpo.trainer import EVAL_SEED
    from agentgym.policies import SamplingParams, make_policy
    from agentgym.registry import spec
    from agentgym.rollout import RolloutRunner

    params = json.loads(args.params)
    math_cls = spec("math/arithmetic-v0").load_class()
    tasks = math_cls.held_out_tasks(args.tasks, seed=EVAL_SEED, restrict=params)  # distinct held-out problems
    team_tasks = [TaskSpec({**t.params, "opponent": "self", "seat": 0}, t.seed) for t in tasks]
    policy = make_policy(args.policy, seed=0)
    sp = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=0.0)
    rows: dict[str, dict[str, Any]] = {}

    t0 = time.perf_counter()
    single = evaluate_env(policy, "math/arithmetic-v0", tasks=tasks, k=1, sampling=sp)
    rows["single"] = {"success": single.overall.success, "seconds": time.perf_counter() - t0}
    # Keyed by task, so a task dropped on one side (an env error) cannot shift the rest.
    single_by_task = {_key(r["task"]["params"], r["task"]["seed"]): bool(r["successes"][0]) for r in single.tasks}
    single_ok = [single_by_task.get(_key(t.params, t.seed), False) for t in tasks]

    runner = RolloutRunner(policy, sp, seed=0)
    if "pioneer-observer" in args.setups:
        _pioneer_observer(runner, team_tasks, single_ok, rows)
    if "solver-critic" in args.setups:
        _solver_critic(runner, team_tasks, rows)

    report = {
        "policy": args.policy,
        "tasks": len(tasks),
        "params": params,
        "eval_seed": EVAL_SEED,
        "max_new_tokens": args.max_new_tokens,
        "rows": rows,
        "per_task": {"single": single_ok, **{k: v.pop("per_task") for k, v in rows.items() if "per_task" in v}},
    }
    _print(report)
    out = Path(args.out)
    write_report(out, report)
    return report


def _pioneer_observer(runner: Any, team_tasks: list, single_ok: list[bool], rows: dict[str, Any]) -> None:
    from agentgym.multiagent import POLICY

    t0 = time.perf_counter()
    eps = runner.run(
        "multiagent/pioneer-observer-v0",
        team_tasks,
        controllers={"pioneer": POLICY, "observer": POLICY},
        idle_seats=True,
    )
    games = _by_game(eps, len(team_tasks))
    pioneer_ok = [bool(g) and g["pioneer"].reward_parts.get("individual", 0.0) > 0 for g in games]
    final_ok = [bool(g) and g["observer"].success for g in games]
    rows["pioneer/observer"] = {
        "success": _mean(final_ok),
        "pioneer_alone": _mean(pioneer_ok),
        "observer_fixed": sum(f and not p for p, f in zip(pioneer_ok, final_ok)),
        "observer_broke": sum(p and not f for p, f in zip(pioneer_ok, final_ok)),
        "team_only": sum(f and not s for s, f in zip(single_ok, final_ok)),
        "single_only": sum(s and not f for s, f in zip(single_ok, final_ok)),
        "seconds": time.perf_counter() - t0,
        "per_task": final_ok,
    }


def _solver_critic(runner: Any, team_tasks: list, rows: dict[str, Any]) -> None:
    from agentgym.multiagent import POLICY

    t0 = time.perf_counter()
    eps = runner.run(
        "multiagent/solver-critic-v0", team_tasks, controllers={"solver": POLICY, "critic": POLICY}, idle_seats=True
    )
    games = _by_game(eps, len(team_tasks))
    games = [g for g in games if g]  # (a game dropped on an env error counts as lost below)
    first_ok = [_first_answer_right(g["solver"]) for g in games]
    rows["solver/critic"] = {
        "success": sum(g["solver"].success for g in games) / len(team_tasks),
        "solver_first_answer": _mean(first_ok),
        "critic_right": _mean([g["critic"].success for g in games if g["critic"].num_policy_tokens]),
        "critic_forfeits": sum(bool(g["critic"].reward_parts.get("forfeit")) for g in games),
        "seconds": time.perf_counter() - t0,
    }


def _key(params: dict[str, Any], seed: int) -> str:
    return json.dumps([{k: v for k, v in params.items() if k not in ("opponent", "seat")}, int(seed)], sort_keys=True)


def _by_game(eps: list, n_tasks: int) -> list[dict[str, Any]]:
    """The seats of each task's game, in task order (a game dropped on an env error: empty)."""
    games: dict[int, dict[str, Any]] = {}
    for e in eps:
        games.setdefault(e.group, {})[e.agent] = e
    return [games.get(k, {}) for k in range(n_tasks)]


def _first_answer_right(solver_ep: Any) -> bool:
    """The solver's first answer was right: its first move earned the ``correct`` credit."""
    return bool(solver_ep.turn_rewards) and solver_ep.turn_rewards[0] > 0


def _mean(xs: list[bool]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def _print(report: dict[str, Any]) -> None:
    print(
        f"\npolicy {report['policy']}, {report['tasks']} held-out tasks, greedy, {report['max_new_tokens']} tokens a "
        "move"
    )
    print(f"{'setup':<18} {'success':>8}  details")
    for name, row in report["rows"].items():
        extra = ", ".join(
            f"{k} {v:.1%}" if isinstance(v, float) and k != "seconds" else f"{k} {v}"
            for k, v in row.items()
            if k not in ("success", "seconds")
        )
        print(f"{name:<18} {row['success']:>8.1%}  {extra} ({row['seconds']:.0f} s)")


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
