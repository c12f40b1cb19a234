"""``agentgym compare``: the statistics by hand, resuming and skipping runs, overrides per arm, the report.

No model is trained: a stub stands in for ``agentgym train``. It writes the run's
resolved config and a summary whose held-out number depends on the seed and the arm's
teacher, and logs every call, so a test can see which runs were (re)started.
"""

import json
import math
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from agentgym.cli import app
from agentgym.compare import Arm, CompareError, Plan, check_plan, load_arms_file, parse_arm, parse_seeds, run_comparison
from agentgym.compare.report import difference_to_baseline, report_table, write_report
from agentgym.stats import incomplete_beta, mean_se, paired_difference, t_cdf, t_quantile, welch_difference

# ----- statistics, checked against numbers worked out by hand ---------------------------------


def test_t_distribution_matches_closed_forms():
    # df=1 is the Cauchy distribution: F(t) = 1/2 + atan(t)/pi.
    for t in (-5.0, -1.0, 0.0, 0.3, 2.0, 40.0):
        assert t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-12)
    # df=2: F(t) = 1/2 + t / (2 sqrt(2 + t^2)), so the 97.5% quantile is sqrt(2/(1-0.95^2)/... ) = 4.3027.
    for t in (-3.0, 0.5, 2.12132, 10.0):
        assert t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-12)
    # Solving 0.95 = t / sqrt(2 + t^2) gives t^2 = 2 * 0.9025 / 0.0975.
    assert t_quantile(0.975, 2) == pytest.approx(math.sqrt(2 * 0.9025 / 0.0975), abs=1e-9)
    assert t_quantile(0.975, 1) == pytest.approx(math.tan(math.pi * 0.475), abs=1e-8)  # 12.706
    assert t_quantile(0.975, math.inf) == pytest.approx(1.959964, abs=1e-6)
    assert t_quantile(0.025, 2) == pytest.approx(-t_quantile(0.975, 2))
    # Non-integer degrees of freedom (Welch's) lie between their integer neighbours.
    assert t_quantile(0.975, 4) < t_quantile(0.975, 3.5) < t_quantile(0.975, 3)
    assert incomplete_beta(1.0, 1.0, 0.3) == pytest.approx(0.3)  # Beta(1, 1) is uniform
    with pytest.raises(ValueError):
        t_quantile(1.0, 3)


def test_t_distribution_agrees_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 2.7, 3.92, 7, 30, 1000):
        for t in (-4.0, -0.5, 0.0, 1.3, 3.0):
            assert t_cdf(t, df) == pytest.approx(stats.t.cdf(t, df), abs=1e-12)
        for q in (0.6, 0.9, 0.975, 0.995):
            assert t_quantile(q, df) == pytest.approx(stats.t.ppf(q, df), rel=1e-9)


def test_mean_and_standard_error():
    assert mean_se([0.2, 0.4, 0.6]) == pytest.approx((0.4, 0.2 / math.sqrt(3)))  # s = 0.2
    assert mean_se([0.5]) == (0.5, None)
    with pytest.raises(ValueError):
        mean_se([])


