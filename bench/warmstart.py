"""How many demonstrations a warm start needs: held-out success against the number of demos.

    python bench/warmstart.py [--config configs/math-warm.yaml] [--demos 32 128 512] [--out ...]

For each count, one supervised warm start (the config's ``warmup``, no GRPO steps) from
the same base model, evaluated greedily on the config's held-out tasks before and after.
The same number of optimizer steps and batch size for every count, so a larger count
means more distinct demonstrations, not more training.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from common import add_out, write_report

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "math-warm.yaml"))
    ap.add_argument("--demos", type=int, nargs="+", default=[32, 128, 512])
    ap.add_argument("--set", nargs="*", default=[], help="extra config overrides, e.g. warmup.steps=8")
    add_out(ap, "warmstart")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from agentgym.grpo.trainer import train_from_config

    rows = []
    with tempfile.TemporaryDirectory(prefix="agentgym-warmstart-") as tmp:
        for n in args.demos:
            run = Path(tmp) / f"demos{n}"
            t0 = time.perf_counter()
            train_from_config(
                args.config, [f"run_dir={run}", f"warmup.demos={n}", "train.steps=0", *args.set], quiet=True
            )
            summary = json.loads((run / "summary.json").read_text())
            rows.append(
                {
                    "demos": n,
                    "before": summary["heldout_success_before"],
                    "after_warm_start": summary["heldout_success_after"],
                    "minutes": (time.perf_counter() - t0) / 60,
                }
            )
            print(
                f"demos {n:5d}: held-out success {rows[-1]['before']:.1%} -> {rows[-1]['after_warm_start']:.1%} "
                f"({rows[-1]['minutes']:.1f} min)",
                flush=True,
            )
    print(f"\n{'demos':>6} {'before':>8} {'after':>8} {'minutes':>8}")
    for r in rows:
        print(f"{r['demos']:6d} {r['before']:8.1%} {r['after_warm_start']:8.1%} {r['minutes']:8.1f}")
    write_report(args.out, {"benchmark": "warmstart", "config": args.config, "overrides": args.set, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
