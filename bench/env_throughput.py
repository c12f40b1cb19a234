"""Episodes per second of the math environments (reset + one oracle step).

    python bench/env_throughput.py [--seconds S] [--out bench/results/env_throughput.json]

For each family, single-turn and retry variants, it times whole episodes through the
public API (``reset(options={"task": spec})``, ``oracle()``, ``step``) over a pool of
training tasks drawn beforehand (drawing tasks is the teacher's cost, not the env's).
Beside the total it times the parts: the generator alone (given its draws, without
the base class's per-task ``np.random.default_rng``), the verifier alone
(extract + check of the oracle's text), and the base class (``TextEnv`` reset + step
around a subclass that does nothing), so a slow number says where the time goes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import agentgym
from agentgym import Feedback, TaskSpec, TextEnv

FAMILIES = ("arithmetic", "fractions", "linear", "word")
TARGET = 5000.0
POOL = 4096


def _rate(fn, items: list[Any], seconds: float) -> float:
    """Calls of ``fn(item)`` per second, cycling through ``items`` for about ``seconds``."""
    for item in items[:200]:  # warm-up
        fn(item)
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for item in items:
            fn(item)
        n += len(items)
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


class _NullEnv(TextEnv):
    """The base class's own cost: a subclass that returns fixed messages and feedback."""

    def __init__(self, env_cls: type[TextEnv]):
        super().__init__()
        self.param_space = env_cls.param_space  # validate() the same params as the real env
        self._messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]

    def _reset(self, params, rng):
        return [dict(m) for m in self._messages]

    def _step(self, action):
        return Feedback(
            messages=[], reward_parts={"correct": 1.0, "format": 0.1}, terminated=True, success=True
        )


def bench_family(family: str, seconds: float) -> list[dict[str, Any]]:
    from agentgym_math.problem import Draws
    from agentgym_math.verifier import check, extract_answer

    rows = []
    env = agentgym.make(f"math/{family}-v0")
    rng = np.random.default_rng(0)
    specs = [env.sample_train_task(rng) for _ in range(POOL)]

    # Parts, measured once per family (they do not depend on max_turns).
    gen = type(env).generator
    draw_rng = np.random.default_rng(1)
    params = [dict(s.params) for s in specs]
    gen_rate = _rate(lambda p: gen(p, Draws(draw_rng)), params, seconds / 4)
    oracles = []
    for s in specs[:512]:
        env.reset(options={"task": s})
        oracles.append((env.oracle(), env.problem.answer))
    verify_rate = _rate(lambda o: check(extract_answer(o[0]), o[1]), oracles, seconds / 4)
    null = _NullEnv(type(env))
    base_rate = _rate(
        lambda s: (null.reset(options={"task": s}), null.step("x")), specs, seconds / 4
    )

    for variant in ("v0", "retry-v0"):
        env_id = f"math/{family}-{variant}"
        env = agentgym.make(env_id)

        def episode(spec: TaskSpec, env: TextEnv = env, env_id: str = env_id) -> None:
            env.reset(options={"task": spec})
            _, reward, terminated, _, info = env.step(env.oracle())
            if not (terminated and info["success"]):
                raise AssertionError(f"{env_id}: oracle failed on {spec}: {info}")

        rate = _rate(episode, specs, seconds)
        rows.append(
            {
                "env_id": env_id,
                "episodes_per_s": round(rate, 1),
                "us_per_episode": round(1e6 / rate, 1),
                "generate_us": round(1e6 / gen_rate, 1),
                "verify_us": round(1e6 / verify_rate, 1),
                "base_class_us": round(1e6 / base_rate, 1),
                "meets_target": rate >= TARGET,
            }
        )
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    headers = [
        "env id",
        "episodes/s",
        "us/episode",
        "generate us",
        "verify us",
        "base class us",
        f">= {TARGET:g}/s",
    ]
    cells = [
        [
            r["env_id"],
            f"{r['episodes_per_s']:,.0f}",
            f"{r['us_per_episode']:.1f}",
            f"{r['generate_us']:.1f}",
            f"{r['verify_us']:.1f}",
            f"{r['base_class_us']:.1f}",
            "yes" if r["meets_target"] else "NO",
        ]
        for r in rows
    ]
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
        print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
        for c in cells:
            print("  ".join(x.ljust(w) for x, w in zip(c, widths)))
        return
    table = Table(title="math env throughput (reset + one oracle step, one process)")
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i == 0 else "right")
    for c in cells:
        table.add_row(*c)
    # Not a terminal (a log file): wide enough that no column is cut.
    Console(width=None if sys.stdout.isatty() else 140).print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="timing per env id (default 2)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/env_throughput.json"))
    args = parser.parse_args(argv)

    rows = [row for family in FAMILIES for row in bench_family(family, args.seconds)]
    print_table(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "env_throughput",
        "what": "episodes per second, reset + one oracle step, single process",
        "target_episodes_per_s": TARGET,
        "seconds_per_env": args.seconds,
        "task_pool": POOL,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "results": rows,
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if all(r["meets_target"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
