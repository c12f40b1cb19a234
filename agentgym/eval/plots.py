"""PNG plots of a run's learning curves, read from its metrics.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

PANELS = [
    ("reward/mean", "training reward (mean over episodes)"),
    ("eval/success", "held-out success (greedy)"),
    ("response/tokens_mean", "response length (policy tokens)"),
    ("entropy", "policy entropy (nats/token)"),
    ("time/step_s", "seconds per step"),
    ("success/mean", "training success"),
    ("loss", "loss (warm start: cross-entropy; GRPO: surrogate)"),
    ("grad_norm", "gradient norm (before clipping)"),
]
#: Series drawn beside a panel's main one when present: per seat and per opponent in games.
EXTRA = {
    "reward/mean": "reward/seat/",
    "eval/success": ("eval/opponent/", "eval/success["),
    "success/mean": "success/seat/",
}


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
    fig, axes = plt.subplots(2, 4, figsize=(18, 7.5), constrained_layout=True)
    warm = [r["step"] for r in rows if r.get("kind") == "sft"]
    for ax, (key, title) in zip(axes.flat, PANELS):
        if warm:  # the supervised warm start, shaded, before the GRPO steps
            ax.axvspan(
                0, max(warm), color="tab:green", alpha=0.08, label="warm start" if key == "eval/success" else None
            )
        pts = [(r["step"], r[key]) for r in rows if key in r]
        if pts:
            xs, ys = zip(*pts)
            marker = "o" if key.startswith("eval/") or len(xs) < 30 else None
            ax.plot(xs, ys, marker=marker, ms=4, label="all")
            prefixes = EXTRA.get(key, ())
            prefixes = (prefixes,) if isinstance(prefixes, str) else prefixes
            extras = sorted({(k, pre) for r in rows for k in r for pre in prefixes if k.startswith(pre)})
            for extra, pre in extras:
                e_pts = [(r["step"], r[extra]) for r in rows if extra in r]
                ex, ey = zip(*e_pts)
                label = extra[len(pre) :].rstrip("]")
                ax.plot(ex, ey, marker=marker, ms=3, lw=1, alpha=0.8, label=label)
            if extras or (warm and key == "eval/success"):
                ax.legend(fontsize=7)
            if key.startswith("eval/") or "success" in key:
                ax.set_ylim(-0.02, 1.02)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.suptitle(Path(metrics_path).parent.name)
    path = out_dir / "training.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
