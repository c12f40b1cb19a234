"""Seconds per GRPO step, on-policy vs one-step off-policy (``rollout.off_policy_steps: 1``).

    python bench/off_policy.py [--model smollm2-135m] [--steps 4] [--threads 0]
                               [--out bench/results/off_policy.json]

Both runs use the quickstart's settings (math, one-digit + and +-, 4 tasks x 8 samples,
48 new tokens) for ``--steps`` steps from the same seed, without held-out evaluation.
Off-policy, generation of step n+1 runs in a background thread while step n's update
runs, on a copy of the weights one update old. The first step cannot overlap anything,
so the mean is taken over steps 2.. of each run. Reported: s/step of each mode, their
ratio, and, off-policy, how long each step waited for its episodes (``wait s``: 0 when
the generation finished inside the update) and the mean |log pi_trainer - log pi_sampler|
over sampled tokens (the lag the importance weights correct).

The overlap pays only where generation and update do not compete for the same cores: on
a GPU with vLLM generating while the trainer updates, or on a CPU with cores to spare.
``--threads`` sets torch's intra-op threads (0: torch's default).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import add_out, write_report  # noqa: E402  (bench/ is on sys.path when run)

ROOT = Path(__file__).resolve().parent.parent


def run_mode(model: str, steps: int, off: int, threads: int, run_dir: Path) -> list[dict[str, Any]]:
    from agentgym.config import load_config
    from agentgym.grpo.trainer import GRPOTrainer

    cfg = load_config(
        str(ROOT / "configs" / "quickstart.yaml"),
        [
            f"run_dir={run_dir}",
            f"model.name={model}",
            f"train.steps={steps}",
            f"rollout.off_policy_steps={off}",
            f"model.threads={threads}",
        ],
    )
    tr = GRPOTrainer(cfg, quiet=True)
    records = []
    try:
        for _ in range(steps):
            records.append(tr.train_step())
    finally:
        tr.close()
    return records


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=0)
    add_out(ap, "off_policy")
    args = ap.parse_args(argv)
    if args.steps < 2:
        ap.error("--steps must be at least 2 (the first step cannot overlap)")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, off in (("on-policy", 0), ("off-policy (1 step)", 1)):
            recs = run_mode(args.model, args.steps, off, args.threads, Path(tmp) / name.split()[0])
            later = recs[1:]
            rows[name] = {
                "s_per_step": statistics.mean(r["time/step_s"] for r in later),
                "wait_s": statistics.mean(r["time/generate_s"] for r in later),
                "train_s": statistics.mean(r["time/train_s"] for r in later),
                "logp_mismatch": statistics.mean(r.get("logp_mismatch", 0.0) for r in later),
                "staleness": [r["rollout/staleness"] for r in recs],
                "reward_mean": [r["reward/mean"] for r in recs],
            }
    on, off = rows["on-policy"], rows["off-policy (1 step)"]
    report = {
        "model": args.model,
        "steps": args.steps,
        "threads": args.threads or None,
        "rows": rows,
        "speedup": on["s_per_step"] / off["s_per_step"],
    }
    print(f"\n{args.model}, quickstart settings, steps 2..{args.steps}, {os.cpu_count()} CPUs")
    print(f"{'mode':<22} {'s/step':>7} {'wait s':>7} {'update s':>9} {'|dlogp|':>9}  staleness")
    for name, r in rows.items():
        print(
            f"{name:<22} {r['s_per_step']:>7.1f} {r['wait_s']:>7.1f} {r['train_s']:>9.1f} {r['logp_mismatch']:>9.2e}  "
            f"{r['staleness']}"
        )
    print(f"off-policy speed-up: {report['speedup']:.2f}x")
    out = Path(args.out)
    write_report(out, report)
    return report


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