def test_welch_interval_and_p_value_by_hand():
    # arm [0.5, 0.7]: mean 0.6, s^2 = 0.02; baseline [0.2, 0.4]: mean 0.3, s^2 = 0.02.
    # se^2 = 0.02/2 + 0.02/2 = 0.02; df = 0.02^2 / (0.01^2/1 + 0.01^2/1) = 2; t = 0.3/sqrt(0.02) = 2.1213.
    # p = 2 (1 - F_2(t)) with F_2(t) = 1/2 + t / (2 sqrt(2 + t^2)) = 1/2 + 2.1213 / (2 sqrt 6.5) = 0.91603.
    d = welch_difference([0.5, 0.7], [0.2, 0.4])
    assert d.test == "welch" and d.estimate == pytest.approx(0.3)
    assert d.se == pytest.approx(math.sqrt(0.02)) and d.df == pytest.approx(2.0)
    assert d.p == pytest.approx(2 * (0.5 - 2.121320 / (2 * math.sqrt(6.5))), abs=1e-6)  # 0.16795
    half = 4.302653 * math.sqrt(0.02)  # t_{0.975, 2} * se = 0.60849
    assert (d.low, d.high) == (pytest.approx(0.3 - half, abs=1e-6), pytest.approx(0.3 + half, abs=1e-6))
    # Unequal variances and a fractional df: s^2 = 0.04 and 0.03, n = 3 each ->
    # se^2 = 0.07/3, df = (0.07/3)^2 / ((0.04/3)^2/2 + (0.01)^2/2) = 3.92.
    d = welch_difference([0.2, 0.4, 0.6], [0.1, 0.1, 0.4])
    assert d.df == pytest.approx(3.92) and d.se == pytest.approx(math.sqrt(0.07 / 3))
    assert d.p == pytest.approx(0.26190, abs=1e-4)  # scipy.stats.ttest_ind(equal_var=False)
    assert d.low == pytest.approx(-0.22754, abs=1e-4) and d.high == pytest.approx(0.62754, abs=1e-4)


def test_paired_interval_and_p_value_by_hand():
    # Seeds 0, 1, 2 lift both arms alike (baseline 0.3, 0.5, 0.7); differences [0.2, 0.3, 0.1]:
    # mean 0.2, s = 0.1, se = 0.1/sqrt 3, df = 2, t = 2 sqrt 3 = 3.4641;
    # F_2(t) = 1/2 + 3.4641 / (2 sqrt 14) = 0.96291, p = 0.07418; interval 0.2 +- 4.30265 * 0.057735.
    d = paired_difference([0.5, 0.8, 0.8], [0.3, 0.5, 0.7])
    assert d.test == "paired" and d.df == 2 and d.estimate == pytest.approx(0.2)
    assert d.p == pytest.approx(2 * (0.5 - 2 * math.sqrt(3) / (2 * math.sqrt(14))), abs=1e-9)
    assert d.low == pytest.approx(0.2 - 4.302653 * 0.1 / math.sqrt(3), abs=1e-6)
    assert d.high == pytest.approx(0.2 + 4.302653 * 0.1 / math.sqrt(3), abs=1e-6)
    # The same numbers unpaired: the seed-to-seed spread both arms share widens Welch's interval.
    w = welch_difference([0.5, 0.8, 0.8], [0.3, 0.5, 0.7])
    assert w.p > d.p and w.high - w.low > d.high - d.low


def test_differences_without_spread_or_seeds_say_why():
    d = paired_difference([0.5, 0.6], [0.4, 0.5])  # the same difference at every seed
    assert d.p is None and d.low is None and "no spread" in d.note
    d = welch_difference([0.5], [0.4, 0.5])
    assert d.p is None and d.estimate == pytest.approx(0.05) and "two seeds" in d.note
    with pytest.raises(ValueError):
        paired_difference([0.1, 0.2], [0.1])


def test_the_warm_start_twin_of_a_metric():
    from agentgym.compare.report import start_metric

    assert start_metric("heldout_success_after") == "heldout_success_after_warmup"
    assert start_metric("heldout_after.greedy.value") == "heldout_after_warmup.greedy.value"
    assert start_metric("success_mean") is None and start_metric("x.after") is None


def test_paired_over_the_seeds_both_arms_ran_else_welch():
    used, welch, paired = difference_to_baseline({0: 0.5, 1: 0.7, 2: 0.6}, {0: 0.3, 1: 0.4, 2: 0.5})
    assert used is paired and used.test == "paired" and welch.test == "welch" and not paired.note
    # Seeds {0, 2} against {0, 1, 2}: paired over 0 and 2 (seed 1 of the baseline left out).
    used, welch, paired = difference_to_baseline({0: 0.5, 2: 0.9}, {0: 0.3, 1: 0.4, 2: 0.5})
    assert used is paired and paired.n_arm == 2
    assert paired.estimate == pytest.approx(paired_difference([0.5, 0.9], [0.3, 0.5]).estimate)
    assert "paired over the 2 seeds both arms ran (0, 2)" in paired.note
    assert welch.estimate == pytest.approx(0.7 - 0.4)  # Welch uses every seed of each arm
    # One seed in common: nothing to pair.
    used, welch, paired = difference_to_baseline({0: 0.5, 3: 0.7}, {0: 0.3, 1: 0.4, 2: 0.5})
    assert paired is None and used is welch


