"""Experiment 2 (issue 31): what each teacher run drew, whether it acted, and what it changed.

    python results/experiment2.py results/teacher/*-s[0-9] --out results/teacher/experiment2

Reads collected run folders (``results/collect.py``: config, metrics.jsonl, teacher.jsonl,
evals). For each run it reports:

- held-out success at every evaluation, over the trained region's cells (cells weighted
  equally: the held-out evaluation draws the same number of problems per cell) and the
  held-out cell apart, mean@k and greedy, with standard errors over distinct problems, and
  the trained region's change from the warm start's end, paired by problem;
- the paired change of each cell group (chain length) from the warm start to the last
  evaluation, on the same problems;
- whether the teacher acted: its sampling entropy against uniform's (``teacher/entropy_ratio``)
  at GRPO step 50 and at its lowest, and the share of groups it drew per chain length over
  the run (against uniform's share);
- generations spent and dropped, steps, training minutes;
- each arm minus the baseline arm of the same seed at the end of the generation budget,
  paired by problem (``--baseline``, default random-ds);
- over seeds, per arm (``over_seeds`` in the JSON): the trained region's success at the
  warm start's end and at the end of the budget, mean ± s.e. over seeds; the change from
  each run's own warm start and the difference to the baseline at the budget's end, each
  with a 95% t interval over the seeds (paired by seed).

Writes OUT.json and OUT.png (one column per arm: what its runs drew per chain length,
pooled over seeds, and each seed's held-out curve over the trained region, both against
generations spent, so arms with one budget line up).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from agentgym.eval.stats import mean_se  # noqa: E402
from agentgym.stats import mean_se as seed_mean_se  # noqa: E402  (None, not NaN, for one seed)
from agentgym.stats import paired_difference  # noqa: E402
from results.collect import warmup_steps as _warm_steps  # noqa: E402

REGION = "trained region, unseen seeds"
HELD = "unseen region"


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _per_task(report: dict, key: str, dim: str | None = None) -> dict[tuple, tuple[object, float]]:
    out = {}
    for t in report["envs"][0]["tasks"]:
        vals = t.get(key) or []
        if vals:
            params = t["task"]["params"]
            out[(json.dumps(params, sort_keys=True), t["task"]["seed"])] = (
                params.get(dim) if dim else None,
                sum(vals) / len(vals),
            )
    return out


def _held_out_region(run: Path):
    """The env's held-out region (a ``Region``), from the run's config."""
    from agentgym import make
    from agentgym.config import load_config

    return make(load_config(run / "config.yaml").env.id).held_out.region


def evaluations(run: Path) -> list[dict]:
    """Each evaluation over the trained region and the held-out cell, with the trained
    region's change from the warm start's end paired by problem."""
    warm = _warm_steps(run)
    held = _held_out_region(run)
    start_path = run / "evals" / f"step_{warm:06d}.json"
    start = json.loads(start_path.read_text()) if start_path.exists() else None
    spent = generations_by_step(run)
    points = []
    for path in sorted((run / "evals").glob("step_*.json")):
        report = json.loads(path.read_text())
        env = report["envs"][0]
        point: dict = {"step": int(path.stem.split("_")[1]) - warm}
        point["generations"] = spent.get(point["step"])
        if start is not None:
            for key, tag in (("successes", "mean_at_k"), ("greedy_successes", "greedy")):
                a, b = _per_task(start, key), _per_task(report, key)
                common = [t for t in sorted(set(a) & set(b)) if not held.contains(json.loads(t[0]))]
                diff = [b[t][1] - a[t][1] for t in common]
                point[f"trained_{tag}_change"] = sum(diff) / len(diff) if diff else None
                point[f"trained_{tag}_change_se"] = mean_se(diff)[1]
        for name, region in (("trained", REGION), ("held_out_cell", HELD)):
            r = env["by_region"].get(region) or {}
            for metric in ("mean_at_k", "greedy"):
                m = r.get(metric) or {}
                point[f"{name}_{metric}"] = m.get("value")
                point[f"{name}_{metric}_se"] = m.get("se")
            point[f"{name}_tasks"] = r.get("tasks")
        points.append(point)
    return points


def cell_changes(run: Path, dim: str) -> list[dict]:
    """Per value of ``dim``: the paired change (same problems) from the warm start's end to the
    last evaluation, mean@k and greedy."""
    warm = _warm_steps(run)
    evals = sorted((run / "evals").glob("step_*.json"))
    start = next((p for p in evals if int(p.stem.split("_")[1]) == warm), None)
    if start is None or evals[-1] == start:
        return []
    a_rep, b_rep = json.loads(start.read_text()), json.loads(evals[-1].read_text())
    rows = []
    for key in ("successes", "greedy_successes"):
        a, b = _per_task(a_rep, key, dim), _per_task(b_rep, key, dim)
        by: dict = defaultdict(lambda: ([], [], []))
        for task in sorted(set(a) & set(b)):
            v = a[task][0]
            by[v][0].append(a[task][1])
            by[v][1].append(b[task][1])
            by[v][2].append(b[task][1] - a[task][1])
        for v, (before, after, diff) in sorted(by.items(), key=lambda kv: kv[0]):
            row = next((r for r in rows if r[dim] == v), None)
            if row is None:
                row = {dim: v, "tasks": len(diff)}
                rows.append(row)
            tag = "mean_at_k" if key == "successes" else "greedy"
            row[f"{tag}_start"] = sum(before) / len(before)
            row[f"{tag}_end"] = sum(after) / len(after)
            row[f"{tag}_change"] = sum(diff) / len(diff)
            row[f"{tag}_change_se"] = mean_se(diff)[1]
    return rows


def teacher_use(run: Path, dim: str, step: int = 50) -> dict:
    warm = _warm_steps(run)
    rows = [r for r in _lines(run / "metrics.jsonl") if r.get("kind") == "train" and r.get("step", 0) > warm]
    ratio = [(r["step"] - warm, r["teacher/entropy_ratio"]) for r in rows if "teacher/entropy_ratio" in r]
    by_50 = [v for s, v in ratio if s <= step]
    drawn: Counter = Counter()
    for line in _lines(run / "teacher.jsonl"):
        if line.get("step", 0) > warm:
            for g in line.get("groups") or []:
                drawn[g["params"].get(dim)] += 1
    total = sum(drawn.values()) or 1
    prov = run / "provenance.json"  # each launch's wall-clock seconds (warm start and evaluations included)
    launches = json.loads(prov.read_text()).get("launches", []) if prov.exists() else []
    spent = sum(r.get("rollout/spent", 0) for r in rows)
    dropped = sum(r.get("rollout/dropped", 0) for r in rows)
    return {
        "grpo_steps": len(rows),
        "generations_spent": spent,
        "generations_dropped": dropped,
        "train_minutes": sum(r.get("time/step_s", 0) for r in rows) / 60,
        "wall_minutes": sum(x.get("seconds") or 0 for x in launches) / 60 if launches else None,
        "entropy_ratio_at_step": step,
        "entropy_ratio_lowest_by_step": min(by_50) if by_50 else None,
        "entropy_ratio_at": next((v for s, v in reversed(ratio) if s <= step), None),
        "entropy_ratio_lowest": min((v for _, v in ratio), default=None),
        "entropy_ratio_mean": sum(v for _, v in ratio) / len(ratio) if ratio else None,
        "drawn_share": {str(k): v / total for k, v in sorted(drawn.items(), key=lambda kv: kv[0])},
        "groups_drawn": sum(drawn.values()),
    }


def generations_by_step(run: Path) -> dict[int, float]:
    """Generations spent by the end of each GRPO step (0: the warm start's end), dropped ones
    included: the x axis on which arms with the same budget line up."""
    warm = _warm_steps(run)
    total, out = 0.0, {0: 0.0}
    for r in _lines(run / "metrics.jsonl"):
        if r.get("kind") == "train" and r.get("step", 0) > warm:
            total += r.get("rollout/spent", 0)
            out[r["step"] - warm] = total
    return out


def drawn_by_generations(run: Path, dim: str, window: float = 800) -> tuple[list[float], dict]:
    """The share of groups drawn per value of ``dim``, per ``window`` generations spent."""
    warm = _warm_steps(run)
    spent = generations_by_step(run)
    counts: dict = defaultdict(Counter)
    for line in _lines(run / "teacher.jsonl"):
        s = line.get("step", 0) - warm
        if s > 0:
            for g in line.get("groups") or []:
                counts[int(spent.get(s - 1, 0) // window)][g["params"].get(dim)] += 1
    bins = sorted(counts)
    values = sorted({v for c in counts.values() for v in c})
    share = {v: [counts[b][v] / max(1, sum(counts[b].values())) for b in bins] for v in values}
    return [(b + 0.5) * window for b in bins], share


def at_budget_end(run: Path, base: Path) -> dict:
    """``run``'s last evaluation minus ``base``'s last (each arm at the end of the same
    generation budget, whatever its step count), over the trained region, paired by problem."""
    held = _held_out_region(run)
    mine = json.loads(sorted((run / "evals").glob("step_*.json"))[-1].read_text())
    theirs = json.loads(sorted((base / "evals").glob("step_*.json"))[-1].read_text())
    out: dict = {"baseline": base.name}
    for key, tag in (("successes", "mean_at_k"), ("greedy_successes", "greedy")):
        a, b = _per_task(theirs, key), _per_task(mine, key)
        common = [t for t in sorted(set(a) & set(b)) if not held.contains(json.loads(t[0]))]
        diff = [b[t][1] - a[t][1] for t in common]
        out[tag] = sum(diff) / len(diff) if diff else None
        out[tag + "_se"] = mean_se(diff)[1]
        out["tasks"] = len(diff)
    return out


def _arm(name: str) -> tuple[str, str]:
    """``ARM-sSEED`` -> (arm, seed)."""
    arm, seed = name.rsplit("-s", 1)
    return arm, seed


def _interval(d) -> dict:
    return {"estimate": d.estimate, "low": d.low, "high": d.high, "p": d.p, "seeds": d.n_arm, "note": d.note}


def over_seeds(report: dict, baseline: str) -> dict:
    """Per arm, over its seeds: the trained region's success at the warm start's end and at
    the budget's end (mean ± s.e. over seeds), the change with a 95% t interval over seeds,
    and the difference to ``baseline`` at the budget's end, paired by seed."""
    ends: dict = defaultdict(dict)  # arm -> seed -> (start point, end point)
    for name, r in report.items():
        pts = r["evaluations"]
        start = next((p for p in pts if p["step"] == 0), None)
        if start is not None and r["finished"] and pts[-1]["step"] > 0:
            arm, seed = _arm(name)
            ends[arm][seed] = (start, pts[-1])
    out = {}
    for arm, by_seed in ends.items():
        seeds = sorted(by_seed)
        row: dict = {"seeds": seeds, "steps_at_end": [by_seed[s][1]["step"] for s in seeds]}
        for tag in ("mean_at_k", "greedy"):
            start = [by_seed[s][0][f"trained_{tag}"] for s in seeds]
            end = [by_seed[s][1][f"trained_{tag}"] for s in seeds]
            row[f"{tag}_start"], row[f"{tag}_start_se"] = seed_mean_se(start)
            row[f"{tag}_end"], row[f"{tag}_end_se"] = seed_mean_se(end)
            row[f"{tag}_change"] = _interval(paired_difference(end, start))
            base = ends.get(baseline, {})
            shared = [s for s in seeds if s in base]
            if arm != baseline and shared:
                row[f"{tag}_minus_{baseline}"] = _interval(
                    paired_difference(
                        [by_seed[s][1][f"trained_{tag}"] for s in shared],
                        [base[s][1][f"trained_{tag}"] for s in shared],
                    )
                )
        # Every evaluation step all of the arm's seeds reached, mean ± s.e. over seeds.
        steps = sorted(set.intersection(*({p["step"] for p in report[f"{arm}-s{s}"]["evaluations"]} for s in seeds)))
        row["points"] = []
        for step in steps:
            pts = [next(p for p in report[f"{arm}-s{s}"]["evaluations"] if p["step"] == step) for s in seeds]
            point: dict = {"step": step, "generations": [p.get("generations") for p in pts]}
            for tag in ("mean_at_k", "greedy"):
                point[tag], point[tag + "_se"] = seed_mean_se([p[f"trained_{tag}"] for p in pts])
            row["points"].append(point)
        # The difference to the baseline pooled over seeds by problem (each seed's paired
        # difference averaged; its s.e. counts problems only, not the spread of training
        # across seeds, which the interval over seeds above does).
        diffs = [report[f"{arm}-s{s}"].get("minus_baseline_at_budget_end") for s in seeds]
        diffs = [d for d in diffs if d]
        if diffs:
            row["minus_baseline_pooled_by_problem"] = (
                {tag: sum(d[tag] for d in diffs) / len(diffs) for tag in ("mean_at_k", "greedy")}
                | {
                    tag + "_se": sum(d[tag + "_se"] ** 2 for d in diffs) ** 0.5 / len(diffs)
                    for tag in ("mean_at_k", "greedy")
                }
                | {"seeds": len(diffs), "tasks_per_seed": diffs[0]["tasks"]}
            )
        out[arm] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--dim", default="n_operands", help="the task parameter to break runs down by")
    ap.add_argument("--out", type=Path, default=Path("results/teacher/experiment2"))
    ap.add_argument(
        "--baseline",
        default="random-ds",
        help="the baseline arm: each other run ARM-sSEED is compared with BASELINE-sSEED at the budget's end",
    )
    args = ap.parse_args()
    report = {}
    for run in args.runs:
        if not (run / "evals").is_dir():
            continue
        report[run.name] = {
            "evaluations": evaluations(run),
            "by_" + args.dim: cell_changes(run, args.dim),
            "teacher": teacher_use(run, args.dim),
            "finished": (run / "summary.json").exists(),
        }
        seed = run.name.rsplit("-s", 1)[-1]
        base = run.parent / f"{args.baseline}-s{seed}"
        if base != run and (base / "evals").is_dir():
            report[run.name]["minus_baseline_at_budget_end"] = at_budget_end(run, base)
    seeds = over_seeds(report, args.baseline)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({**report, "over_seeds": seeds}, indent=1) + "\n")

    pct = lambda x: "  -  " if x is None else f"{x * 100:5.1f}"  # noqa: E731
    print("held-out success over the trained region's cells (mean@k / greedy, s.e. over problems); held-out cell apart")
    for name, r in report.items():
        for p in r["evaluations"]:
            print(
                f"{name:<16} step {p['step']:>4}: {pct(p['trained_mean_at_k'])} ± {pct(p['trained_mean_at_k_se'])}"
                f" / {pct(p['trained_greedy'])} ± {pct(p['trained_greedy_se'])} ({p['trained_tasks']} problems);"
                f" held-out cell {pct(p['held_out_cell_mean_at_k'])} / {pct(p['held_out_cell_greedy'])}"
                f" ({p['held_out_cell_tasks']})"
                + (
                    f"; change from step 0 {p['trained_mean_at_k_change'] * 100:+.1f}"
                    f" ± {p['trained_mean_at_k_change_se'] * 100:.1f}"
                    f" / {p['trained_greedy_change'] * 100:+.1f} ± {p['trained_greedy_change_se'] * 100:.1f}"
                    if p["step"] > 0 and p.get("trained_mean_at_k_change") is not None
                    else ""
                )
            )
    print(f"\nchange from the warm start to the last evaluation by {args.dim} (paired, same problems)")
    for name, r in report.items():
        for c in r["by_" + args.dim]:
            print(
                f"{name:<16} {args.dim}={c[args.dim]}: {pct(c['mean_at_k_start'])} -> {pct(c['mean_at_k_end'])}"
                f" ({c['mean_at_k_change'] * 100:+5.1f} ± {c['mean_at_k_change_se'] * 100:4.1f});"
                f" greedy {c['greedy_change'] * 100:+5.1f} ± {c['greedy_change_se'] * 100:4.1f} ({c['tasks']} problems)"
            )
    print("\nteacher: entropy against uniform (1 = uniform), share of groups drawn per " + args.dim)
    for name, r in report.items():
        t = r["teacher"]
        share = " ".join(f"{k}:{v * 100:.0f}%" for k, v in t["drawn_share"].items())
        print(
            f"{name:<16} at step {t['entropy_ratio_at_step']}: {t['entropy_ratio_at']:.2f}"
            f" (lowest by then {t['entropy_ratio_lowest_by_step']:.2f}, over the run {t['entropy_ratio_lowest']:.2f});"
            f" {t['grpo_steps']} steps, {t['generations_spent']:.0f} generations"
            f" ({t['generations_dropped']:.0f} dropped),"
            f" {t['train_minutes']:.0f} training min"
            + (f" ({t['wall_minutes']:.0f} wall-clock)" if t["wall_minutes"] else "")
            + f"; drawn {share}"
            if t["entropy_ratio_at"] is not None
            else f"{name:<16} no teacher log"
        )
    print("\nminus the baseline of the same seed, each at the end of the generation budget (trained region, paired)")
    for name, r in report.items():
        d = r.get("minus_baseline_at_budget_end")
        if d:
            print(
                f"{name:<16} - {d['baseline']}: {d['mean_at_k'] * 100:+.1f} ± {d['mean_at_k_se'] * 100:.1f}"
                f" / greedy {d['greedy'] * 100:+.1f} ± {d['greedy_se'] * 100:.1f} ({d['tasks']} problems)"
            )
    print("\nover seeds: trained region at the warm start's end -> the budget's end (mean ± s.e. over seeds);")
    print(f"change and difference to {args.baseline} at the budget's end, 95% t interval over seeds (paired by seed)")
    ci = lambda d: (  # noqa: E731
        f"{d['estimate'] * 100:+.1f} [{d['low'] * 100:+.1f}, {d['high'] * 100:+.1f}]"
        if d["low"] is not None
        else f"{d['estimate'] * 100:+.1f} (no interval: {d['seeds']} seed)"
    )
    for arm, row in seeds.items():
        for tag in ("mean_at_k", "greedy"):
            vs = row.get(f"{tag}_minus_{args.baseline}")
            start = f"{pct(row[f'{tag}_start'])} ± {pct(row[f'{tag}_start_se'])}"
            end = f"{pct(row[f'{tag}_end'])} ± {pct(row[f'{tag}_end_se'])}"
            print(
                f"{arm:<12} {tag:<9} seeds {','.join(row['seeds'])}: {start} -> {end};"
                f" change {ci(row[f'{tag}_change'])}" + (f"; minus {args.baseline} {ci(vs)}" if vs else "")
            )
    print("\nover seeds at each evaluation all seeds reached")
    print("(trained region, mean ± s.e. over seeds; generations per seed)")
    for arm, row in seeds.items():
        for p in row["points"]:
            gens = ", ".join("-" if g is None else f"{g:.0f}" for g in p["generations"])
            print(
                f"{arm:<12} step {p['step']:>4} ({gens}): {pct(p['mean_at_k'])} ± {pct(p['mean_at_k_se'])}"
                f" / {pct(p['greedy'])} ± {pct(p['greedy_se'])}"
            )
        d = row.get("minus_baseline_pooled_by_problem")
        if d:
            print(
                f"{arm:<12} minus {args.baseline} at the budget's end, pooled over {d['seeds']} seeds by problem"
                f" (s.e. over problems only): {d['mean_at_k'] * 100:+.1f} ± {d['mean_at_k_se'] * 100:.1f}"
                f" / greedy {d['greedy'] * 100:+.1f} ± {d['greedy_se'] * 100:.1f}"
            )
    _plot(args.runs, report, args.dim, args.out.with_suffix(".png"), args.baseline)


