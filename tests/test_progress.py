"""What a training run prints when its output goes to a log file, not a terminal."""

from __future__ import annotations

from agentgym.config import load_config
from agentgym.grpo.trainer import GRPOTrainer


def test_a_logged_run_prints_plain_progress_and_each_eval(tmp_path, capsys):
    cfg = load_config(
        None,
        [
            f"run_dir={tmp_path / 'run'}",
            "model.name=tiny",
            "env.id=test/no-e-v0",
            "rollout.tasks_per_step=2",
            "rollout.group_size=4",
            "rollout.max_new_tokens=4",
            "grpo.mask_truncated=false",
            "train.eval_tasks=4",
            "train.eval_k=2",
            "train.eval_max_new_tokens=4",
            "train.steps=2",
            "train.eval_every=1",
            "train.report_to=[]",
        ],
    )
    seen = []
    tr = GRPOTrainer(cfg)
    orig = tr.evaluate

    def evaluate():  # the held-out eval reports its tasks as they finish: 4 sampled + 4 greedy
        counts = []
        inner = tr._eval_progress
        tr._eval_progress = lambda n: (counts.append(n), inner(n))
        rep = orig()
        seen.append(sum(counts))
        return rep

    tr.evaluate = evaluate
    tr.train()
    out = capsys.readouterr().out
    assert "\r" not in out  # no bar redrawn into a log
    assert "held-out eval: 4 distinct held-out problems" in out
    for step in (0, 1, 2):
        assert f"step {step}: held-out " in out
    assert "step 2/2 (GRPO): reward" in out and "min to go" in out
    assert seen == [8, 8, 8]


def test_steps_much_slower_than_the_runs_first_ones_are_warned_about_once(tmp_path):
    import warnings

    import pytest

    from agentgym.grpo import trainer as trainer_mod

    tr = object.__new__(trainer_mod.GRPOTrainer)  # only the speed watch, no model
    times = [9.0, 1.0, 1.1, 0.9, 1.0, 1.2] + [1.1] * 4 + [5.0] * 5 + [6.0] * 5
    seen = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for t in times:
            rec = {"kind": "train", "time/step_s": t}
            tr._watch_speed(rec)
            seen.append(rec.get("time/slowdown"))
    slow = [w for w in caught if "x this run's first steps" in str(w.message)]
    assert len(slow) == 1 and "model.threads: 1" in str(slow[0].message)
    first = next(i for i, x in enumerate(seen) if x is not None)
    assert first == 12 and seen[first] == pytest.approx(5.0 / 1.0)  # median of the last 5 over the first 5
    # A warm-start (sft) step, or a run whose steps stay near their start, says nothing.
    quiet = object.__new__(trainer_mod.GRPOTrainer)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for t in [1.0] * 30:
            quiet._watch_speed({"kind": "train", "time/step_s": t * 2.5})
            quiet._watch_speed({"kind": "sft", "time/step_s": 100.0})
    assert not caught


def test_time_left_counts_the_steps_the_generation_budget_leaves_not_the_step_bound():
    from agentgym.grpo.trainer import steps_left

    # No budget: the step bound decides.
    assert steps_left(40, 632, 32, 256, None, 32.0) == 592
    # A 9,600-generation budget at 32 generations a step, 8 steps into GRPO (256 spent):
    # 292 steps are left, not the 592 the bound of 632 allows (the bug: 'about 117 min to go'
    # on a run with 40 left).
    assert steps_left(40, 632, 32, 256, 9600, 32.0) == 292
    # Dynamic sampling spends more per step (dropped groups count): fewer steps are left.
    assert steps_left(40, 632, 32, 256, 9600, 70.0) == 134
    # Still in the warm start: its steps spend nothing, and all of GRPO's budget is ahead.
    assert steps_left(10, 632, 32, 0, 9600, 32.0) == 22 + 300
    # The bound still wins when it comes first, and a spent budget leaves nothing.
    assert steps_left(600, 632, 32, 0, 9600, 32.0) == 32
    assert steps_left(300, 632, 32, 9600, 9600, 32.0) == 0


def test_the_warm_start_estimates_only_its_own_steps_and_grpo_its_own():
    from agentgym.grpo.trainer import time_to_go

    # 10 of 32 SFT steps done at 6 s each: 22 steps of warm start left, 2.2 min; not the
    # 300 GRPO steps at the SFT pace (the old line said '33 min to go' for a 2-hour run).
    assert time_to_go(10, 332, 32, 0, None, 6.0, 32.0) == "about 2 min of warm start to go"
    # In GRPO, at 15 s a step: 200 steps left by the bound, 50 min.
    assert time_to_go(132, 332, 32, 3200, None, 15.0, 32.0) == "about 50 min to go"
    # With a 9,600-generation budget spent at 70 a step (dynamic sampling), 91 steps are left.
    assert time_to_go(132, 332, 32, 3200, 9600, 15.0, 70.0) == "about 23 min to go"
    # At the warm start's last step GRPO's clock has just started: no pace to go on yet.
    assert time_to_go(32, 332, 32, 0, None, None, 32.0) == "time left from the first GRPO step on"
