"""Per-call cost of the Python tool's sandbox, and the memory of a call that forks until refused.

    python bench/sandbox_latency.py [--calls 200] [--tools-root DIR ...]

``--tools-root`` names an ``envs/tools`` folder to import ``agentgym_tools`` from (give
two, e.g. a checkout of an older commit and this one, to compare them in one run: they
are measured in turns, round-robin, so a busy machine slows both alike). Each prints the
median and spread of ``PythonSandbox.run("print(1)")`` over ``--calls`` calls, and, for
sandboxes that report it, the peak memory of a call whose code forks six children of
200 MB each (issue 33's attack) with the audit hook off.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from common import add_out, write_report

_PROBE = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from agentgym_tools.sandbox import PythonSandbox, SandboxLimits
box = PythonSandbox(SandboxLimits(cpu_seconds=4, wall_seconds=10.0, memory_mb=256), audit_hook=False)
box.run("print(1)")
times = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter()
    r = box.run("print(1)")
    times.append(time.perf_counter() - t)
    assert r.ok, r
fork = '''
import os, time
kids = []
for i in range(6):
    pid = os.fork()
    if pid == 0:
        b = bytearray(200 << 20)
        for j in range(0, len(b), 4096):
            b[j] = 1
        time.sleep(1)
        os._exit(0)
    kids.append(pid)
print([os.waitstatus_to_exitcode(os.waitpid(k, 0)[1]) for k in kids])
'''
r = box.run(fork)
print(json.dumps({"times": times, "budget": getattr(box, "budget", "per-process rlimits"),
                  "fork_status": r.status, "fork_out": r.stdout.strip(),
                  "fork_peak_mb": (getattr(box, "last_peak_bytes", None) or 0) / 2**20 or None}))
box.close()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3, help="measurements per root, taken in turns")
    parser.add_argument("--tools-root", action="append", default=None)
    add_out(parser, "sandbox_latency")
    args = parser.parse_args()
    roots = args.tools_root or [str(Path(__file__).resolve().parent.parent / "envs" / "tools")]
    runs: dict[str, list[dict]] = {r: [] for r in roots}
    for _ in range(args.rounds):
        for root in roots:
            out = subprocess.run(
                [sys.executable, "-c", _PROBE, root, str(args.calls)], capture_output=True, text=True, check=True
            )
            runs[root].append(json.loads(out.stdout.strip().splitlines()[-1]))
    rows = []
    print(f"{'tools root':50} {'median ms':>10} {'p10-p90 ms':>14} {'fork x6 x200MB':>28}")
    for root, measured in runs.items():
        times = sorted(t for m in measured for t in m["times"])
        medians = [statistics.median(m["times"]) * 1000 for m in measured]
        p10, p90 = times[len(times) // 10] * 1000, times[len(times) * 9 // 10] * 1000
        last = measured[-1]
        peak = f"{last['fork_peak_mb']:.0f} MB peak" if last["fork_peak_mb"] else "peak not measured"
        print(f"{root[-50:]:50} {statistics.median(times) * 1000:10.2f} {p10:6.2f}-{p90:6.2f} "
              f"{last['fork_status'] + ', ' + peak:>28}")  # fmt: skip
        rows.append(
            {
                "tools_root": root,
                "median_ms": statistics.median(times) * 1000,
                "round_medians_ms": medians,
                "p10_ms": p10,
                "p90_ms": p90,
                "budget": last["budget"],
                "fork_status": last["fork_status"],
                "fork_children_exit": last["fork_out"],
                "fork_peak_mb": last["fork_peak_mb"],
            }
        )
    write_report(args.out, {"calls": args.calls, "rounds": args.rounds, "rows": rows})


if __name__ == "__main__":
    main()
