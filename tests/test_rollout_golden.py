"""Golden rollouts: the Episodes of a fixed set of seeded small runs, pinned record for record.

Every way a rollout can be played (a one-turn and a multi-turn single-agent env, a
turn-based game in self-play and against a scripted seat, a simultaneous game, a token
budget, demonstrations, held-out evaluation of both kinds) is run with the tiny test model
or a scripted policy, and what the Episodes hold is compared with
``tests/golden/rollouts.json``: token ids, loss masks and messages (as hashes), rewards,
successes, seats, groups, tasks, turn structure and end reasons exactly; log-probs within
``atol`` (floats differ a little across CPUs).

``AGENTGYM_WRITE_GOLDEN=1 pytest tests/test_rollout_golden.py`` rewrites the file: only
for a deliberate change of what rollouts produce, said in the commit.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest

from agentgym.env import TaskSpec
from agentgym.policies.base import SamplingParams
from agentgym.policies.scripted import ScriptedPolicy

GOLDEN = Path(__file__).parent / "golden" / "rollouts.json"
ATOL = 1e-5


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def _record(ep) -> dict:
    """An Episode as the golden file keeps it: exact fields, hashes of long lists, log-prob summaries."""
    sampled = [lp for lp, m in zip(ep.logprobs, ep.loss_mask) if m]
    return {
        "env_id": ep.env_id,
        "agent": ep.agent,
        "group": ep.group,
        "task": ep.task.to_dict(),
        "n_tokens": len(ep.token_ids),
        "prompt_len": ep.prompt_len,
        "token_ids": _digest(ep.token_ids),
        "loss_mask": _digest(ep.loss_mask),
        "policy_tokens": ep.num_policy_tokens,
        "messages": _digest(ep.messages),
        "turns": "".join(m["role"][0] for m in ep.messages),
        "turn_rewards": ep.turn_rewards,
        "reward_parts": dict(sorted(ep.reward_parts.items())),
        "success": ep.success,
        "end_reason": ep.end_reason,
        "hit_length_limit": ep.hit_length_limit,
        "errors": len(ep.errors),
        "policy_version": ep.policy_version,
        "zero_logprob_off_mask": all(lp == 0.0 for lp, m in zip(ep.logprobs, ep.loss_mask) if not m),
        "logprob_sum": sum(sampled),
        "logprob_head": sampled[:3],
    }


def _policy_move(text: str) -> str:
    """A rule player for the games and the guessing env (valid moves, so games run long)."""
    last = text[text.rfind("user") :]
    if "check or bet" in last:
        return "I bet."
    if "call or fold" in last:
        return "call"
    heaps = re.findall(r"heap (\d+) has (\d+)", last)
    if heaps:
        h = next((i for i, n in heaps if int(n) > 0), heaps[0][0])
        return f"take 1 from heap {h}"
    if "What do you take?" in last or "what do you take?" in last:
        return "books=1 hats=0 balls=0"
    if "Guess my number" in last or "higher" in last or "lower" in last:
        return str(3 + text.count("higher") - text.count("lower"))
    return "The answer is \\boxed{0}."


def _runs(tiny) -> dict:
    """Play every golden run; name -> what it produced."""
    from agentgym.eval import evaluate_env, report_metrics
    from agentgym.policies.transformers_policy import TransformersPolicy
    from agentgym.rollout import make_runner
    from agentgym.rollout.demos import make_demos

    model, tok = tiny
    out: dict = {}

    def fresh():
        return TransformersPolicy(model, tok, seed=0)

    def play(name, env_id, policy, tasks, *, group=2, seeds=None, tokens=12, temperature=1.0, **kw):
        sp = SamplingParams(max_new_tokens=tokens, temperature=temperature)
        runner = make_runner(env_id, policy, sp, **kw)
        rounds: list[list[int]] = []
        try:
            eps = runner.run(env_id, tasks, group_size=group, seeds=seeds, on_round=lambda r, n: rounds.append([r, n]))
        finally:
            runner.close()
        st = runner.last_stats
        out[name] = {
            "episodes": [_record(e) for e in eps],
            "stats": [st.episodes, st.dropped_env_errors, st.generated_tokens],
            "rounds": rounds,
        }

    scripted = ScriptedPolicy(fresh().chat, _policy_move)
    math_tasks = [TaskSpec({"digits": 1, "n_operands": 2, "operators": "+", "negatives": False}, s) for s in range(3)]
    play("math_seeded", "math/arithmetic-v0", fresh(), math_tasks, seeds=[11, 12, 13])
    play("math_unseeded", "math/arithmetic-v0", fresh(), math_tasks)
    guess = [TaskSpec({"high": 9, "hint": False}, s) for s in range(2)]
    play("guess_tiny", "test/guess-v0", fresh(), guess, seeds=[5, 6], env_kwargs={"max_turns": 3})
    play("guess_scripted", "test/guess-v0", scripted, guess, env_kwargs={"max_turns": 4})
    play("guess_budget", "test/guess-v0", fresh(), guess[:1], seeds=[7], max_episode_tokens=110)
    grid = [TaskSpec({"family": "empty", "size": 5, "count": 1, "show_subgoals": False}, s) for s in range(2)]
    play("minigrid_tiny", "minigrid/empty-v0", fresh(), grid, group=1, seeds=[1, 2], env_kwargs={"max_turns": 2})

    nim = [TaskSpec({"heaps": 2, "max_heap": 3, "opponent": "self", "seat": 0}, s) for s in range(2)]
    play("nim_self_tiny", "multiagent/nim-v0", fresh(), nim, seeds=[3, 4])
    play("nim_self_tiny_unseeded", "multiagent/nim-v0", fresh(), nim, seed=7)
    play("nim_self_scripted", "multiagent/nim-v0", scripted, nim)
    nim_r = [TaskSpec({"heaps": 2, "max_heap": 4, "opponent": "random", "seat": 1}, s) for s in range(3)]
    play("nim_vs_random_seat1", "multiagent/nim-v0", scripted, nim_r, seed=2)
    play("nim_controllers", "multiagent/nim-v0", scripted, nim, controllers={"player_0": "optimal"}, seed=1)
    play("nim_budget", "multiagent/nim-v0", scripted, nim, max_episode_tokens=150, tokens=16)
    kuhn = [TaskSpec({"opponent": "optimal", "seat": 0}, s) for s in range(3)]
    play("kuhn_vs_optimal_tiny", "multiagent/kuhn-poker-v0", fresh(), kuhn, seeds=[1, 2, 3])
    play("kuhn_vs_optimal_scripted", "multiagent/kuhn-poker-v0", scripted, kuhn, seed=4)
    neg = {"n_kinds": 2, "max_count": 2, "max_rounds": 3}
    play(
        "negotiation_self_tiny",
        "multiagent/negotiation-v0",
        fresh(),
        [TaskSpec({**neg, "opponent": "self", "seat": 0}, s) for s in range(2)],
        seeds=[8, 9],
    )
    play(
        "negotiation_vs_greedy",
        "multiagent/negotiation-v0",
        scripted,
        [TaskSpec({**neg, "opponent": "greedy", "seat": 1}, s) for s in range(2)],
    )
    solver = {"digits": 1, "n_operands": 2, "operators": "+", "negatives": False}
    play(
        "solver_critic_self",
        "multiagent/solver-critic-v0",
        fresh(),
        [TaskSpec({**solver, "opponent": "self", "seat": 0}, s) for s in range(2)],
        seeds=[1, 2],
    )

    chat = fresh().chat
    for env_id, n in (("math/arithmetic-v0", 3), ("multiagent/nim-v0", 2), ("multiagent/negotiation-v0", 2)):
        eps, st = make_demos(env_id, chat, n, seed=3, max_new_tokens=32)
        out[f"demos:{env_id}"] = {
            "episodes": [_record(e) for e in eps],
            "stats": [st.tasks, st.episodes, st.kept, st.failed],
        }

    # A one-object heap against the optimal player: the learner in seat 1 never moves (an idle seat).
    nim_small = [TaskSpec({"heaps": 1, "max_heap": 2, "opponent": "self", "seat": 0}, s) for s in range(4)]
    for env_id, policy, tasks, opponents in (
        ("math/arithmetic-v0", fresh(), math_tasks, ("random",)),
        ("test/guess-v0", scripted, guess, ("random",)),
        ("multiagent/nim-v0", scripted, nim_r, ("random", "self")),
        ("multiagent/nim-v0#small", scripted, nim_small, ("optimal",)),
        ("multiagent/kuhn-poker-v0", fresh(), kuhn, ("optimal",)),
    ):
        sp = SamplingParams(max_new_tokens=10, temperature=1.0)
        rep = evaluate_env(policy, env_id.split("#")[0], tasks=tasks, sampling=sp, k=2, opponents=opponents, seed=5)
        metrics = report_metrics(rep)
        out[f"eval:{env_id}"] = {
            "metrics": {k: v for k, v in sorted(metrics.items()) if v == v},  # NaN != NaN: left out
            "by_param": sorted(rep.by_param),
            "tasks": _digest(rep.tasks),
        }
    return out


def _compare(got, want, where: str) -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), f"{where}: keys {sorted(got)} != {sorted(want)}"
        for k in want:
            _compare(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: {got!r} != {want!r}"
        for i, (g, w) in enumerate(zip(got, want)):
            _compare(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(want, bool):
        assert got == pytest.approx(want, abs=ATOL), f"{where}: {got!r} != {want!r}"
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


def _normalise(value):
    """Through JSON, as the stored file is (tuples become lists, ints stay ints)."""
    return json.loads(json.dumps(value))


def test_rollouts_match_the_golden_file(tiny):
    got = _normalise(_runs(tiny))
    if os.environ.get("AGENTGYM_WRITE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=None, separators=(",", ":"), sort_keys=True) + "\n")
    want = json.loads(GOLDEN.read_text())
    # Sampled tokens are pinned exactly, and they are exact only on a CPU whose float
    # kernels are the golden's: elsewhere a near-tie between two tokens of the random tiny
    # model can fall the other way (seen between two AMD EPYC machines: log-probs 4e-6
    # apart, then 4 of 60 episodes with other tokens). The first episode's log-probs say
    # which kind of CPU this is.
    here, there = got["math_seeded"]["episodes"][0]["logprob_head"], want["math_seeded"]["episodes"][0]["logprob_head"]
    if any(abs(a - b) > 1e-6 for a, b in zip(here, there)):
        pytest.skip(
            f"this CPU's float kernels differ from the golden file's (log-probs {here} here, {there} there): "
            "regenerate it here with AGENTGYM_WRITE_GOLDEN=1 to compare"
        )
    assert sorted(got) == sorted(want)
    for name in want:
        _compare(got[name], want[name], name)
