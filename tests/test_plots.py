"""The run plot reads well: no split drawn twice, whole-number steps, long series smoothed."""

from __future__ import annotations

import json

from agentgym.eval.plots import _same_series, plot_training


def _rows(n_steps: int, region_same: bool) -> list[dict]:
    rows = []
    for s in range(1, n_steps + 1):
        rows.append(
            {"step": s, "kind": "train", "success/mean": (s % 7) / 7, "groups/with_signal": 0.5, "kl/ref": 0.01}
        )
    for s in (0, n_steps):
        other = 0.3 if region_same else 0.1
        rows.append(
            {"step": s, "kind": "eval", "eval/success": 0.3, "eval/success[trained region, unseen seeds]": other}
        )
    return rows


def test_a_split_that_holds_every_task_is_not_drawn_twice():
    rows = _rows(3, region_same=True)
    assert _same_series(rows, "eval/success[trained region, unseen seeds]", "eval/success")
    assert not _same_series(_rows(3, region_same=False), "eval/success[trained region, unseen seeds]", "eval/success")


def test_plots_of_a_two_step_and_a_long_run_are_written(tmp_path, monkeypatch):
    import matplotlib.axes

    lines: list[str] = []
    real = matplotlib.axes.Axes.plot

    def plot(self, *args, **kw):  # record what each panel draws
        lines.append(str(kw.get("label")))
        return real(self, *args, **kw)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", plot)
    for n in (2, 120):
        path = tmp_path / f"m{n}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in _rows(n, region_same=True)))
        assert plot_training(path, tmp_path / f"p{n}").stat().st_size > 10_000
    # The long run's per-step series get a running mean; the short one's are drawn as they are.
    assert "running mean of 6 steps" in lines and lines.count("running mean of 6 steps") >= 3
    assert not any("trained region" in x for x in lines)  # the one region equals "all"


def test_teacher_competence_says_which_cells_were_never_drawn(tmp_path, monkeypatch):
    """An empty competence bar is 0% success or a cell the teacher did not draw in that
    window: each bar says which, with the groups it rests on."""
    import matplotlib.figure

    from agentgym.eval.curriculum_plots import plot_teacher

    def group(h, success):
        return {"params": {"high": h}, "success": success}

    steps = [
        {"step": 1, "groups": [group(4, 0.5), group(4, 0.0), group(8, 0.0)]},
        {"step": 2, "groups": [group(4, 1.0)]},
    ]
    (tmp_path / "teacher.jsonl").write_text("".join(json.dumps(r) + "\n" for r in steps))
    figures = []
    real = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(
        matplotlib.figure.Figure, "savefig", lambda fig, *a, **k: (figures.append(fig), real(fig, *a, **k))[1]
    )
    written = plot_teacher(tmp_path)
    assert [p.name for p in written] == ["teacher_sampled.png", "teacher_competence.png"]
    first, last = ([t.get_text() for t in ax.texts] for ax in figures[1].axes)
    assert first == ["25% of 2 groups", "0% of 1 group"]  # high=4, high=8
    assert last == ["100% of 1 group", "not sampled"]
