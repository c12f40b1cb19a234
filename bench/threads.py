"""Torch threads on a small shared CPU: speed idle and beside a busy process.

OpenMP's default wait policy spins a thread at every barrier until its partner arrives;
when another process holds one of the two cores, the partner is descheduled and every
barrier waits out a scheduler slice. ``OMP_WAIT_POLICY=PASSIVE`` makes waiting threads
sleep instead; agentgym's thread governor (``agentgym/threads.py``, on by default) drops
to one thread while a probe says the full count is slower.

Part 1 samples 8 x 48 tokens with the default model in a fresh process per setting (the
policy is read when the OpenMP runtime starts), idle and with a CPU-bound neighbour (one
torch thread doing matmuls), and prints tokens/s. Part 2 (``--grpo``) times GRPO steps of
1 task x 8 samples x 48 tokens (the same seeded steps in every setting: the samples are
bit for bit alike across thread counts) before the governor (torch's 2 threads, fixed),
with it, and with one thread, idle and busy.

    python bench/threads.py [--grpo] [--no-sampler] [--repeats 3] [--steps 4] [--out results/bench/threads.json]

Time it with nothing else running.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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


STEP = r"""
import json, sys, tempfile
from agentgym.config import load_config
from agentgym.grpo.trainer import GRPOTrainer
threads, steps = int(sys.argv[1]), int(sys.argv[2])
with tempfile.TemporaryDirectory() as d:
    cfg = load_config(None, [f"run_dir={d}/run", "model.name=smollm2-135m", f"model.threads={threads}",
        "env.id=math/arithmetic-v0", "rollout.tasks_per_step=1", "rollout.group_size=8",
        "rollout.max_new_tokens=48", "train.eval_tasks=1"])
    tr = GRPOTrainer(cfg, quiet=True)
    times, counts = [], []
    for _ in range(steps):
        r = tr.train_step()
        times.append(r["time/step_s"]); counts.append(r.get("time/threads"))
    tr.close()
print(json.dumps({"times": times, "threads": counts}))
"""

#: GRPO-step settings: (name, model.threads, extra environment).
STEP_SETTINGS = [
    ("torch default, 2 threads (before)", 0, {"AGENTGYM_THREADS": "fixed"}),
    ("governed (after, the default)", 0, {}),
    ("1 thread", 1, {}),
]


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "AGENTGYM_THREADS")}
    return {**env, **extra}


def _with_neighbour(busy: bool, fn):
    burner = subprocess.Popen([sys.executable, "-c", BURN], env={**_env({}), "OMP_NUM_THREADS": "1"}) if busy else None
    try:
        time.sleep(1.0 if busy else 0.0)
        return fn()
    finally:
        if burner is not None:
            burner.kill()
            burner.wait()


def grpo_steps(threads: int, extra: dict[str, str], busy: bool, steps: int) -> dict:
    def go():
        out = subprocess.run(
            [sys.executable, "-c", STEP, str(threads), str(steps)], env=_env(extra), capture_output=True, text=True
        )
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-2000:])
        return json.loads(out.stdout.strip().splitlines()[-1])

    return _with_neighbour(busy, go)


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
    ap.add_argument("--grpo", action="store_true", help="also time GRPO steps before/after the thread governor")
    ap.add_argument("--no-sampler", action="store_true", help="skip part 1 (sampling tokens/s)")
    ap.add_argument("--repeats", type=int, default=3, help="processes per setting and condition (--grpo)")
    ap.add_argument("--steps", type=int, default=4, help="GRPO steps per setting (the first is left out of the mean)")
    args = ap.parse_args()
    rows = []
    print(f"{'threads':>7} {'OMP_WAIT_POLICY':>16} {'idle tok/s':>11} {'busy tok/s':>11} {'busy/idle':>9}")
    for threads in () if args.no_sampler else (1, 2):
        for policy in (None, "PASSIVE"):
            idle, busy = run(threads, policy, False), run(threads, policy, True)
            rows.append({"threads": threads, "policy": policy or "default", "idle": idle, "busy": busy})
            print(f"{threads:>7} {policy or 'default':>16} {idle:>11.1f} {busy:>11.1f} {busy / idle:>9.2f}")
    report: dict = {"cpu_count": os.cpu_count(), "rows": rows}
    if args.grpo:
        report["grpo_step"] = step_rows = []
        print(
            f"\nGRPO step, 1 task x 8 samples x 48 tokens: seconds per step (steps 2-{args.steps} of each process), "
            f"mean ± s.e. over {args.repeats} processes per cell, settings interleaved"
        )
        runs: dict = {(name, busy): [] for name, _, _ in STEP_SETTINGS for busy in (False, True)}
        for _ in range(args.repeats):
            for busy in (False, True):
                for name, threads, extra in STEP_SETTINGS:
                    runs[(name, busy)].append(grpo_steps(threads, extra, busy, args.steps))

        def cell(rs: list) -> tuple[float, float]:
            means = [statistics.fmean(r["times"][1:]) for r in rs]
            se = statistics.stdev(means) / len(means) ** 0.5 if len(means) > 1 else float("nan")
            return statistics.fmean(means), se

        print(f"{'setting':>34} {'idle s':>12} {'busy s':>12} {'busy/idle':>9} {'threads idle/busy':>17}")
        for name, _, _ in STEP_SETTINGS:
            (mi, si), (mb, sb) = cell(runs[(name, False)]), cell(runs[(name, True)])
            used = [
                sorted({t for r in runs[(name, b)] for t in r["threads"][1:] if t is not None}) for b in (False, True)
            ]
            shown = "/".join(",".join(f"{t:g}" for t in u) or "-" for u in used)
            step_rows.append(
                {
                    "setting": name,
                    "idle_s": mi,
                    "idle_se": si,
                    "busy_s": mb,
                    "busy_se": sb,
                    "idle": runs[(name, False)],
                    "busy": runs[(name, True)],
                }
            )
            print(f"{name:>34} {mi:>6.2f} ± {si:<4.2f} {mb:>6.2f} ± {sb:<4.2f} {mb / mi:>9.2f} {shown:>17}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
