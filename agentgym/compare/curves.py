"""Learning curves of a comparison: each arm's held-out numbers at every evaluation, over seeds.

A run evaluates before training, after its warm start and every ``train.eval_every`` GRPO
steps. The curves put every evaluation on one axis, GRPO steps (0: the end of the warm
start; the evaluation before any training sits at minus the warm start's length), and
give per arm and step the mean over seeds with its standard error over seeds. With one
seed there is no spread over seeds: the band is then the run's own standard error over
its held-out tasks (``band`` says which), which leaves out the seed-to-seed variation
of training itself and so is narrower than a spread over seeds would be.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from agentgym.stats import mean_se

#: The held-out numbers followed, as named in a run's eval lines (``eval/<name>``).
CURVE_METRICS = ("mean_at_k", "greedy", "pass_at_k")


def run_curve(run_dir: str | Path, warmup_steps: int = 0) -> list[dict[str, Any]]:
    """One run's evaluations: GRPO step, and each metric's value and standard error."""
    path = Path(run_dir) / "metrics.jsonl"
    points: dict[int, dict[str, Any]] = {}
    if not path.exists():
        return []
    spent: dict[int, int] = {}  # generations spent by each step
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(row.get("step"), int):
            continue
        if row.get("kind") in ("train", "sft"):
            spent[row["step"]] = int(row.get("rollout/spent", 0) or 0)
        if row.get("kind") != "eval":
            continue
        step = int(row["step"])
        point: dict[str, Any] = {
            "step": step - warmup_steps,
            "generations": sum(n for s, n in spent.items() if s <= step),
            "tasks": row.get("eval/tasks"),
        }
        for name in CURVE_METRICS:
            if f"eval/{name}" in row:
                point[name] = row[f"eval/{name}"]
                point[f"{name}_se"] = row.get(f"eval/{name}_se")
        points[point["step"]] = point  # a resumed run may repeat an eval: the last one counts
    return [points[s] for s in sorted(points)]


#: The key of a run's last evaluation when it came at the end of its generation budget.
END = "end"


def arm_curves(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per arm, per GRPO step: the mean over seeds of each metric with its standard error.

    A run that ends by its generation budget (``train.max_generations``, dynamic sampling
    spending more per step on some seeds than others) ends at a different step on each
    seed: its last evaluation joins the other seeds' last ones in one row, the end of the
    budget (``end_of_budget``, ``step`` the seeds' mean step, ``steps`` each seed's),
    rather than each standing alone at its own step.

    ``runs``: the report's runs (``arm``, ``seed``, ``config``, and their ``curve`` or else
    their ``run_dir`` to read it from)."""
    by_arm: dict[str, dict[Any, dict[int, dict[str, Any]]]] = defaultdict(lambda: defaultdict(dict))
    for run in runs:
        config = run.get("config") or {}
        warm = int((config.get("warmup") or {}).get("steps") or 0)
        budget = (config.get("train") or {}).get("max_generations")
        points = run.get("curve") or run_curve(run["run_dir"], warm)
        for i, point in enumerate(points):
            ended = budget is not None and i == len(points) - 1 and (point.get("generations") or 0) >= budget
            by_arm[run["arm"]][END if ended else point["step"]][run["seed"]] = point
    out: dict[str, list[dict[str, Any]]] = {}
    for arm, steps in by_arm.items():
        rows = []
        for key in sorted(steps, key=lambda k: (k == END, 0 if k == END else k)):
            seeds = steps[key]
            row: dict[str, Any] = {"step": key, "seeds": sorted(seeds), "tasks": _first(seeds, "tasks")}
            if key == END:
                each = [seeds[s]["step"] for s in sorted(seeds)]
                row.update(step=round(sum(each) / len(each)), steps=each, end_of_budget=True)
            gens = [p["generations"] for p in seeds.values() if p.get("generations") is not None]
            row["generations"] = sum(gens) / len(gens) if gens else None  # mean over seeds
            for name in CURVE_METRICS:
                values = [p[name] for p in seeds.values() if p.get(name) is not None]
                if not values:
                    continue
                mean, se = mean_se(values)
                if len(values) == 1:
                    se, band = next(iter(seeds.values())).get(f"{name}_se"), "tasks"
                else:
                    band = "seeds"
                row[name] = {"mean": mean, "se": se, "n": len(values), "band": band}
            rows.append(row)
        out[arm] = rows
    return out


