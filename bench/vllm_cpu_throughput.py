"""Sampling on a CPU: the transformers sampler against vLLM's CPU build, same prompts, same threads.

Each backend runs in a fresh process with ``--threads`` OpenMP threads (vLLM's worker:
``VLLM_CPU_OMP_THREADS_BIND=nobind`` and ``OMP_NUM_THREADS``), samples TASKS x GROUP
completions of up to TOKENS tokens of the default model at temperature 1 (fp32 both),
and reports start-up time (policy construction), tokens/s of the timed batch (after one
warm-up batch), resident memory of the process tree, and for vLLM the time of one weight
sync. Run it from the virtualenv bench/vllm_cpu_setup.sh makes:

    /work/vllm-venv/bin/python bench/vllm_cpu_throughput.py --shape 1x8x48 --shape 8x8x128
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_out, write_report  # noqa: E402

ONE = r"""
import json, sys, time
import psutil, torch
backend, tasks, group, tokens, threads = sys.argv[1], *map(int, sys.argv[2:6])
torch.set_num_threads(threads)
from agentgym.policies import SamplingParams
from agentgym.policies.models import load_model
t0 = time.perf_counter()
model, tok = load_model("smollm2-135m")
if backend == "vllm":
    from agentgym.policies.vllm_policy import VLLMPolicy, vllm_model_path
    pol = VLLMPolicy(vllm_model_path("smollm2-135m"), tok, seed=0, max_model_len=1024)
else:
    from agentgym.policies.transformers_policy import TransformersPolicy
    pol = TransformersPolicy(model, tok, seed=0)
startup = time.perf_counter() - t0
prompts = [pol.chat.prompt_ids([{"role": "user", "content": f"What is {t} + {2 * t + 1}? Think, then answer."}])
           for t in range(tasks) for _ in range(group)]
sp = SamplingParams(max_new_tokens=tokens, temperature=1.0)
pol.generate(prompts[:group], SamplingParams(max_new_tokens=4, temperature=1.0))  # warm up
t0 = time.perf_counter()
out = pol.generate(prompts, sp, seeds=list(range(len(prompts))))
gen = time.perf_counter() - t0
n = sum(len(c.token_ids) for c in out)
row = {"backend": backend, "shape": f"{tasks}x{group}x{tokens}", "threads": threads, "startup_s": startup,
       "tokens": n, "generate_s": gen, "tokens_per_s": n / gen}
if backend == "vllm":
    t0 = time.perf_counter()
    pol.sync_weights(model.state_dict().items())
    row["sync_s"] = time.perf_counter() - t0
me = psutil.Process()
row["rss_gib"] = sum(p.memory_info().rss for p in [me, *me.children(recursive=True)]) / 2**30
print("ROW " + json.dumps(row), flush=True)
"""


def run(backend: str, shape: str, threads: int) -> dict:
    tasks, group, tokens = (int(x) for x in shape.split("x"))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "VLLM_CPU_OMP_THREADS_BIND": "nobind"}
    cmd = [sys.executable, "-c", ONE, backend, str(tasks), str(group), str(tokens), str(threads)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    rows = [line[4:] for line in out.stdout.splitlines() if line.startswith("ROW ")]
    if out.returncode != 0 or not rows:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(rows[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", action="append", help="TASKSxGROUPxTOKENS (repeatable; default 1x8x48)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--backend", action="append", choices=["transformers", "vllm"])
    add_out(ap, "vllm_cpu_throughput")
    args = ap.parse_args()
    rows = []
    head = f"{'shape':>9} {'backend':>12} {'start s':>8} {'tokens':>6} {'tok/s':>7} {'RSS GiB':>7} {'sync s':>6}"
    print(head)
    for shape in args.shape or ["1x8x48"]:
        for backend in args.backend or ["transformers", "vllm"]:
            r = run(backend, shape, args.threads)
            rows.append(r)
            sync = f"{r['sync_s']:>6.2f}" if "sync_s" in r else f"{'-':>6}"
            print(
                f"{r['shape']:>9} {backend:>12} {r['startup_s']:>8.1f} {r['tokens']:>6} "
                f"{r['tokens_per_s']:>7.1f} {r['rss_gib']:>7.2f} {sync}",
                flush=True,
            )
    write_report(args.out, {"threads": args.threads, "load_average_1min_before": os.getloadavg()[0], "rows": rows})


if __name__ == "__main__":
    main()
