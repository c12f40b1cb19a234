"""Plots of what a teacher did during a run, read from ``teacher.jsonl`` and ``metrics.jsonl``.

- ``teacher_sampled.png``: how often each cell of one or two chosen dims was sampled,
  against training steps (a heatmap: rows are cells, columns are step windows).
- ``teacher_competence.png``: success over the same cells, early in training vs late.
- ``teacher_arms.png``: each arm's learning-progress signal and sampling probability over
  steps, when the teacher reports them (bandits do, as ``teacher/arm[...]/...``).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any


def _read(path: Path) -> list[dict[str, Any]]:
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def _cell(value: Any, values: list[Any]) -> str:
    if isinstance(value, float) and not all(isinstance(v, bool) for v in values):
        lo, hi = min(values), max(values)
        if hi == lo:
            return f"{lo:g}"
        k = min(int((value - lo) / (hi - lo) * 5), 4)  # five equal bins
        a = lo + (hi - lo) * k / 5
        return f"[{a:.3g}, {a + (hi - lo) / 5:.3g})"
    return str(value)


def choose_dims(groups: list[dict[str, Any]], dims: list[str] | None = None) -> list[str]:
    """The dims to plot: the given ones, else the first two that took several values."""
    if dims:
        return list(dims)[:2]
    seen: dict[str, set] = defaultdict(set)
    for g in groups:
        for k, v in g["params"].items():
            seen[k].add(repr(v))
    varying = [k for k, vals in seen.items() if len(vals) > 1]
    return varying[:2]


def plot_teacher(run_dir: str | Path, dims: list[str] | None = None, columns: int = 20) -> list[Path]:
    """Write the curriculum plots of a run folder; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    run_dir = Path(run_dir)
    steps = _read(run_dir / "teacher.jsonl")
    out_dir = run_dir / "plots"
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    groups = [dict(g, step=r["step"]) for r in steps for g in r.get("groups", [])]
    chosen = choose_dims(groups, dims)
    if groups and chosen:
        values = {d: [g["params"][d] for g in groups] for d in chosen}

        def label(g: dict[str, Any]) -> str:
            return ", ".join(f"{d}={_cell(g['params'][d], values[d])}" for d in chosen)

        labels = sorted({label(g) for g in groups}, key=lambda s: [_natural(x) for x in s.split(", ")])
        row = {lab: i for i, lab in enumerate(labels)}
        last = max(g["step"] for g in groups)
        width = max(1, -(-last // columns))  # steps per column
        ncol = -(-last // width)
        counts = np.zeros((len(labels), ncol))
        for g in groups:
            counts[row[label(g)], (g["step"] - 1) // width] += 1
        share = counts / np.maximum(counts.sum(0, keepdims=True), 1)
        # Wide enough for the title whatever the run's length.
        fig, ax = plt.subplots(
            figsize=(min(14, max(8, 4 + ncol * 0.45)), 1.5 + 0.35 * len(labels)), constrained_layout=True
        )
        im = ax.imshow(
            share,
            aspect="auto",
            cmap="viridis",
            vmin=0,
            interpolation="nearest",
            extent=(0.5, last + 0.5, len(labels) - 0.5, -0.5),
        )
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.set_xlabel("training step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title("what the teacher sampled (share of groups per step window)")
        fig.colorbar(im, ax=ax, label="share")
        path = out_dir / "teacher_sampled.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

        # Success per cell in the first and last third of training.
        if last >= 3:
            thirds = [(1, last // 3, "first third"), (last - last // 3 + 1, last, "last third")]
        else:  # too short for thirds: the first step and the last
            thirds = [(1, 1, "first step"), (last, last, "last step")]
        fig, axes = plt.subplots(1, 2, figsize=(11, 1.5 + 0.35 * len(labels)), constrained_layout=True, sharey=True)
        for ax, (lo, hi, name) in zip(axes, thirds):
            succ = np.full(len(labels), np.nan)
            n = np.zeros(len(labels))
            tot = np.zeros(len(labels))
            for g in groups:
                if lo <= g["step"] <= hi:
                    n[row[label(g)]] += 1
                    tot[row[label(g)]] += g["success"]
            mask = n > 0
            succ[mask] = tot[mask] / n[mask]
            ax.barh(range(len(labels)), np.nan_to_num(succ), color=["C0" if m else "lightgray" for m in mask])
            for i in range(len(labels)):  # an empty bar is either 0% or a cell never drawn: say which
                text = f"{succ[i]:.0%} of {int(n[i])} group{'s' if n[i] > 1 else ''}" if mask[i] else "not sampled"
                ax.text(
                    min(np.nan_to_num(succ[i]), 0.8) + 0.01,
                    i,
                    text,
                    va="center",
                    fontsize=7,
                    color="black" if mask[i] else "gray",
                )
            ax.set_yticks(range(len(labels)), labels, fontsize=8)
            ax.invert_yaxis()
            ax.set_xlim(0, 1)
            ax.set_xlabel("training success")
            window = f"step {lo}" if lo == hi else f"steps {lo}-{hi}"
            ax.set_title(f"competence, {window} ({name})")
        path = out_dir / "teacher_competence.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    metrics = [r for r in _read(run_dir / "metrics.jsonl") if r.get("kind") == "train"]
    arm_keys = sorted({k for r in metrics for k in r if k.startswith("teacher/arm[")})
    by_kind: dict[str, list[str]] = defaultdict(list)
    for k in arm_keys:
        by_kind[k.rsplit("/", 1)[-1]].append(k)
    if by_kind:
        kinds = sorted(by_kind)
        fig, axes = plt.subplots(1, len(kinds), figsize=(6 * len(kinds), 4), constrained_layout=True, squeeze=False)
        for ax, kind in zip(axes[0], kinds):
            for k in by_kind[kind]:
                pts = [(r["step"], r[k]) for r in metrics if k in r]
                if pts:
                    xs, ys = zip(*pts)
                    ax.plot(xs, ys, label=re.sub(r"^teacher/arm\[(.*)\]/.*$", r"\1", k))
            ax.set_title(f"per-arm {kind}")
            ax.set_xlabel("training step")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
        axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
        path = out_dir / "teacher_arms.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def _natural(s: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]