# ----- the comparison, with a stub for `agentgym train` ---------------------------------------

STUB = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    from agentgym.config import dump_config, load_config

    args = sys.argv[1:]
    with open(os.environ["STUB_CALLS"], "a") as f:
        f.write(json.dumps(args) + "\\n")
    if "--from-warm-start" in args:
        at = args.index("--from-warm-start")
        del args[at : at + 2]
    if args[0] == "--resume":
        run = Path(args[1])
        cfg = load_config(run / "config.yaml")
    else:
        cfg = load_config(args[0], args[1:])
        run = Path(cfg.run_dir)
        run.mkdir(parents=True, exist_ok=True)
        (run / "config.yaml").write_text(dump_config(cfg))
        if os.environ.get("STUB_STOP") == f"{run.name}":  # stopped partway: no summary yet
            sys.exit(int(os.environ.get("STUB_STOP_CODE", "1")))
    gain = {"random": 0.0, "bandit": 0.1}[cfg.teacher.name]
    after = 0.3 + 0.05 * cfg.seed + gain + (0.02 if cfg.grpo.lr > 1e-5 else 0.0)
    summary = {"heldout_success_before": 0.25, "heldout_success_after": after,
               "heldout_success_after_se": 0.04, "heldout_success_after_warmup": 0.28 + 0.01 * cfg.seed,
               "steps": cfg.train.steps}
    (run / "summary.json").write_text(json.dumps(summary))
    rows = [{"step": 0, "kind": "eval", "eval/mean_at_k": 0.28 + 0.01 * cfg.seed, "eval/mean_at_k_se": 0.05},
            {"step": 1, "kind": "train", "rollout/spent": 32, "time/step_s": 6.0, "adv/abs_mean": 0.5},
            {"step": 2, "kind": "eval", "eval/mean_at_k": after, "eval/mean_at_k_se": 0.04}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in rows))
