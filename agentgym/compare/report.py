"""The report of a comparison: per-arm statistics, differences to the baseline, JSON, plot, table.

Per arm: the metric's mean and standard error over seeds, each seed's value, the value
before training, and the runs' own (within-run) standard error where summaries carry
one. Every other arm's difference to the baseline comes with a 95% t interval and a
two-sided p-value, paired by seed when both arms ran the same seeds (runs with one seed
share training draws and held-out tasks, so their results move together) and Welch's
unequal-variance test otherwise; ``test`` says which. Both versions are in the JSON
where both can be computed.

The report is a plain JSON document, so :func:`plot_report` and :func:`report_table`
can redraw it from a file later.
"""

from __future__ import annotations

import json
import math
import textwrap
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agentgym.compare.curves import arm_curves, plot_curves
from agentgym.compare.runs import Plan, RunResult, _number, before_metric, code_version, machine, summary_value
from agentgym.stats import Difference, mean_se, paired_difference, welch_difference

TESTS = {
    "paired": "paired t over per-seed differences (over the seeds both arms ran)",
    "welch": "Welch's t (the arms ran different seeds)",
}


@dataclass
class ArmSummary:
    """One arm over its seeds."""

    name: str
    overrides: list[str]
    seeds: list[int]
    values: list[float]
    mean: float
    #: Standard error of the mean over seeds (None with one seed).
    se: float | None
    before_values: list[float]
    before_mean: float | None
    before_se: float | None
    #: The runs' own standard errors (``<metric>_se``), combined as a root mean square;
    #: None when the summaries carry none.
    within_se: float | None
    #: To the baseline (None for the baseline): the paired version where it applies, else Welch's.
    difference: Difference | None
    welch: Difference | None
    paired: Difference | None
    #: Mean over runs of generations and training minutes; GRPO steps with signal summed.
    costs: dict[str, Any]
    #: The value minus each run's own value after its warm start, paired by seed (None
    #: without a warm start): what the arm adds to the warm start alone.
    gain: Difference | None = None
    #: What ``before_*`` is: the untrained model, or (where runs do not evaluate the
    #: untrained model, ``train.eval_start: false``) the end of the warm start.
    before_label: str = "before training"


def difference_to_baseline(
    arm: dict[int, float], baseline: dict[int, float]
) -> tuple[Difference, Difference, Difference | None]:
    """(used, welch, paired) for per-seed values ``{seed: value}`` of an arm and the baseline.

    The paired test is used when both arms ran at least two seeds in common, over those
    seeds (its ``note`` names them when either arm ran others too); Welch's over all of
    each arm's seeds otherwise.
    """
    welch = welch_difference([arm[s] for s in sorted(arm)], [baseline[s] for s in sorted(baseline)])
    shared = sorted(set(arm) & set(baseline))
    paired = None
    if len(shared) >= 2:
        paired = paired_difference([arm[s] for s in shared], [baseline[s] for s in shared])
        if set(arm) != set(baseline):
            paired.note = f"paired over the {len(shared)} seeds both arms ran ({', '.join(map(str, shared))})" + (
                f"; {paired.note}" if paired.note else ""
            )
    return (paired or welch), welch, paired


def start_metric(metric: str) -> str | None:
    """The metric at the end of the warm start (GRPO step 0): ``heldout_success_after`` ->
    ``heldout_success_after_warmup``, ``heldout_after.greedy.value`` ->
    ``heldout_after_warmup.greedy.value``; None for a metric with no ``_after`` key."""
    head, dot, rest = metric.partition(".")
    return head + "_warmup" + dot + rest if head.endswith("_after") else None


def gain_over_start(rows: list[RunResult], metric: str) -> Difference | None:
    """The arm's value minus the same runs' value at the end of their warm start, paired by
    seed (each run against its own warm start: the warm start alone is the control), or
    None where the summaries have no warm-start value."""
    key = start_metric(metric)
    if key is None:
        return None
    pairs = [(r.value, v) for r in rows if (v := _number(summary_value(r.summary, key))) is not None]
    if not pairs:
        return None
    return paired_difference([a for a, _ in pairs], [b for _, b in pairs])


def _costs(rows: list[RunResult]) -> dict[str, Any]:
    costs = [r.costs for r in rows if r.costs]
    if not costs:
        return {}
    return {
        "generations": sum(c["generations"] for c in costs) / len(costs),
        "train_minutes": round(sum(c["train_minutes"] for c in costs) / len(costs), 2),
        "grpo_steps_with_signal": sum(c["grpo_steps_with_signal"] for c in costs),
        "grpo_steps": sum(c["grpo_steps"] for c in costs),
        **(
            {"wall_minutes": round(sum(c["wall_minutes"] for c in costs) / len(costs), 2)}
            if all("wall_minutes" in c for c in costs)
            else {}
        ),
    }


