"""Copy finished runs' small files into results/ and print their held-out table.

Run folders hold gigabytes of checkpoints and live on one machine; what a result rests on
(config, provenance, the per-step log, every evaluation report with its per-task
outcomes, the summary and plots) is a few hundred kB and is committed here.

    python results/collect.py runs/compare/grpo-long/grpo-s0 ... --into results/grpo-long

For each run it prints mean@k and greedy success at the warm start's end and at each later
evaluation, with standard errors over the distinct held-out tasks, and the paired change
(same tasks, per-task mean over samples) from the warm start's end to each evaluation.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from agentgym.eval.stats import paired_change  # noqa: E402

KEEP = ("config.yaml", "provenance.json", "metrics.jsonl", "summary.json", "forked_from.txt", "evals", "plots")


def per_task(report: dict, greedy: bool) -> dict[tuple, float]:
    env = report["envs"][0]
    key = "greedy_successes" if greedy else "successes"
    out = {}
    for t in env["tasks"]:
        values = t.get(key) or []
        if values:
            out[(json.dumps(t["task"]["params"], sort_keys=True), t["task"]["seed"])] = sum(values) / len(values)
    return out


def rows(run: Path) -> list[str]:
    summary = json.loads((run / "summary.json").read_text())
    warm = int(summary.get("warmup_steps") or 0)
    evals = sorted((run / "evals").glob("step_*.json"))
    reports = {int(p.stem.split("_")[1]): json.loads(p.read_text()) for p in evals}
    start = reports.get(warm)
    lines = []
    for step, report in sorted(reports.items()):
        o = report["envs"][0]["overall"]
        m, g = o["mean_at_k"], o.get("greedy") or {}
        line = f"{run.name:<14} {step - warm:>5} {m['value'] * 100:6.1f} ± {m['se'] * 100:3.1f}"
        line += f"  {g.get('value', float('nan')) * 100:6.1f} ± {g.get('se', float('nan')) * 100:3.1f}  {m['tasks']:>5}"
        if start is not None and step > warm:
            for greedy in (False, True):
                a, b = per_task(start, greedy), per_task(report, greedy)
                common = sorted(set(a) & set(b))
                d = paired_change([a[k] for k in common], [b[k] for k in common])
                line += f"  {d.value * 100:+6.1f} ± {d.se * 100:3.1f}"
        lines.append(line)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--into", type=Path, help="copy each run's small files to INTO/<run name>")
    args = ap.parse_args()
    print(f"{'run':<14} {'step':>5} {'mean@k':>12}  {'greedy':>12}  {'tasks':>5}  {'Δ mean@k':>12}  {'Δ greedy':>12}")
    print("(step counts from the warm start's end; Δ: paired over the same held-out tasks, from step 0)")
    for run in args.runs:
        if not (run / "summary.json").exists():
            print(f"{run.name}: not finished (no summary.json)")
            continue
        if args.into:
            dest = args.into / run.name
            dest.mkdir(parents=True, exist_ok=True)
            for name in KEEP:
                src = run / name
                if src.is_dir():
                    shutil.copytree(src, dest / name, dirs_exist_ok=True)
                elif src.exists():
                    shutil.copy2(src, dest / name)
        print("\n".join(rows(run)))


if __name__ == "__main__":
    main()