""")


@pytest.fixture
def stub(tmp_path, monkeypatch):
    """A fake `agentgym train` command, the config it trains, and where its calls are logged."""
    script = tmp_path / "fake_train.py"
    script.write_text(STUB)
    calls = tmp_path / "calls.jsonl"
    monkeypatch.setenv("STUB_CALLS", str(calls))
    config = tmp_path / "exp.yaml"
    config.write_text("model: {name: tiny}\ntrain: {steps: 2}\n")

    def plan(**kw):
        defaults = dict(
            config=str(config),
            arms=[Arm("random", ["teacher.name=random"]), Arm("bandit", ["teacher.name=bandit"])],
            seeds=[0, 1, 2],
            runs=tmp_path / "runs",
            train_command=[sys.executable, str(script)],
        )
        return Plan(**{**defaults, **kw})

    def logged():
        return [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []

    return plan, logged


def test_each_arm_and_seed_is_one_run_with_its_overrides(stub, tmp_path):
    make_plan, calls = stub
    plan = make_plan(overrides=["grpo.lr=2e-5"])
    report = run_comparison(plan, log=lambda s: None)
    assert len(calls()) == 6
    # Seed-major: every arm at seed 0 before any arm at seed 1.
    run_dirs = [next(a for a in c if a.startswith("run_dir=")) for c in calls()]
    assert [d.rsplit("/", 1)[-1] for d in run_dirs] == [
        "random-s0",
        "bandit-s0",
        "random-s1",
        "bandit-s1",
        "random-s2",
        "bandit-s2",
    ]
    random, bandit = report["arms"]
    assert random["values"] == pytest.approx([0.32, 0.37, 0.42])  # grpo.lr=2e-5 for every arm: +0.02
    assert bandit["values"] == pytest.approx([0.42, 0.47, 0.52])
    assert random["mean"] == pytest.approx(0.37) and random["se"] == pytest.approx(0.05 / math.sqrt(3))
    assert random["before_mean"] == pytest.approx(0.25) and random["within_se"] == pytest.approx(0.04)
    assert random["difference"] is None and report["baseline"] == "random"
    d = bandit["difference"]
    assert d["test"] == "paired" and d["estimate"] == pytest.approx(0.1) and d["p"] is None  # constant gain
    assert bandit["welch"]["p"] == pytest.approx(welch_difference(bandit["values"], random["values"]).p)
    costs = dict(bandit["costs"])
    assert isinstance(costs.pop("wall_minutes"), float)  # the launches' own wall clock, from provenance.json
    assert costs == {"generations": 32, "train_minutes": 0.1, "grpo_steps_with_signal": 3, "grpo_steps": 3}
    # Each run's resolved config is the run folder's config.yaml, with the arm's override in it.
    by_dir = {r["run_dir"].rsplit("/", 1)[-1]: r for r in report["runs"]}
    assert by_dir["bandit-s1"]["config"]["teacher"]["name"] == "bandit"
    assert by_dir["bandit-s1"]["config"]["seed"] == 1 and by_dir["bandit-s1"]["config"]["grpo"]["lr"] == 2e-5
    assert by_dir["random-s0"]["config_source"].endswith("config.yaml")


def test_a_run_starts_from_a_kept_warm_start_with_the_same_settings(stub, tmp_path):
    """Only a run whose settings up to the end of the warm start (seed included) match a
    kept warm start in the comparison's folder starts from it."""
    from agentgym.config import dump_config, load_config
    from agentgym.grpo.checkpoint import COMPLETE

    make_plan, calls = stub
    config = tmp_path / "warm.yaml"
    config.write_text("model: {name: tiny}\ntrain: {steps: 2}\nwarmup: {source: oracle, steps: 2}\n")
    donor = tmp_path / "runs" / "donor-s0"
    (donor / "warm_start" / "step_000002").mkdir(parents=True)
    (donor / "warm_start" / "step_000002" / COMPLETE).write_text("2\n")
    (donor / "config.yaml").write_text(dump_config(load_config(str(config), ["grpo.lr=5e-6", f"run_dir={donor}"])))
    arms = [Arm("random", ["grpo.lr=1e-5"]), Arm("bandit", ["teacher.name=bandit", "warmup.lr=1e-3"])]
    run_comparison(make_plan(config=str(config), arms=arms, seeds=[0, 1]), log=lambda s: None)
    started = {
        next(a for a in c if a.startswith("run_dir=")).rsplit("/", 1)[-1]: c[c.index("--from-warm-start") + 1]
        if "--from-warm-start" in c
        else None
        for c in calls()
    }
    assert started == {"random-s0": str(donor), "bandit-s0": None, "random-s1": None, "bandit-s1": None}
    # Another comparison's folder beside this one is searched too.
    (tmp_path / "calls.jsonl").unlink()
    run_comparison(
        make_plan(config=str(config), arms=[Arm("other", ["grpo.lr=3e-5"])], seeds=[0], runs=tmp_path / "runs2"),
        log=lambda s: None,
    )
    assert calls()[0][calls()[0].index("--from-warm-start") + 1] == str(donor)
    # Off on request.
    (tmp_path / "calls.jsonl").unlink()
    run_comparison(
        make_plan(config=str(config), arms=[Arm("again", ["grpo.lr=2e-5"])], seeds=[0], share_warm_start=False),
        log=lambda s: None,
    )
    assert "--from-warm-start" not in calls()[0]


