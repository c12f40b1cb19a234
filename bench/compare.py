"""Methods side by side on real training: held-out success, mean and standard error over seeds.

    python bench/compare.py --config configs/math-teacher.yaml \\
        --variant random teacher.name=random \\
        --variant bandit teacher.name=bandit 'teacher.options={arm_dims: [digits, n_operands]}' \\
        --seeds 0 1 2 --out bench/results/teachers_real.json

Each variant is a list of config overrides; each (variant, seed) pair is one
``agentgym train`` run in its own subprocess, under ``--runs/<variant>-s<seed>``. A run
whose ``summary.json`` exists is read, not rerun, so an interrupted comparison continues
where it stopped. Every run of a comparison starts from the same model and sees the same
held-out tasks (the held-out draw does not depend on ``seed``); ``seed`` changes the
training tasks and the sampling streams.

Reported per variant: held-out success before and after (mean, standard error of the
mean over seeds, each seed's value), split into the trained region (unseen seeds) and
the env's held-out region when the space meets it, the generations spent, minutes, and
in how many GRPO steps some group's rewards differed (a step without is no update);
beside the JSON, a bar plot of the same (``--out`` with ``.png``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import add_out, write_report

ROOT = Path(__file__).resolve().parent.parent


def mean_sem(xs: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for a single value)."""
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, 0.0
    var = sum((x - m) ** 2 for x in xs) / (len(xs) - 1)
    return m, math.sqrt(var / len(xs))


def read_run(run: Path) -> dict[str, Any]:
    """Final held-out numbers of one finished run, and what it spent."""
    summary = json.loads((run / "summary.json").read_text())
    evals, spent, minutes, grpo_steps, signal, train_success = [], 0, 0.0, 0, 0, []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row.get("kind") == "eval":
            evals.append(row)
        elif row.get("kind") in ("train", "sft", "rft"):
            spent += int(row.get("rollout/spent", 0) or 0)
            minutes += float(row.get("time/step_s", 0.0)) / 60
        if row.get("kind") == "train":  # GRPO: did any group have unequal rewards?
            grpo_steps += 1
            signal += float(row.get("adv/abs_mean", 0.0) or 0.0) > 0
            if "success/mean" in row:
                train_success.append(float(row["success/mean"]))
    last = evals[-1]
    out = {
        "before": summary["heldout_success_before"],
        "after": summary["heldout_success_after"],
        "generations": spent,
        "train_minutes": minutes,
        "grpo_steps": grpo_steps,
        "steps_with_signal": signal,
        "train_success": sum(train_success) / len(train_success) if train_success else None,
    }
    for key, name in (("trained", "trained region, unseen seeds"), ("region", "unseen region")):
        k = f"eval/success[{name}]"
        if k in last:
            out[f"after_{key}"] = last[k]
            out[f"before_{key}"] = evals[0].get(k)
    return out


def plot(table: list[dict[str, Any]], path: Path) -> None:
    """Bars of mean held-out success (error bars: standard error), each seed a dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in ("after", "after_trained", "after_region") if any(k in e for e in table)]
    labels = {"after": "all held-out", "after_trained": "trained region", "after_region": "held-out region"}
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(table), 3.6))
    width = 0.8 / len(keys)
    for j, key in enumerate(keys):
        xs = [i + (j - (len(keys) - 1) / 2) * width for i in range(len(table))]
        means = [e[key]["mean"] if key in e else 0.0 for e in table]
        sems = [e[key]["sem"] if key in e else 0.0 for e in table]
        ax.bar(xs, means, width, yerr=sems, capsize=3, label=labels[key], alpha=0.8)
        for x, e in zip(xs, table):
            vals = [r[key] for r in e["runs"] if r.get(key) is not None]
            ax.scatter([x] * len(vals), vals, color="black", s=8, zorder=3)
    before = [e["before"]["mean"] for e in table if "before" in e]
    if before:
        ax.axhline(sum(before) / len(before), color="gray", ls="--", lw=1, label="before (start model)")
    ax.set_xticks(range(len(table)), [e["variant"] for e in table])
    ax.set_ylabel("held-out success")
    ax.set_title(f"after training, mean ± s.e. over {len(table[0]['runs'])} seeds")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument(
        "--variant",
        nargs="+",
        action="append",
        required=True,
        metavar=("NAME", "OVERRIDE"),
        help="a name, then config overrides (repeat --variant for each method)",
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "compare")
    ap.add_argument("--set", nargs="*", default=[], help="overrides for every run")
    add_out(ap, "compare")
    args = ap.parse_args(argv)

    # Seed-major order (every variant at seed 0, then at seed 1, ...): a comparison cut
    # short still has the same seeds for every variant.
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, *_ in args.variant}
    for seed in args.seeds:
        for name, *overrides in args.variant:
            run = args.runs / f"{name}-s{seed}"
            if not (run / "summary.json").exists():
                cmd = [
                    sys.executable,
                    "-m",
                    "agentgym",
                    "train",
                    args.config,
                    f"run_dir={run}",
                    f"seed={seed}",
                    *args.set,
                    *overrides,
                ]
                if run.exists():  # interrupted earlier: continue from its last checkpoint
                    cmd = [sys.executable, "-m", "agentgym", "train", "--resume", str(run)]
                t0 = time.perf_counter()
                print(f"[{name} seed {seed}] {' '.join(cmd[3:])}", flush=True)
                subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, "TQDM_DISABLE": "1"})
                print(f"[{name} seed {seed}] done in {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
            row = read_run(run)
            row["seed"] = seed
            results[name].append(row)
            print(f"[{name} seed {seed}] held-out {row['before']:.1%} -> {row['after']:.1%}", flush=True)

    table = []
    for name, rows in results.items():
        entry: dict[str, Any] = {"variant": name, "seeds": [r["seed"] for r in rows], "runs": rows}
        for key in ("after", "after_trained", "after_region", "before"):
            vals = [r[key] for r in rows if r.get(key) is not None]
            if vals:
                entry[key] = dict(zip(("mean", "sem"), mean_sem(vals)))
        entry["generations"] = sum(r["generations"] for r in rows) / len(rows)
        entry["train_minutes"] = sum(r["train_minutes"] for r in rows) / len(rows)
        entry["steps_with_signal"] = f"{sum(r['steps_with_signal'] for r in rows)}/{sum(r['grpo_steps'] for r in rows)}"
        table.append(entry)

    def cell(e: dict[str, Any], key: str) -> str:
        return f"{e[key]['mean']:.1%} ± {e[key]['sem']:.1%}" if key in e else "-"

    print(
        f"\n{'variant':<12} {'before':>16} {'after (all)':>16} {'trained region':>16} {'held-out region':>16}"
        f" {'generations':>12} {'min/run':>8} {'GRPO steps with signal':>23}"
    )
    for e in table:
        print(
            f"{e['variant']:<12} {cell(e, 'before'):>16} {cell(e, 'after'):>16} {cell(e, 'after_trained'):>16}"
            f" {cell(e, 'after_region'):>16} {e['generations']:12.0f} {e['train_minutes']:8.1f}"
            f" {e['steps_with_signal']:>23}"
        )
    plot(table, Path(args.out).with_suffix(".png"))
    write_report(
        args.out,
        {"benchmark": "compare", "config": args.config, "set": args.set, "seeds": args.seeds, "variants": table},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