def summarize(plan: Plan, results: list[RunResult]) -> list[ArmSummary]:
    """Per-arm statistics and differences to the baseline (the first arm unless the plan names one)."""
    by_arm = {a.name: sorted((r for r in results if r.arm == a.name), key=lambda r: r.seed) for a in plan.arms}
    base_name = plan.baseline or plan.arms[0].name
    base = {r.seed: r.value for r in by_arm[base_name]}
    out = []
    for arm in plan.arms:
        rows = by_arm[arm.name]
        if not rows:
            continue
        values = [r.value for r in rows]
        mean, se = mean_se(values)
        before = [r.before for r in rows if r.before is not None]
        b_mean, b_se = mean_se(before) if before else (None, None)
        within = [r.within_se for r in rows if r.within_se is not None]
        used = welch = paired = None
        if arm.name != base_name and base:
            used, welch, paired = difference_to_baseline({r.seed: r.value for r in rows}, base)
        out.append(
            ArmSummary(
                name=arm.name,
                overrides=arm.overrides,
                seeds=[r.seed for r in rows],
                values=values,
                mean=mean,
                se=se,
                before_values=before,
                before_mean=b_mean,
                before_se=b_se,
                within_se=math.sqrt(sum(w * w for w in within) / len(within)) if within else None,
                difference=used,
                welch=welch,
                paired=paired,
                costs=_costs(rows),
                gain=gain_over_start(rows, plan.metric),
                before_label=before_label(rows),
            )
        )
    return out


def before_label(rows: list[RunResult]) -> str:
    """'after the warm start' where every run's first evaluation is its warm start's end
    (the untrained model was not evaluated), else 'before training'."""

    def first_is_warm_end(r: RunResult) -> bool:
        first = summary_value(r.summary, "heldout_before.step")
        warm = summary_value(r.summary, "heldout_after_warmup.step")
        return first is not None and warm is not None and first == warm

    return "after the warm start" if rows and all(first_is_warm_end(r) for r in rows) else "before training"


def build_report(
    plan: Plan, results: list[RunResult], missing: list[str] | None = None, command: str | None = None
) -> dict[str, Any]:
    """The JSON document of a comparison: what was asked, per-arm statistics, every run, code and machine."""
    arms = summarize(plan, results)
    return {
        "kind": "agentgym-compare",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "command": command,
        "config": plan.config,
        "overrides": plan.overrides,
        "metric": plan.metric,
        "before_metric": before_metric(plan.metric),
        "seeds": plan.seeds,
        "baseline": plan.baseline or plan.arms[0].name,
        "runs_dir": str(plan.runs_dir),
        "level": 0.95,
        "tests": TESTS,
        "arms": [asdict(a) for a in arms],
        "runs": [asdict(r) for r in results],
        # Every evaluation of every run, per arm over seeds (agentgym.compare.curves).
        "curves": arm_curves([asdict(r) for r in results]),
        "missing": list(missing or []),
        # The code and machine that wrote this report; each run's own are under runs[].launches.
        "code": code_version(),
        "machine": machine(),
    }


