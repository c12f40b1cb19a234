"""train.max_generations: arms that spend differently per step stop at the same compute."""

from __future__ import annotations

import json

from agentgym.config import load_config
from agentgym.grpo.trainer import GRPOTrainer, resume_run

BASE = [
    "model.name=tiny",
    "env.id=test/no-e-v0",
    "rollout.tasks_per_step=2",
    "rollout.group_size=4",
    "rollout.max_new_tokens=4",
    "grpo.mask_truncated=false",
    "grpo.lr=1e-3",
    "train.eval_tasks=4",
    "train.eval_k=1",
    "train.eval_max_new_tokens=4",
    "train.steps=50",
    "train.max_generations=40",
    "train.report_to=[]",
]


def _spent(run):
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [int(r["rollout/spent"]) for r in rows if r["kind"] == "train"]


def test_a_run_stops_when_its_generation_budget_is_spent(tmp_path):
    res = GRPOTrainer(load_config(None, [*BASE, f"run_dir={tmp_path / 'a'}"]), quiet=True).train()
    assert not res.interrupted and res.steps_done == 5 and _spent(tmp_path / "a") == [8] * 5
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["generations"] == 40 and summary["steps"] == 5
    assert max(res.evals) == 5  # the last step is evaluated as the end of the run
    # Dynamic sampling refills dropped groups: more generations per step, fewer steps.
    ds = [*BASE, f"run_dir={tmp_path / 'b'}", "grpo.dynamic_sampling=true", "grpo.max_refill_rounds=3"]
    res = GRPOTrainer(load_config(None, ds), quiet=True).train()
    spent = _spent(tmp_path / "b")
    assert sum(spent[:-1]) < 40 <= sum(spent) and res.steps_done == len(spent)


def test_a_resumed_run_counts_the_budget_from_its_log(tmp_path):
    run = tmp_path / "r"
    tr = GRPOTrainer(load_config(None, [*BASE, f"run_dir={run}", "train.save_every=1"]), quiet=True)
    orig = tr.step_once

    def stop_after_three():
        rec = orig()
        if tr.step == 3:
            tr.request_stop()
        return rec

    tr.step_once = stop_after_three
    assert tr.train().interrupted
    res = resume_run(run, quiet=True)
    assert not res.interrupted and res.steps_done == 5 and _spent(run) == [8] * 5


def test_teachers_scale_to_the_steps_the_budget_allows():
    """A teacher's run-length options (ALP-GMM's fit rate, the bandit's decay) follow the
    steps the generation budget allows, not the train.steps upper bound."""
    from agentgym.grpo.setup import teacher_steps

    cfg = load_config(None, [*BASE, "train.steps=600", "train.max_generations=960"])
    assert teacher_steps(cfg) == 120  # 960 / (2 x 4)
    assert teacher_steps(load_config(None, [*BASE, "train.steps=30", "train.max_generations=960"])) == 30