def _first(seeds: dict[int, dict[str, Any]], key: str) -> Any:
    return next((p.get(key) for p in seeds.values() if p.get(key) is not None), None)


def plot_curves(curves: dict[str, list[dict[str, Any]]], path: str | Path, title: str = "", x: str = "step") -> Path:
    """mean@k and greedy against GRPO steps (``x="generations"``: generations spent, for
    arms that spend differently per step), one line per arm with a standard-error band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in ("mean_at_k", "greedy") if any(m in r for rows in curves.values() for r in rows)]
    fig, axes = plt.subplots(1, max(1, len(metrics)), figsize=(5.2 * max(1, len(metrics)), 4.0), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=False):
        for i, (arm, rows) in enumerate(curves.items()):
            pts = [(r[x], r[metric]) for r in rows if metric in r and r.get(x) is not None]
            if not pts:
                continue
            xs = [s for s, _ in pts]
            y = [100 * p["mean"] for _, p in pts]
            se = [100 * (p["se"] or 0.0) for _, p in pts]
            n = max(p["n"] for _, p in pts)
            ax.plot(xs, y, marker="o", ms=3, color=f"C{i}", label=f"{arm} ({n} seed{'s' if n > 1 else ''})")
            ax.fill_between(
                xs, [a - b for a, b in zip(y, se)], [a + b for a, b in zip(y, se)], color=f"C{i}", alpha=0.18
            )
        if x == "step":
            ax.axvline(0, color="gray", lw=0.8, ls=":")
            ax.set_xlabel("GRPO step (0: end of the warm start; left of it: before any training)")
        else:
            ax.set_xlabel("generations spent (dropped rollouts included)")
        ax.set_ylabel({"mean_at_k": "held-out mean@k (%)", "greedy": "held-out greedy success (%)"}[metric])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    bands = {p["band"] for rows in curves.values() for r in rows for k, p in r.items() if isinstance(p, dict)}
    note = "bands: ± s.e. over seeds" if bands == {"seeds"} else "bands: ± s.e. over seeds (one seed: over tasks)"
    fig.suptitle(f"{title}\n{note}" if title else note, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def curves_table(curves: dict[str, list[dict[str, Any]]], steps: list[int] | None = None) -> Any:
    """A rich Table: per arm, mean@k and greedy (mean ± s.e., %) at the given GRPO steps."""
    from rich.table import Table

    def key(r: dict[str, Any]) -> Any:
        return END if r.get("end_of_budget") else r["step"]

    if steps is None:
        steps = sorted({r["step"] for rows in curves.values() for r in rows if not r.get("end_of_budget")})
    ends = [r for rows in curves.values() for r in rows if r.get("end_of_budget")]
    columns: list[Any] = [*steps, *([END] if ends else [])]
    table = Table(title="held-out mean@k / greedy (%), mean ± s.e., by GRPO step")
    table.add_column("arm")
    table.add_column("seeds", justify="right")
    for s in steps:
        table.add_column(f"step {s}", justify="right")
    if ends:
        table.add_column("end of the generation budget (steps)", justify="right")
    for arm, rows in curves.items():
        at = {key(r): r for r in rows}
        cells = []
        for s in columns:
            r = at.get(s)
            text = "-" if r is None else " / ".join(_cell(r.get(m)) for m in ("mean_at_k", "greedy"))
            if r is not None and s == END:
                text += f" ({', '.join(map(str, r['steps']))})"
            cells.append(text)
        n = max((len(r["seeds"]) for r in rows), default=0)
        table.add_row(arm, str(n), *cells)
    return table


def _cell(p: dict[str, Any] | None) -> str:
    if p is None:
        return "-"
    return f"{100 * p['mean']:.1f}" + ("" if p["se"] is None else f"±{100 * p['se']:.1f}")