def write_report(report: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    """Write the JSON and, beside it, the PNG plot (same name, ``.png``) and, where runs
    evaluated more than once, the learning curves (``<name>_curves.png``); return the first two."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    png = out.with_suffix(".png")
    plot_report(report, png)
    curves = report.get("curves") or {}
    if any(len(rows) > 1 for rows in curves.values()):  # a learning curve needs two evaluations
        # Runs that end by a generation budget line up on generations spent, not on steps.
        by_budget = any(r.get("end_of_budget") for rows in curves.values() for r in rows)
        plot_curves(
            curves,
            out.with_name(out.stem + "_curves.png"),
            title=f"{report['config']}",
            x="generations" if by_budget else "step",
        )
    return out, png


def _fractions(report: dict[str, Any]) -> bool:
    """Whether every value lies in [0, 1] (success rates), so it reads as a percentage."""
    values = [v for a in report["arms"] for v in (*a["values"], *a["before_values"])]
    return bool(values) and all(0.0 <= v <= 1.0 for v in values)


def _fmt(x: float | None, pct: bool, signed: bool = False) -> str:
    if x is None:
        return "-"
    if pct:
        return f"{x * 100:+.1f}" if signed else f"{x * 100:.1f}"
    return f"{x:+.4g}" if signed else f"{x:.4g}"


def _mean_se(mean: float | None, se: float | None, pct: bool) -> str:
    if mean is None:
        return "-"
    unit = "%" if pct else ""
    return f"{_fmt(mean, pct)}{unit}" + (f" ± {_fmt(se, pct)}" if se is not None else "")


def difference_text(d: dict[str, Any] | None, pct: bool) -> str:
    """``+3.1 [-1.2, +7.4] pts`` (percentage points for rates), or the estimate with its note."""
    if d is None:
        return "-"
    unit = " pts" if pct else ""
    if d["low"] is None:
        return f"{_fmt(d['estimate'], pct, True)}{unit} (no interval)"
    return f"{_fmt(d['estimate'], pct, True)} [{_fmt(d['low'], pct, True)}, {_fmt(d['high'], pct, True)}]{unit}"


def report_table(report: dict[str, Any]) -> Any:
    """A rich Table of the report: one row per arm."""
    from rich.table import Table

    pct = _fractions(report)
    base = report["baseline"]
    table = Table(title=f"{report['metric']}: mean ± s.e. over seeds ({report['config']})")
    columns = ["arm", "seeds", "after" if report["before_metric"] else report["metric"], "per seed"]
    if report["before_metric"]:
        labels = {a.get("before_label", "before training") for a in report["arms"]}
        columns.append("warm start" if labels == {"after the warm start"} else "before")
    with_within = any(a["within_se"] is not None for a in report["arms"])
    if with_within:
        columns.append("within-run s.e.")
    with_gain = any(a.get("gain") for a in report["arms"])
    if with_gain:
        columns.append("Δ vs own warm start (95% CI)")
    columns += [f"Δ vs {base} (95% CI)", "p", "test"]
    for col in columns:
        table.add_column(col, justify="left" if col in ("arm", "test") else "right")
    used = set()
    for a in report["arms"]:
        d = a["difference"]
        row = [
            a["name"] + (" (baseline)" if a["name"] == base else ""),
            str(len(a["seeds"])),
            _mean_se(a["mean"], a["se"], pct),
            ", ".join(_fmt(v, pct) for v in a["values"]),
        ]
        if report["before_metric"]:
            row.append(_mean_se(a["before_mean"], a["before_se"], pct))
        if with_within:
            row.append(_fmt(a["within_se"], pct))
        if with_gain:
            row.append(difference_text(a.get("gain"), pct))
        p = "-" if d is None or d["p"] is None else f"{d['p']:.3f}"
        row += [difference_text(d, pct), p, "-" if d is None else d["test"]]
        if d is not None:
            used.add(d["test"])
        table.add_row(*row)
    notes = [f"{name}: {TESTS[name]}" for name in sorted(used)]
    notes += [f"{a['name']}: {a['difference']['note']}" for a in report["arms"] if (a["difference"] or {}).get("note")]
    if with_gain:
        notes.append("Δ vs own warm start: each run against its evaluation at GRPO step 0, paired t over seeds")
    if report["missing"]:
        notes.append(f"not finished, left out: {len(report['missing'])} run(s)")
    table.caption = "; ".join(notes) or None
    return table


def plot_report(report: dict[str, Any], path: str | Path) -> Path:
    """Per-arm mean with a standard-error bar, every seed a dot, the value before training a gray mark."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = report["arms"]
    pct = _fractions(report)
    scale = 100.0 if pct else 1.0
    fig, ax = plt.subplots(figsize=(2.0 + 1.9 * len(arms), 4.0))
    for i, a in enumerate(arms):
        n = len(a["values"])
        offsets = [0.18] if n == 1 else [0.1 + 0.16 * j / (n - 1) for j in range(n)]  # beside the bar
        ax.scatter([i + o for o in offsets], [v * scale for v in a["values"]], color="black", s=14, zorder=3)
        ax.errorbar(
            i, a["mean"] * scale, yerr=(a["se"] or 0.0) * scale, fmt="o", color="C0", ms=9, capsize=6, lw=2, zorder=2
        )
        if a["before_mean"] is not None:
            ax.errorbar(
                i - 0.3,
                a["before_mean"] * scale,
                yerr=(a["before_se"] or 0.0) * scale,
                fmt="D",
                color="gray",
                ms=5,
                capsize=3,
                label=a.get("before_label", "before training") if i == 0 else None,
            )
    labels = []
    for a in arms:
        label = a["name"]
        if a["difference"] is not None:
            d = a["difference"]
            p = "" if d["p"] is None else f"p={d['p']:.2g}, "
            label += f"\nΔ {difference_text(d, pct)}\n{p}{d['test']}"
        labels.append(label)
    ax.set_xticks(range(len(arms)), labels, fontsize=8)
    ax.set_xlim(-0.6, len(arms) - 0.35)
    # A nested metric's name is long: wrapped, not cut off at the figure's edge.
    ax.set_ylabel("\n".join(textwrap.wrap(f"{report['metric']}{' (%)' if pct else ''}", 36)), fontsize=8)
    seeds = sorted({s for a in arms for s in a["seeds"]})
    ax.set_title(f"mean ± s.e. over {len(seeds)} seed(s); dots: one seed each", fontsize=9)
    if any(a["before_mean"] is not None for a in arms):
        ax.legend(fontsize=7, loc="best")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
