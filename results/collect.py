"""Copy finished runs' small files into results/ and print their held-out table.

Run folders hold gigabytes of checkpoints and live on one machine; what a result rests on
(config, provenance, the per-step log, the teacher's draws, every evaluation report with its
per-task outcomes, the summary and plots) is a few hundred kB and is committed here.

    python results/collect.py runs/compare/grpo-long/grpo-s0 ... --into results/grpo-long
    python results/collect.py RUN --partial --into DIR --versus OTHER_ARM_RUN   # unfinished; paired

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

KEEP = (
    "config.yaml",
    "provenance.json",
    "metrics.jsonl",
    "teacher.jsonl",
    "summary.json",
    "forked_from.txt",
    "evals",
    "plots",
)


def per_task(report: dict, greedy: bool) -> dict[tuple, float]:
    env = report["envs"][0]
    key = "greedy_successes" if greedy else "successes"
    out = {}
    for t in env["tasks"]:
        values = t.get(key) or []
        if values:
            out[(json.dumps(t["task"]["params"], sort_keys=True), t["task"]["seed"])] = sum(values) / len(values)
    return out


def paired(before: dict, after: dict, greedy: bool):
    """``after`` minus ``before`` (two evaluation reports), paired over their shared tasks."""
    a, b = per_task(before, greedy), per_task(after, greedy)
    common = sorted(set(a) & set(b))
    return paired_change([a[k] for k in common], [b[k] for k in common])


def warmup_steps(run: Path) -> int:
    """The run's warm-start length: from its summary, or for a run that has not finished
    from its config.yaml."""
    if (run / "summary.json").exists():
        return int(json.loads((run / "summary.json").read_text()).get("warmup_steps") or 0)
    from agentgym.config import load_config

    return load_config(run / "config.yaml").warmup.steps


def versus(run: Path, other: Path) -> list[str]:
    """``run`` minus ``other`` at every evaluation step both have, paired by held-out task
    (two arms of one seed evaluate the same tasks)."""
    lines, warm = [], warmup_steps(run)
    for path in sorted((run / "evals").glob("step_*.json")):
        twin = other / "evals" / path.name
        if not twin.exists():
            continue
        step = int(path.stem.split("_")[1]) - warm
        mine, theirs = json.loads(path.read_text()), json.loads(twin.read_text())
        line = f"{run.name} - {other.name:<10} {step:>5}"
        for greedy in (False, True):
            d = paired(theirs, mine, greedy)
            line += f"  {d.value * 100:+6.1f} ± {d.se * 100:3.1f} ({d.tasks} tasks)"
        lines.append(line)
    return lines


def rows(run: Path) -> list[str]:
    warm = warmup_steps(run)
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
                d = paired(start, report, greedy)
                line += f"  {d.value * 100:+6.1f} ± {d.se * 100:3.1f}"
        lines.append(line)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--into", type=Path, help="copy each run's small files to INTO/<run name>")
    ap.add_argument(
        "--partial",
        action="store_true",
        help="also runs that have not finished (a machine about to go): their evaluations so far, "
        "copied to INTO/<run name>-partial",
    )
    ap.add_argument("--versus", type=Path, help="a run of another arm at the same seed: paired differences")
    args = ap.parse_args()
    print(f"{'run':<14} {'step':>5} {'mean@k':>12}  {'greedy':>12}  {'tasks':>5}  {'Δ mean@k':>12}  {'Δ greedy':>12}")
    print("(step counts from the warm start's end; Δ: paired over the same held-out tasks, from step 0)")
    for run in args.runs:
        finished = (run / "summary.json").exists()
        if not finished and not args.partial:
            print(f"{run.name}: not finished (no summary.json; --partial keeps its evaluations so far)")
            continue
        if args.into:
            dest = args.into / (run.name if finished else run.name + "-partial")
            dest.mkdir(parents=True, exist_ok=True)
            for name in KEEP:
                src = run / name
                if src.is_dir():
                    shutil.copytree(src, dest / name, dirs_exist_ok=True)
                elif src.exists():
                    shutil.copy2(src, dest / name)
        print("\n".join(rows(run)))
        if args.versus:
            print("\n".join(versus(run, args.versus)))


if __name__ == "__main__":
    main()