def test_finished_runs_are_read_not_rerun_and_stopped_ones_resumed(stub, monkeypatch):
    make_plan, calls = stub
    plan = make_plan(seeds=[0, 1])
    monkeypatch.setenv("STUB_STOP", "bandit-s1")
    with pytest.raises(CompareError, match="bandit seed 1.*training failed"):
        run_comparison(plan, log=lambda s: None)
    assert len(calls()) == 4
    monkeypatch.delenv("STUB_STOP")
    report = run_comparison(plan, log=lambda s: None)
    # Only the stopped run ran again, and as a resume of its folder.
    assert len(calls()) == 5 and calls()[-1] == ["--resume", str(plan.run_dir(plan.arms[1], 1))]
    launches = {r["run_dir"].rsplit("/", 1)[-1]: r["launches"] for r in report["runs"]}
    assert [launch["resumed"] for launch in launches["bandit-s1"]] == [False, True]
    assert [launch["returncode"] for launch in launches["bandit-s1"]] == [1, 0]
    assert len(launches["random-s0"]) == 1
    # A third time: everything is finished, nothing runs.
    run_comparison(plan, log=lambda s: None)
    assert len(calls()) == 5


def test_summaries_written_by_hand_are_read_without_training(stub):
    make_plan, calls = stub
    plan = make_plan(seeds=[0, 1], arms=[Arm("a", []), Arm("b", ["grpo.lr=3e-5"])], metric="success_mean")
    for arm, vals in ((plan.arms[0], [0.5, 0.7]), (plan.arms[1], [0.2, 0.4])):
        for seed, v in zip(plan.seeds, vals):
            run = plan.run_dir(arm, seed)
            run.mkdir(parents=True)
            (run / "summary.json").write_text(json.dumps({"success_mean": v}))
    report = run_comparison(plan, log=lambda s: None)
    assert calls() == []
    a, b = report["arms"]
    assert report["before_metric"] is None and a["before_mean"] is None and a["within_se"] is None
    hand = paired_difference([0.2, 0.4], [0.5, 0.7])  # b - a at seeds 0 and 1: -0.3 both: no spread
    assert b["difference"]["estimate"] == pytest.approx(hand.estimate) and b["difference"]["p"] is None
    assert b["welch"]["p"] == pytest.approx(0.1679497, abs=1e-6)  # Welch by hand above, sign flipped
    assert report["runs"][0]["config_source"].startswith("plan")
    assert report["runs"][1]["config"]["grpo"]["lr"] == 3e-5


def test_a_nested_metric_brings_its_before_twin_and_its_standard_error(stub):
    make_plan, calls = stub
    plan = make_plan(seeds=[0, 1], arms=[Arm("a")], metric="heldout_after.greedy.value")
    for seed, v in zip(plan.seeds, (0.5, 0.6)):
        run = plan.run_dir(plan.arms[0], seed)
        run.mkdir(parents=True)
        summary = {
            "heldout_after": {"greedy": {"value": v, "se": 0.03 * (seed + 1)}},
            "heldout_before": {"greedy": {"value": 0.1, "se": float("nan")}},
        }
        (run / "summary.json").write_text(json.dumps(summary))
    (arm,) = run_comparison(plan, log=lambda s: None)["arms"]
    assert arm["mean"] == pytest.approx(0.55) and arm["before_values"] == [0.1, 0.1]
    assert arm["within_se"] == pytest.approx(math.sqrt((0.03**2 + 0.06**2) / 2))  # root mean square
    assert calls() == []


def test_a_first_evaluation_at_the_warm_starts_end_is_named_so_not_before_training(stub, tmp_path):
    make_plan, _ = stub
    # Runs that do not evaluate the untrained model (train.eval_start: false) have their
    # first evaluation at the warm start's end: the table and plot must not call it
    # "before training" (experiment 2's plot did, for a 15.7% that was the warm start's).
    labels = {}
    for first, name in ((32, "warm"), (0, "untrained")):
        plan = make_plan(seeds=[0, 1], arms=[Arm("a")], metric="heldout_after.mean_at_k.value", runs=tmp_path / name)
        for seed in plan.seeds:
            run = plan.run_dir(plan.arms[0], seed)
            run.mkdir(parents=True)
            summary = {
                "heldout_after": {"step": 332, "mean_at_k": {"value": 0.2, "se": 0.02}},
                "heldout_before": {"step": first, "mean_at_k": {"value": 0.15, "se": 0.02}},
                "heldout_after_warmup": {"step": 32, "mean_at_k": {"value": 0.15, "se": 0.02}},
            }
            (run / "summary.json").write_text(json.dumps(summary))
        report = run_comparison(plan, log=lambda s: None)
        labels[name] = report["arms"][0]["before_label"]
        table = report_table(report)
        header = [c.header for c in table.columns]
        assert ("warm start" in header) == (name == "warm") and ("before" in header) == (name == "untrained")
    assert labels == {"warm": "after the warm start", "untrained": "before training"}


