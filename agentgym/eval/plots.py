"""PNG plots of a run's learning curves (read from its metrics.jsonl) and of eval reports.

Held-out numbers are drawn with error bars of one standard error over tasks.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PANELS = [
    ("eval/success", "held-out success: mean@k ± s.e. (dashed: greedy)"),
    ("success/mean", "training success"),
    ("reward/mean", "training reward (mean over episodes)"),
    ("groups/with_signal", "groups with a learning signal (share)"),
    ("kl/ref", "KL to the reference (grpo.kl_ref), per token"),
    ("entropy", "policy entropy (nats/token)"),
    ("response/tokens_mean", "response length (policy tokens)"),
    ("loss", "loss (warm start: cross-entropy; GRPO: surrogate)"),
    ("grad_norm", "gradient norm (before clipping)"),
    ("time/step_s", "seconds per step"),
]
#: What a panel without data says (a metric logged only when asked for).
MISSING = {"kl/ref": "not logged (train.kl_every)", "groups/with_signal": "not logged"}
#: Per-step series with at least this many points get a running mean over the raw line.
SMOOTH_FROM = 30
#: Series drawn beside a panel's main one when present: per seat and per opponent in games.
EXTRA = {
    "reward/mean": "reward/seat/",
    "eval/success": ("eval/opponent/", "eval/success["),
    "success/mean": "success/seat/",
}


def se_key(key: str) -> str:
    """The metric holding ``key``'s standard error: ``eval/success[r]`` -> ``eval/success_se[r]``,
    ``eval/opponent/o`` -> ``eval/opponent_se/o``, ``eval/greedy`` -> ``eval/greedy_se``."""
    if key.endswith("]") and "[" in key:
        name, split = key.split("[", 1)
        return f"{name}_se[{split}"
    head, sep, tail = key.rpartition("/")
    if head.endswith("/opponent") or head.endswith("/opponent_greedy"):
        return f"{head}_se/{tail}"
    return key + "_se"


def _points(rows: list[dict], key: str) -> list[tuple[int, float, float | None]]:
    return [(r["step"], r[key], r.get(se_key(key))) for r in rows if key in r and "step" in r]


def _series(ax: Any, rows: list[dict], key: str, **style: Any) -> bool:
    """Draw ``key`` over steps, with standard-error bars where the rows carry them; a long
    per-step series as a faint raw line under its running mean."""
    pts = _points(rows, key)
    if not pts:
        return False
    xs, ys, ses = zip(*pts)
    if any(e is not None and not math.isnan(e) for e in ses):
        yerr = [0.0 if e is None or math.isnan(e) else e for e in ses]
        ax.errorbar(xs, ys, yerr=yerr, capsize=2, **style)
    elif len(pts) >= SMOOTH_FROM:
        window = max(5, len(pts) // 20)
        color = style.pop("color", None)
        (raw,) = ax.plot(xs, ys, lw=0.8, alpha=0.3, color=color)
        means = [
            sum(ys[max(0, i - window + 1) : i + 1]) / len(ys[max(0, i - window + 1) : i + 1]) for i in range(len(ys))
        ]
        label = style.pop("label", None)
        name = f"running mean of {window} steps" if label in (None, "all") else f"{label}, mean of {window} steps"
        ax.plot(xs, means, color=raw.get_color(), lw=1.6, label=name)
    else:
        ax.plot(xs, ys, **style)
    return True


def _same_series(rows: list[dict], a: str, b: str) -> bool:
    """Whether two series hold the same values at the same steps (a split that is the whole)."""
    pa, pb = _points(rows, a), _points(rows, b)
    return bool(pa) and [(s, v) for s, v, _ in pa] == [(s, v) for s, v, _ in pb]


def read_metrics(path: str | Path) -> list[dict]:
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a torn last line of a killed run
    return rows


def plot_training(metrics_path: str | Path, out_dir: str | Path) -> Path:
    """Write ``training.png`` (all panels) into ``out_dir`` and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(2, 5, figsize=(22, 7.5), constrained_layout=True)
    warm = [r["step"] for r in rows if r.get("kind") == "sft"]
    last = max((r["step"] for r in rows if isinstance(r.get("step"), int)), default=1)
    for ax, (key, title) in zip(axes.flat, PANELS):
        ax.set_xlim(-0.02 * max(last, 1), last + 0.02 * max(last, 1) + (0.5 if last < 5 else 0))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
        if warm:  # the supervised warm start, shaded, before the GRPO steps
            ax.axvspan(
                0, max(warm), color="tab:green", alpha=0.08, label="warm start" if key == "eval/success" else None
            )
        n = sum(key in r for r in rows)
        if n:
            marker = "o" if key.startswith("eval/") or n < 30 else None
            _series(ax, rows, key, marker=marker, ms=4, label="all")
            prefixes = EXTRA.get(key, ())
            prefixes = (prefixes,) if isinstance(prefixes, str) else prefixes
            extras = sorted({(k, pre) for r in rows for k in r for pre in prefixes if k.startswith(pre)})
            # A split holding every task (one region) would draw the same line twice.
            extras = [(k, pre) for k, pre in extras if not _same_series(rows, k, key)]
            for extra, pre in extras:
                label = extra[len(pre) :].rstrip("]")
                _series(ax, rows, extra, marker=marker, ms=3, lw=1, alpha=0.8, label=label)
            greedy = dict(marker="s", ms=3, lw=1, ls="--", color="k", label="greedy")
            if key == "eval/success" and _series(ax, rows, "eval/greedy", **greedy):
                extras.append(("eval/greedy", ""))
            if extras or (warm and key == "eval/success") or n >= SMOOTH_FROM:
                ax.legend(fontsize=7)
            if key.startswith("eval/") or "success" in key or key == "groups/with_signal":
                ax.set_ylim(-0.02, 1.02)
        else:
            ax.text(0.5, 0.5, MISSING.get(key, "no data"), ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.suptitle(Path(metrics_path).parent.name)
    path = out_dir / "training.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_report(reports: Sequence[Any], path: str | Path) -> Path:
    """Bars of mean@k, pass@k and greedy success (error bars: one standard error) for
    each env of an eval report, overall and per held-out region; ``path`` is the PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(reports), figsize=(5.5 * len(reports), 4), squeeze=False, constrained_layout=True)
    names = {"mean_at_k": "mean@{k}", "pass_at_k": "pass@{k}", "greedy": "greedy"}
    for ax, rep in zip(axes.flat, reports):
        rows = [("all", rep.overall), *rep.by_region.items()]
        width = 0.8 / len(names)
        for j, (attr, label) in enumerate(names.items()):
            ests = [getattr(r, attr) for _, r in rows]
            if all(e is None for e in ests):
                continue
            vals = [float("nan") if e is None else e.value for e in ests]
            errs = [0.0 if e is None or math.isnan(e.se) else e.se for e in ests]
            xs = [i + (j - 1) * width for i in range(len(rows))]
            ax.bar(xs, vals, width, yerr=errs, capsize=3, label=label.format(k=rep.k))
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([f"{name}\n({r.tasks} tasks)" for name, r in rows], fontsize=8)
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{rep.env_id} (T={rep.temperature:g})", fontsize=10)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
