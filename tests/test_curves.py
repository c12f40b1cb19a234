"""Learning curves of a comparison: evaluations aligned on GRPO steps, mean and s.e. over seeds."""

from __future__ import annotations

import json

import pytest

from agentgym.compare.curves import arm_curves, curves_table, plot_curves, run_curve


def _run(path, evals, warm=4):
    path.mkdir(parents=True)
    rows = [{"step": 1, "kind": "sft"}, {"step": 5, "kind": "train", "rollout/spent": 32}]
    for step, value, se in evals:
        rows.append({"step": step, "kind": "eval", "eval/tasks": 50, "eval/mean_at_k": value, "eval/mean_at_k_se": se})
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 9, "kind": "ev')
    return {"run_dir": str(path), "config": {"warmup": {"steps": warm}}}


def test_curves_align_on_grpo_steps_and_average_over_seeds(tmp_path):
    runs = [
        {"arm": "a", "seed": 0, **_run(tmp_path / "a0", [(0, 0.1, 0.01), (4, 0.5, 0.02), (14, 0.6, 0.02)])},
        {"arm": "a", "seed": 1, **_run(tmp_path / "a1", [(0, 0.1, 0.01), (4, 0.4, 0.02), (14, 0.8, 0.03)])},
        {"arm": "b", "seed": 0, **_run(tmp_path / "b0", [(0, 0.1, 0.01), (4, 0.5, 0.02), (14, 0.55, 0.04)])},
    ]
    # A torn last line (a crash mid-write) is skipped; steps count from the warm start's end.
    assert [p["step"] for p in run_curve(tmp_path / "a0", 4)] == [-4, 0, 10]
    curves = arm_curves(runs)
    a = {r["step"]: r["mean_at_k"] for r in curves["a"]}
    assert a[10]["mean"] == pytest.approx(0.7) and a[10]["se"] == pytest.approx(0.1) and a[10]["band"] == "seeds"
    assert a[-4]["se"] == 0.0 and a[0]["n"] == 2
    gens = {r["step"]: r["generations"] for r in curves["a"]}
    assert gens == {-4: 0, 0: 0, 10: 32}  # what the steps up to each eval spent
    assert plot_curves(curves, tmp_path / "g.png", x="generations").exists()
    b = {r["step"]: r["mean_at_k"] for r in curves["b"]}
    # One seed: the band is the run's own standard error over its tasks, and says so.
    assert b[10] == {"mean": 0.55, "se": 0.04, "n": 1, "band": "tasks"}
    png = plot_curves(curves, tmp_path / "c.png", title="t")
    assert png.stat().st_size > 5000
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(curves_table(curves, steps=[0, 10]))
    text = console.export_text()
    assert "70.0±10.0" in text and "55.0±4.0" in text


@pytest.mark.parametrize("x", ["step", "generations"])
def test_each_band_lies_under_its_line_on_a_numeric_axis(tmp_path, monkeypatch, x):
    """The s.e. band is drawn over the same x values as its line (it once got the axis
    name, which turned the x axis into one category called 'step' with no band)."""
    import matplotlib.figure

    runs = [{"arm": "a", "seed": 0, **_run(tmp_path / "a0", [(0, 0.1, 0.01), (4, 0.5, 0.02), (14, 0.6, 0.02)])}]
    figures = []
    real = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(
        matplotlib.figure.Figure, "savefig", lambda fig, *a, **k: (figures.append(fig), real(fig, *a, **k))[1]
    )
    plot_curves(arm_curves(runs), tmp_path / "c.png", x=x)
    ax = figures[0].axes[0]
    line = ax.get_lines()[0]
    xs = [float(v) for v in line.get_xdata()]
    assert xs == ([-4.0, 0.0, 10.0] if x == "step" else [0.0, 0.0, 32.0])
    band = ax.collections[0].get_paths()[0].vertices[:, 0]
    assert (band.min(), band.max()) == (min(xs), max(xs))
    assert ax.xaxis.get_units() is None  # numbers, not categories


def test_runs_that_end_by_their_generation_budget_meet_at_its_end(tmp_path):
    """Dynamic sampling spends more per step on one seed than another, so a 9,600-generation
    budget ends seed 0 at step 138 and seed 1 at 136: their last evaluations are one point
    over two seeds (experiment 2's curve once showed two one-seed points, 4 points apart)."""

    def curve(last_step, gens, last_value):
        return [
            {"step": 0, "generations": 0, "tasks": 216, "mean_at_k": 0.15, "mean_at_k_se": 0.02},
            {"step": 100, "generations": 7000, "tasks": 216, "mean_at_k": 0.19, "mean_at_k_se": 0.02},
            {"step": last_step, "generations": gens, "tasks": 216, "mean_at_k": last_value, "mean_at_k_se": 0.02},
        ]

    budget = {"train": {"max_generations": 9600}}
    runs = [
        {"arm": "ds", "seed": 0, "config": budget, "curve": curve(138, 9680, 0.17)},
        {"arm": "ds", "seed": 1, "config": budget, "curve": curve(136, 9656, 0.22)},
        # Unfinished (its budget not yet spent): its last evaluation is an ordinary step.
        {"arm": "part", "seed": 0, "config": budget, "curve": curve(120, 8000, 0.2)},
        # No budget: steps as always.
        {"arm": "fixed", "seed": 0, "config": {}, "curve": curve(300, 9600, 0.2)},
    ]
    curves = arm_curves(runs)
    end = curves["ds"][-1]
    assert [r["step"] for r in curves["ds"]] == [0, 100, 137]
    assert end["end_of_budget"] and end["steps"] == [138, 136] and end["seeds"] == [0, 1]
    assert end["mean_at_k"]["mean"] == pytest.approx(0.195) and end["mean_at_k"]["band"] == "seeds"
    assert end["generations"] == pytest.approx(9668)
    assert not any(r.get("end_of_budget") for r in curves["part"] + curves["fixed"])
    assert [r["step"] for r in curves["part"]] == [0, 100, 120]
    from rich.console import Console

    console = Console(record=True, width=250)
    console.print(curves_table(curves))
    text = console.export_text()
    assert "end of the generation budget" in text and "19.5±2.5 / - (138, 136)" in text
