import json

import pytest

from agentgym.eval import evaluate_env, pass_at_k, write_json
from agentgym.policies import SamplingParams, ScriptedPolicy


def test_pass_at_k_by_hand():
    assert pass_at_k(4, 0, 1) == 0.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    # n=4, c=1, k=2: 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)
    # n=5, c=2, k=3: 1 - C(3,3)/C(5,3) = 1 - 1/10
    assert pass_at_k(5, 2, 3) == pytest.approx(0.9)
    assert pass_at_k(3, 3, 3) == 1.0
    with pytest.raises(ValueError):
        pass_at_k(2, 3, 1)


def _secret_from(text):
    # The guess env is solvable by binary search on its feedback.
    import re

    high = int(re.search(r"between 1 and (\d+)", text).group(1))
    lo, hi = 1, high
    guesses = re.findall(r"<\|im_start\|>assistant\n(\d+)<\|im_end\|>\n<\|im_start\|>user\nNo, (higher|lower)", text)
    for g, word in guesses:
        if word == "higher":
            lo = int(g) + 1
        else:
            hi = int(g) - 1
    return (lo + hi) // 2


def test_held_out_eval_splits_regions_and_counts_success(chat, tmp_path):
    pol = ScriptedPolicy(chat, lambda text: str(_secret_from(text)))
    rep = evaluate_env(
        pol, "test/guess-v0", n_tasks=24, k=2, sampling=SamplingParams(max_new_tokens=8), env_kwargs={"max_turns": 6}
    )
    assert rep.overall.tasks == 24 and rep.overall.episodes == 48
    # Binary search finds any number up to 50 within 6 guesses.
    assert rep.overall.success == 1.0 and rep.overall.pass_at_k == 1.0
    assert set(rep.by_region) == {"unseen region", "trained region, unseen seeds"}
    assert rep.by_region["unseen region"].tasks == 6  # every 4th held-out task lies in the region
    assert all(t["task"]["seed"] >= 1_000_000_000 for t in rep.tasks)
    out = write_json([rep], tmp_path / "r.json", meta={"policy": "script"})
    data = json.loads(out.read_text())
    assert data["envs"][0]["overall"]["success"] == 1.0 and data["meta"]["policy"] == "script"


def test_eval_of_a_wrong_policy_is_zero(chat):
    pol = ScriptedPolicy(chat, lambda text: "I give up")
    rep = evaluate_env(pol, "test/guess-v0", n_tasks=8, k=1, sampling=SamplingParams(max_new_tokens=8))
    assert rep.overall.success == 0.0 and rep.overall.format_errors == 1.0


def test_eval_reports_mean_reward_parts(chat):
    pytest.importorskip("agentgym_tools")
    pol = ScriptedPolicy(chat, lambda text: "<answer>0</answer>")
    rep = evaluate_env(pol, "tools/calendar-v0", n_tasks=8, k=1, sampling=SamplingParams(max_new_tokens=8))
    parts = rep.overall.reward_parts
    # a well-formed answer and no calls: full format score, no name/args credit, wrong answers
    assert parts == {"format": pytest.approx(0.1), "name": 0.0, "args": 0.0, "answer": 0.0}
    assert sum(parts.values()) == pytest.approx(rep.overall.mean_reward)