def test_no_train_reads_what_is_finished_and_falls_back_to_welch(stub):
    make_plan, calls = stub
    run_comparison(make_plan(seeds=[0, 1]), log=lambda s: None)
    report = run_comparison(make_plan(seeds=[0, 1, 2]), train=False, log=lambda s: None)
    assert len(calls()) == 4 and len(report["missing"]) == 2
    assert report["arms"][1]["difference"]["test"] == "paired"  # both arms still have seeds 0 and 1
    (make_plan().run_dir(Arm("bandit"), 1) / "summary.json").unlink()
    (make_plan().run_dir(Arm("bandit"), 1) / "config.yaml").unlink()
    report = run_comparison(make_plan(seeds=[0, 1, 2]), train=False, log=lambda s: None)
    assert report["arms"][1]["seeds"] == [0] and report["arms"][1]["difference"]["test"] == "welch"  # 1 shared


def test_a_run_folder_made_with_another_config_is_an_error(stub):
    make_plan, _ = stub
    run_comparison(make_plan(seeds=[0]), log=lambda s: None)
    plan = make_plan(seeds=[0], overrides=["train.steps=3"])
    with pytest.raises(CompareError, match="train.steps: run has 2, arm asks for 3"):
        run_comparison(plan, log=lambda s: None)


def test_bad_input_is_a_clear_error(stub):
    make_plan, calls = stub
    with pytest.raises(CompareError, match="arm 'bandit'.*unknown config key 'teacher.nmae'"):
        check_plan(make_plan(arms=[Arm("random", []), Arm("bandit", ["teacher.nmae=bandit"])]))
    with pytest.raises(CompareError, match="no seeds"):
        check_plan(make_plan(seeds=[]))
    with pytest.raises(CompareError, match="no seeds"):
        parse_seeds(" , ")
    with pytest.raises(CompareError, match="repeats"):
        parse_seeds("0,1,1")
    with pytest.raises(CompareError, match="integers"):
        parse_seeds("0,one")
    with pytest.raises(CompareError, match="sets seed and run_dir itself"):
        check_plan(make_plan(arms=[Arm("a", ["seed=3"])]))
    with pytest.raises(CompareError, match="arm names repeat"):
        check_plan(make_plan(arms=[Arm("a"), Arm("a")]))
    with pytest.raises(CompareError, match="arm name 'a/b'"):
        check_plan(make_plan(arms=[Arm("a/b")]))
    with pytest.raises(CompareError, match="baseline 'c' is not an arm"):
        check_plan(make_plan(baseline="c"))
    with pytest.raises(CompareError, match="no number under 'nope'"):
        run_comparison(make_plan(seeds=[0], metric="nope"), log=lambda s: None)
    assert len(calls()) == 1  # bad plans stop before training; a bad metric after the first run


def test_arms_from_the_command_line_and_from_a_file(tmp_path):
    assert parse_arm("bandit teacher.name=bandit 'teacher.options={arm_dims: [digits]}'") == Arm(
        "bandit", ["teacher.name=bandit", "teacher.options={arm_dims: [digits]}"]
    )
    path = tmp_path / "arms.yaml"
    path.write_text("random: [teacher.name=random]\nbandit:\n  teacher.name: bandit\n  teacher.options: {a: [1, 2]}\n")
    random, bandit = load_arms_file(path)
    assert random == Arm("random", ["teacher.name=random"])
    assert bandit == Arm("bandit", ['teacher.name="bandit"', 'teacher.options={"a": [1, 2]}'])
    path.write_text("- not a mapping\n")
    with pytest.raises(CompareError, match="must map arm names"):
        load_arms_file(path)


