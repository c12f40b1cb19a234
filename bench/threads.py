"""Torch threads on a small shared CPU: generation speed idle and beside a busy process.

OpenMP's default wait policy spins a thread at every barrier until its partner arrives;
when another process holds one of the two cores, the partner is descheduled and every
barrier waits out a scheduler slice. ``OMP_WAIT_POLICY=PASSIVE`` makes waiting threads
sleep instead. This benchmark samples 8 x 48 tokens with the default model in a fresh
process per setting (the policy is read when the OpenMP runtime starts), idle and with a
CPU-bound neighbour (one torch thread doing matmuls), and prints tokens/s per setting.

    python bench/threads.py [--out results/bench/threads.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

GEN = r"""
import sys, time, torch
from agentgym.policies.models import load_model
torch.set_num_threads(int(sys.argv[1]))
m, tok = load_model("smollm2-135m", seed=0)
ids = tok(["What is 23 + 45? Answer:"] * 8, return_tensors="pt", padding=True)
with torch.no_grad():
    m.generate(**ids, max_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id)  # warm up
    t0 = time.perf_counter()
    m.generate(**ids, max_new_tokens=48, min_new_tokens=48, do_sample=True, pad_token_id=tok.pad_token_id)
print(8 * 48 / (time.perf_counter() - t0))
"""

BURN = r"""
import torch
torch.set_num_threads(1)
a = torch.randn(512, 512)
while True:
    a = torch.tanh(a @ a.T / 512)
"""


def run(threads: int, policy: str | None, busy: bool) -> float:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    burner = subprocess.Popen([sys.executable, "-c", BURN], env={**env, "OMP_NUM_THREADS": "1"}) if busy else None
    try:
        time.sleep(1.0 if busy else 0.0)
        out = subprocess.run([sys.executable, "-c", GEN, str(threads)], env=env, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-2000:])
        return float(out.stdout.strip().splitlines()[-1])
    finally:
        if burner is not None:
            burner.kill()
            burner.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="results/bench/threads.json")
    args = ap.parse_args()
    rows = []
    print(f"{'threads':>7} {'OMP_WAIT_POLICY':>16} {'idle tok/s':>11} {'busy tok/s':>11} {'busy/idle':>9}")
    for threads in (1, 2):
        for policy in (None, "PASSIVE"):
            idle, busy = run(threads, policy, False), run(threads, policy, True)
            rows.append({"threads": threads, "policy": policy or "default", "idle": idle, "busy": busy})
            print(f"{threads:>7} {policy or 'default':>16} {idle:>11.1f} {busy:>11.1f} {busy / idle:>9.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"cpu_count": os.cpu_count(), "rows": rows}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