def _plot(runs: list[Path], report: dict, dim: str, path: Path, baseline: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_arm: dict[str, list[Path]] = defaultdict(list)
    for run in sorted(runs, key=lambda r: _arm(r.name)[0] != baseline):  # the baseline's column first
        if run.name in report:
            by_arm[_arm(run.name)[0]].append(run)
    fig, axes = plt.subplots(2, len(by_arm), figsize=(4.2 * len(by_arm), 6.4), squeeze=False, sharey="row")
    for i, (arm, arm_runs) in enumerate(by_arm.items()):
        # What the arm drew, pooled over its seeds, per 800 generations spent.
        pooled: dict = defaultdict(Counter)
        for run in arm_runs:
            x, share = drawn_by_generations(run, dim)
            for j, at in enumerate(x):
                for v, col in share.items():
                    pooled[at][v] += col[j]
        ax = axes[0][i]
        if pooled:
            xs = sorted(pooled)
            values = sorted({v for c in pooled.values() for v in c})
            ys = [[pooled[at][v] / max(1e-9, sum(pooled[at].values())) for at in xs] for v in values]
            ax.stackplot(xs, *ys, labels=[f"{dim}={v}" for v in values])
        seeds = ", ".join(_arm(r.name)[1] for r in arm_runs)
        ax.set_title(f"{arm} (seed{'s' if len(arm_runs) > 1 else ''} {seeds})", fontsize=9)
        ax.set_ylim(0, 1)
        if i == 0:
            ax.set_ylabel("share of groups drawn\n(per 800 generations, seeds pooled)")
        ax = axes[1][i]
        for n, run in enumerate(arm_runs):
            spent = generations_by_step(run)
            pts = report[run.name]["evaluations"]
            for key, label, colour in (("trained_mean_at_k", "mean@k", "C0"), ("trained_greedy", "greedy", "C1")):
                keep = [p for p in pts if p[key] is not None and p["step"] in spent]
                ax.errorbar(
                    [spent[p["step"]] + 60 * n for p in keep],  # a small shift keeps seeds' bars apart
                    [p[key] * 100 for p in keep],
                    yerr=[(p[key + "_se"] or 0) * 100 for p in keep],
                    marker="os^v"[n % 4],
                    linestyle=["-", "--", ":", "-."][n % 4],
                    color=colour,
                    capsize=3,
                    label=f"{label}, seed {_arm(run.name)[1]}",
                )
        ax.set_xlabel("generations spent (dropped included)", fontsize=8)
        ax.legend(fontsize=6)
        if i == 0:
            ax.set_ylabel("held-out success, %\n(trained region's cells, s.e. over problems)")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
