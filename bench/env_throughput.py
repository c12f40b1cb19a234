"""Throughput of the environments with oracle policies: math, tool use, MiniGrid.

    python bench/env_throughput.py [--suites math tools minigrid] [--seconds S]
                                   [--out bench/results/env_throughput.json]

Math: episodes per second (reset + one oracle step).

For each family, single-turn and retry variants, it times whole episodes through the
public API (``reset(options={"task": spec})``, ``oracle()``, ``step``) over a pool of
training tasks drawn beforehand (drawing tasks is the teacher's cost, not the env's).
Beside the total it times the parts: the generator alone (given its draws, without
the base class's per-task ``np.random.default_rng``), the verifier alone
(extract + check of the oracle's text), and the base class (``TextEnv`` reset + step
around a subclass that does nothing), so a slow number says where the time goes.

Tools: steps per second of whole oracle episodes (every reply parsed, every call run,
the episode scored), per world, with and without noise; and the sandbox's cost per
Python call, beside running the same code with ``exec`` in-process (the ratio is what
the isolation costs).

MiniGrid: the bot-driven rows of ``bench/minigrid_throughput.py`` (env steps per
second, with the BabyAI bot acting through the text interface).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import add_out, write_report  # noqa: E402  (bench/ is on sys.path when run)

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
        return Feedback(messages=[], reward_parts={"correct": 1.0, "format": 0.1}, terminated=True, success=True)


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
    base_rate = _rate(lambda s: (null.reset(options={"task": s}), null.step("x")), specs, seconds / 4)

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


TOOLS_TARGET = 1000.0  # steps/s for the in-process worlds; the Python world is bound by process start-up


def bench_tools(seconds: float) -> list[dict[str, Any]]:
    """Oracle episodes on each tool world: steps/s and episodes/s."""
    rows = []
    for world in ("calculator", "database", "calendar", "python"):
        env = agentgym.make(f"tools/{world}-v0")
        cls = type(env.unwrapped)
        for noise in (0.0, 0.4):
            rng = np.random.default_rng(0)
            specs = []
            for _ in range(256 if world != "python" else 16):
                spec = cls.sample_train_task(rng)
                specs.append(TaskSpec({**spec.params, "noise": noise}, spec.seed))
            steps = [0]

            def episode(spec: TaskSpec, env: Any = env, steps: list[int] = steps) -> None:
                env.reset(options={"task": spec})
                while True:
                    _, _, term, trunc, info = env.step(env.unwrapped.oracle())
                    steps[0] += 1
                    if term or trunc:
                        break
                if not info["success"]:
                    raise AssertionError(f"{env.spec.id}: oracle failed on {spec}")

            for spec in specs[:8]:  # warm-up
                episode(spec)
            steps[0], n, start = 0, 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                episode(specs[n % len(specs)])
                n += 1
            elapsed = time.perf_counter() - start
            rows.append(
                {
                    "env_id": f"tools/{world}-v0",
                    "noise": noise,
                    "steps_per_s": round(steps[0] / elapsed, 1),
                    "episodes_per_s": round(n / elapsed, 1),
                    "steps_per_episode": round(steps[0] / n, 2),
                    "meets_target": world == "python" or steps[0] / elapsed >= TOOLS_TARGET,
                }
            )
    return rows


SANDBOX_CODE = {
    "print": "print(42)",
    "primes below 3000": "n = 3000\nsieve = [True] * n\nfor i in range(2, n):\n    if sieve[i]:\n        for j in "
    "range(i * i, n, i):\n            sieve[j] = False\nprint(sum(sieve[2:]))",
    "import json, math": "import json, math\nprint(json.dumps([math.pi]))",
}


def bench_sandbox(seconds: float) -> list[dict[str, Any]]:
    """Cost of one sandboxed Python call in each mode, side by side, beside in-process exec.

    ``namespaces`` (the default: a confined worker forks each call) against ``hook`` (a
    fresh ``python -I -S`` per call with rlimits and the audit hook: the design before the
    worker, and what its per-call start-up cost was), interleaved round by round so both
    see the same machine load.
    """
    import contextlib
    import io
    import warnings

    from agentgym_tools.sandbox import PythonSandbox

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        boxes = {"namespaces": PythonSandbox(), "hook": PythonSandbox(mode="hook")}
    rows = []
    for name, code in SANDBOX_CODE.items():
        times: dict[str, list[float]] = {mode: [] for mode in boxes}
        start = time.perf_counter()
        while time.perf_counter() - start < seconds or len(times["hook"]) < 5:
            for mode, box in boxes.items():
                t = time.perf_counter()
                assert box.run(code).ok, mode
                times[mode].append(time.perf_counter() - t)
        m, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 4 or m < 5:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(code, "<bench>", "exec"), {})
            m += 1
        plain = (time.perf_counter() - t0) / m
        med = {mode: float(np.median(v)) for mode, v in times.items()}
        rows.append(
            {
                "code": name,
                "namespaces_ms": round(med["namespaces"] * 1e3, 2),
                "hook_ms": round(med["hook"] * 1e3, 2),
                "hook_over_namespaces": round(med["hook"] / med["namespaces"], 1),
                "in_process_exec_ms": round(plain * 1e3, 3),
                "calls_each": len(times["hook"]),
            }
        )
    for box in boxes.values():
        box.close()
    return rows


def _table(title: str, headers: list[str], cells: list[list[str]]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
        print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
        for c in cells:
            print("  ".join(x.ljust(w) for x, w in zip(c, widths)))
        return
    table = Table(title=title)
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i == 0 else "right")
    for c in cells:
        table.add_row(*c)
    Console(width=None if sys.stdout.isatty() else 140).print(table)


def print_tools(rows: list[dict[str, Any]], sandbox_rows: list[dict[str, Any]]) -> None:
    _table(
        "tool envs: whole oracle episodes (parse, run every call, score)",
        [
            "env id",
            "noise",
            "steps/s",
            "episodes/s",
            "steps/episode",
            f">= {TOOLS_TARGET:g} steps/s",
        ],
        [
            [
                r["env_id"],
                f"{r['noise']:.1f}",
                f"{r['steps_per_s']:,.0f}",
                f"{r['episodes_per_s']:,.0f}",
                f"{r['steps_per_episode']:.2f}",
                "n/a" if r["env_id"] == "tools/python-v0" else ("yes" if r["meets_target"] else "NO"),
            ]
            for r in rows
        ],
    )
    _table(
        "Python tool: median ms per sandboxed call, namespaces (default) vs hook (fresh interpreter), same run",
        ["code", "namespaces ms", "hook ms", "hook / namespaces", "exec ms", "calls each"],
        [
            [
                r["code"],
                f"{r['namespaces_ms']:.1f}",
                f"{r['hook_ms']:.1f}",
                f"{r['hook_over_namespaces']:.1f}x",
                f"{r['in_process_exec_ms']:.3f}",
                str(r["calls_each"]),
            ]
            for r in sandbox_rows
        ],
    )


def print_math(rows: list[dict[str, Any]]) -> None:
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
    parser.add_argument(
        "--suites",
        nargs="+",
        default=["math", "tools", "minigrid"],
        choices=["math", "tools", "minigrid"],
    )
    parser.add_argument("--seconds", type=float, default=2.0, help="timing per row (default 2)")
    add_out(parser, "env_throughput")
    args = parser.parse_args(argv)

    report: dict[str, Any] = {
        "benchmark": "env_throughput",
        "seconds_per_row": args.seconds,
    }
    ok = True
    if "math" in args.suites:
        rows = [row for family in FAMILIES for row in bench_family(family, args.seconds)]
        print_math(rows)
        report["math"] = {
            "what": "episodes per second, reset + one oracle step, single process",
            "target_episodes_per_s": TARGET,
            "task_pool": POOL,
            "results": rows,
        }
        ok &= all(r["meets_target"] for r in rows)
    if "tools" in args.suites:
        rows, sandbox_rows = bench_tools(args.seconds), bench_sandbox(args.seconds)
        print_tools(rows, sandbox_rows)
        report["tools"] = {
            "what": "steps per second of whole oracle episodes; sandboxed Python call cost vs in-process exec",
            "target_steps_per_s": TOOLS_TARGET,
            "results": rows,
            "sandbox": sandbox_rows,
            "sandbox_mode_default": "namespaces",
        }
        ok &= all(r["meets_target"] for r in rows)
    if "minigrid" in args.suites:
        sys.path.insert(0, str(Path(__file__).parent))
        import minigrid_throughput as mg

        rows = [mg.bench_family(f, mode, args.seconds) for f in mg.FAMILIES for mode in ("oracle", "text bot")]
        mg.print_table(rows)
        report["minigrid"] = {
            "what": "env steps per second with the BabyAI bot",
            "target_steps_per_s": mg.TARGET,
            "results": rows,
        }
    write_report(args.out, report)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