def test_report_records_config_commit_and_machine_and_writes_json_and_plot(stub, tmp_path):
    make_plan, _ = stub
    report = run_comparison(make_plan(seeds=[0, 1], baseline="bandit"), log=lambda s: None, command="agentgym compare")
    json_path, png_path = write_report(report, tmp_path / "out" / "exp.json")
    data = json.loads(json_path.read_text())
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert data["baseline"] == "bandit" and data["arms"][0]["difference"]["estimate"] == pytest.approx(-0.1)
    assert set(data["machine"]) >= {"cpu", "cores", "python", "torch"} and data["machine"]["cores"] >= 1
    assert {"commit", "dirty"} <= set(data["code"])
    for run in data["runs"]:
        assert run["config"]["teacher"]["name"] == run["arm"]
        (launch,) = run["launches"]
        assert {"commit", "dirty"} <= set(launch["code"]) and launch["machine"]["cpu"]
        assert launch["command"].startswith(sys.executable)
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(report_table(data))
    text = console.export_text()
    assert "bandit (baseline)" in text and "paired" in text and "-10.0 [" not in text  # no spread: no interval


def test_compare_command_end_to_end(stub, tmp_path):
    make_plan, calls = stub
    plan = make_plan()
    out = tmp_path / "results" / "exp.json"
    args = ["compare", plan.config, "train.steps=2", "--arm", "random teacher.name=random", "--arm"]
    args += ["bandit teacher.name=bandit grpo.lr=3e-5", "--seeds", "0,1", "--runs", str(plan.runs), "--out", str(out)]
    args += ["--train-command", f"{sys.executable} {plan.train_command[1]}"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "Δ vs random" in res.output and "paired t over per-seed differences" in res.output
    data = json.loads(out.read_text())
    assert [a["name"] for a in data["arms"]] == ["random", "bandit"] and out.with_suffix(".png").exists()
    assert data["arms"][1]["difference"]["estimate"] == pytest.approx(0.12)
    res = CliRunner().invoke(app, [*args[:6], "bandit teacher.nmae=bandit", *args[7:]])
    assert res.exit_code == 2 and "unknown config key" in res.output
    res = CliRunner().invoke(app, [*args[:8], "", *args[9:]])
    assert res.exit_code == 2 and "no seeds" in res.output
    assert len(calls()) == 4
    # --from: the report just written supplies both seeds of a fresh runs folder, nothing trains.
    merged = tmp_path / "merged.json"
    fresh = [*args[:10], str(tmp_path / "elsewhere"), "--out", str(merged), *args[13:], "--from", str(out)]
    res = CliRunner().invoke(app, fresh)
    assert res.exit_code == 0, res.output
    assert len(calls()) == 4 and json.loads(merged.read_text())["arms"][1]["seeds"] == [0, 1]
    res = CliRunner().invoke(app, [*args, "--from", str(tmp_path / "none.json")])
    assert res.exit_code == 2 and "cannot read it as a JSON report" in res.output


def test_default_report_path_is_committed():
    import subprocess
    from pathlib import Path

    from agentgym.compare import default_out

    out = default_out(Plan(config="configs/quickstart.yaml", arms=[Arm("a")], seeds=[0]))
    assert out == Path("results/compare/quickstart.json")
    root = Path(__file__).resolve().parent.parent
    res = subprocess.run(["git", "-C", str(root), "check-ignore", "-q", str(out)], capture_output=True)
    if res.returncode == 128:
        pytest.skip("not a git checkout")
    assert res.returncode == 1, f"{out} is ignored by git: results behind the README must be committed"
    res = subprocess.run(["git", "-C", str(root), "check-ignore", "-q", "runs/compare/x/a-s0/summary.json"])
    assert res.returncode == 0


def test_an_rft_step_with_a_success_counts_as_a_step_with_signal(tmp_path):
    """RFT steps log no advantages; a step that kept a success trained on something."""
    from agentgym.compare.runs import _costs

    rows = [
        {"step": 1, "kind": "sft", "time/step_s": 6.0},
        {"step": 2, "kind": "train", "train/rft": 1.0, "rft/kept_episodes": 5, "rollout/spent": 32, "time/step_s": 6.0},
        {"step": 3, "kind": "train", "train/rft": 1.0, "rft/kept_episodes": 0, "rollout/spent": 32, "time/step_s": 6.0},
        {"step": 4, "kind": "train", "adv/abs_mean": 0.3, "rollout/spent": 32, "time/step_s": 6.0},
        {"step": 5, "kind": "train", "adv/abs_mean": 0.0, "rollout/spent": 32, "time/step_s": 6.0},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    costs = _costs(tmp_path)
    assert (costs["grpo_steps"], costs["grpo_steps_with_signal"], costs["generations"]) == (4, 2, 128)


def test_runs_of_an_earlier_report_count_as_seeds_when_their_folders_are_gone(stub, tmp_path):
    """Seeds run on other machines: a report keeps what its runs rest on (summary, config,
    costs and evaluations), so a later comparison takes them with --from."""
    import shutil

    make_plan, calls = stub
    first = run_comparison(make_plan(seeds=[0]), log=lambda s: None)
    assert [p["step"] for p in first["runs"][0]["curve"]] == [0, 2]  # the run's evaluations are kept
    saved = tmp_path / "first.json"
    saved.write_text(json.dumps(first))
    shutil.rmtree(tmp_path / "runs")  # the machine that ran seed 0 is gone
    said = []
    report = run_comparison(make_plan(seeds=[0, 1], earlier=[saved]), log=said.append)
    assert len(calls()) == 2 + 2  # seed 1 of each arm trained; seed 0 came from the report
    assert "[random seed 0] from" in said[0] and str(saved) in said[0]
    random, bandit = report["arms"]
    assert random["seeds"] == [0, 1] and random["values"] == pytest.approx([0.3, 0.35])
    assert bandit["difference"]["test"] == "paired" and bandit["difference"]["estimate"] == pytest.approx(0.1)
    at_end = {r["step"]: r["mean_at_k"] for r in report["curves"]["bandit"]}[2]
    assert at_end["n"] == 2 and at_end["mean"] == pytest.approx(0.425) and at_end["band"] == "seeds"
    assert report["runs"][0]["source"] == str(saved) and report["runs"][2]["source"] == "folder"
    # Each arm against its own warm start, paired by seed: after minus after_warmup.
    gain = bandit["gain"]
    assert gain["test"] == "paired" and gain["estimate"] == pytest.approx((0.4 - 0.28 + 0.45 - 0.29) / 2)

    # A report written before runs kept their evaluations: a single-seed arm's curve is that run's.
    old = json.loads(saved.read_text())
    for run in old["runs"]:
        del run["curve"]
    older = tmp_path / "older.json"
    older.write_text(json.dumps(old))
    shutil.rmtree(tmp_path / "runs")
    again = run_comparison(make_plan(seeds=[0], earlier=[older]), train=False, log=lambda s: None)
    assert again["runs"][0]["curve"] == first["runs"][0]["curve"]
    assert len(calls()) == 4  # nothing trained

    # A report written before a setting existed: its runs ran with the default, and merge
    # with an arm that keeps it, not with one that changes it.
    for run in old["runs"]:
        del run["config"]["train"]["eval_start"], run["config"]["train"]["eval_greedy"]
    older.write_text(json.dumps(old))
    merged = run_comparison(make_plan(seeds=[0], earlier=[older]), train=False, log=lambda s: None)
    assert merged["runs"][0]["source"] == str(older)
    plan = make_plan(seeds=[0], overrides=["train.eval_greedy=false"], earlier=[older])
    with pytest.raises(CompareError, match="another config.*eval_greedy"):
        run_comparison(plan, train=False, log=lambda s: None)

    # A report's run made with another config is refused, not mixed in.
    with pytest.raises(CompareError, match="another config.*grpo.lr"):
        run_comparison(make_plan(seeds=[0], overrides=["grpo.lr=2e-5"], earlier=[saved]), log=lambda s: None)
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "something else"}')
    with pytest.raises(CompareError, match="not a comparison report"):
        run_comparison(make_plan(seeds=[0], earlier=[bad]), log=lambda s: None)
