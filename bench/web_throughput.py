"""Steps per second of the web environments with 1, 4 and 16 episodes stepped together,
and the memory each browser context costs.

    python bench/web_throughput.py [--concurrency 1 4 16] [--episodes 32] [--out bench/results/web_throughput.json]

For each workload (the generated sites, ``web/sites-v0`` over its whole space, and a
few MiniWoB++ tasks) and each concurrency C it plays whole episodes with the scripted
oracles, C at a time, stepping them together with :func:`agentgym_web.batch.step_many`
(one Chromium, one context per episode; the browser work of the C envs overlaps on the
pool's event loop). Reported per row:

- ``steps/s``: env steps per second of wall time spent in the stepping rounds (resets
  excluded; what a rollout batch pays per turn once its episodes run);
- ``with resets``: steps per second over the whole run, resets (a new context and page
  load per episode) included;
- ``step p50/p95``: latency of one ``env.step`` inside a round (ms);
- ``reset``: mean latency of one ``env.reset`` (ms); ``ok``: the oracle's success rate;
- ``cpu/step``: CPU seconds (this process and every browser process, user + system)
  spent in the stepping rounds per step; ``cpu floor``: the steps/s the machine's cores
  allow at that cost (cores / cpu per step); ``of floor``: steps/s as a share of it.

Each row is measured three ways (``--through``): with ``step_many`` directly, through
the rollout runner's env pool as training steps envs (threads for envs that declare
``concurrent_steps``, as the web envs do), and through that pool one env after another
(how the runner stepped before): the last two are the before/after of the runner.

The target is 50 steps/s at 16 concurrent episodes. Memory: the browser's processes
(PSS, so shared pages count once) with no context open, then with 16 contexts showing a
generated page, give the cost per context.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import add_out, write_report  # noqa: E402  (bench/ is on sys.path when run)

import agentgym
from agentgym import TaskSpec

TARGET = 50.0
MINIWOB_TASKS = ("click-checkboxes", "enter-text", "search-engine", "social-media")


def workload_tasks(name: str, n: int, seed: int = 0) -> tuple[str, list[TaskSpec]]:
    rng = np.random.default_rng(seed)
    if name == "sites":
        cls = agentgym.spec("web/sites-v0").load_class()
        return "web/sites-v0", [cls.sample_train_task(rng) for _ in range(n)]
    return "web/miniwob-v0", [TaskSpec({"task": MINIWOB_TASKS[i % len(MINIWOB_TASKS)]}, i) for i in range(n)]


def bench(env_id: str, tasks: list[TaskSpec], concurrency: int) -> dict[str, Any]:
    from agentgym_web.batch import reset_many, step_many

    envs = [agentgym.make(env_id, max_turns=50) for _ in range(concurrency)]
    queue = list(tasks)
    live: list[int] = []
    free = list(range(concurrency))
    step_lat: list[float] = []
    reset_lat: list[float] = []
    steps = successes = episodes = 0
    step_time = step_cpu = 0.0
    t_start = time.perf_counter()

    while queue or live:
        starting = []
        while free and queue:
            starting.append((free.pop(0), queue.pop(0)))
        if starting:
            outs = reset_many([_Timed(envs[i], "reset") for i, _ in starting], [t for _, t in starting])
            for (i, _), out in zip(starting, outs):
                if isinstance(out, Exception):
                    free.append(i)
                    episodes += 1
                else:
                    reset_lat.append(out[1])
                    live.append(i)
        if not live:
            continue
        actions = [envs[i].oracle() for i in live]
        c0 = cpu_seconds()
        t = time.perf_counter()
        outs = step_many([_Timed(envs[i], "step") for i in live], actions)
        step_time += time.perf_counter() - t
        step_cpu += cpu_seconds() - c0
        still = []
        for i, out in zip(live, outs):
            if isinstance(out, Exception):
                free.append(i)
                episodes += 1
                continue
            (_, _, term, trunc, info), dt = out
            steps += 1
            step_lat.append(dt)
            if term or trunc:
                episodes += 1
                successes += bool(info["success"])
                free.append(i)
            else:
                still.append(i)
        live = still
    total = time.perf_counter() - t_start
    for e in envs:
        e.close()
    return {
        "env": env_id,
        "concurrency": concurrency,
        "episodes": episodes,
        "steps": steps,
        "steps_per_s": steps / step_time if step_time else 0.0,
        "steps_per_s_with_resets": steps / total if total else 0.0,
        **_cpu_floor(steps, step_cpu, step_time),
        "step_ms_p50": 1000 * float(np.percentile(step_lat, 50)) if step_lat else None,
        "step_ms_p95": 1000 * float(np.percentile(step_lat, 95)) if step_lat else None,
        "reset_ms": 1000 * float(np.mean(reset_lat)) if reset_lat else None,
        "success": successes / max(1, episodes),
        "seconds": total,
    }


def bench_pool(env_id: str, tasks: list[TaskSpec], concurrency: int, threads: int) -> dict[str, Any]:
    """The same episodes through the rollout runner's env pool (what training pays):
    ``threads=1`` steps the batch's envs one after another (the runner before envs could
    declare ``concurrent_steps``), more threads overlap them."""
    from agentgym.rollout.pool import InProcessPool

    pool = InProcessPool(max_threads=threads)
    queue = list(tasks)
    live: list[int] = []
    steps = successes = episodes = 0
    step_time = step_cpu = 0.0
    t_start = time.perf_counter()
    while queue or live:
        n = min(concurrency - len(live), len(queue))
        if n:
            live += [r.handle for r in pool.reset(env_id, queue[:n], {"max_turns": 50})]
            queue = queue[n:]
        actions = pool.oracle(live)
        c0 = cpu_seconds()
        t = time.perf_counter()
        outs = pool.step(live, actions)
        step_time += time.perf_counter() - t
        step_cpu += cpu_seconds() - c0
        still, ended = [], []
        for h, out in zip(live, outs):
            if out.error is not None:
                episodes += 1
                continue
            steps += 1
            if out.terminated or out.truncated:
                episodes += 1
                successes += bool(out.info.get("success"))
                ended.append(h)
            else:
                still.append(h)
        pool.release(ended)
        live = still
    total = time.perf_counter() - t_start
    pool.close()
    return {
        "env": env_id,
        "concurrency": concurrency,
        "episodes": episodes,
        "steps": steps,
        "steps_per_s": steps / step_time if step_time else 0.0,
        "steps_per_s_with_resets": steps / total if total else 0.0,
        **_cpu_floor(steps, step_cpu, step_time),
        "step_ms_p50": None,
        "step_ms_p95": None,
        "reset_ms": None,
        "success": successes / max(1, episodes),
        "seconds": total,
    }


def cpu_seconds() -> float:
    """CPU seconds (user + system) used so far by this process and the browser's processes."""
    import psutil
    from agentgym_web.browser import get_pool

    total = sum(psutil.Process().cpu_times()[:2])
    try:
        root = psutil.Process(get_pool().browser_pid)
        procs = [root, *root.children(recursive=True)]
    except (psutil.Error, TypeError, ValueError):
        return total
    for p in procs:
        try:
            total += sum(p.cpu_times()[:2])
        except psutil.Error:
            pass
    return total


def _cpu_floor(steps: int, cpu: float, wall: float) -> dict[str, float]:
    """What the CPU allows: with every core busy on nothing but these steps, a step costs
    its CPU seconds / cores of wall time. ``of_floor`` is how close the rows came."""
    per_step = cpu / steps if steps else 0.0
    floor = (os.cpu_count() or 1) / per_step if per_step else 0.0
    rate = steps / wall if wall else 0.0
    return {
        "cpu_ms_per_step": 1000 * per_step,
        "cpu_floor_steps_per_s": floor,
        "of_floor": rate / floor if floor else 0.0,
    }


class _Timed:
    """An env whose reset/step return (result, seconds)."""

    def __init__(self, env: Any, what: str):
        self.env, self.what = env, what

    def reset(self, **kw: Any) -> Any:
        t = time.perf_counter()
        out = self.env.reset(**kw)
        return out, time.perf_counter() - t

    def step(self, action: Any) -> Any:
        t = time.perf_counter()
        out = self.env.step(action)
        return out, time.perf_counter() - t


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}ms"


def browser_memory() -> dict[str, float]:
    """PSS and RSS (MiB) of the browser's processes (the pool's Chromium and its children)."""
    import psutil
    from agentgym_web.browser import get_pool

    pid = get_pool().browser_pid
    procs = [psutil.Process(pid)] + psutil.Process(pid).children(recursive=True)
    pss = rss = 0
    for p in procs:
        try:
            info = p.memory_full_info()
            pss += getattr(info, "pss", info.rss)
            rss += info.rss
        except psutil.Error:
            pass
    return {"pss_mib": pss / 2**20, "rss_mib": rss / 2**20, "processes": len(procs)}


def memory_per_context(n: int = 16) -> dict[str, Any]:
    from agentgym_web.batch import reset_many
    from agentgym_web.browser import get_pool

    pool = get_pool()
    pool.ensure_started()
    time.sleep(1.0)
    base = browser_memory()
    cls = agentgym.spec("web/sites-v0").load_class()
    rng = np.random.default_rng(0)
    envs = [agentgym.make("web/sites-v0") for _ in range(n)]
    reset_many(envs, [cls.sample_train_task(rng) for _ in range(n)])
    time.sleep(1.0)
    loaded = browser_memory()
    for e in envs:
        e.close()
    return {
        "contexts": n,
        "base": base,
        "loaded": loaded,
        "pss_mib_per_context": (loaded["pss_mib"] - base["pss_mib"]) / n,
        "rss_mib_per_context": (loaded["rss_mib"] - base["rss_mib"]) / n,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--episodes", type=int, default=32, help="episodes per row (at least 2x the concurrency)")
    ap.add_argument("--workloads", nargs="+", default=["sites", "miniwob"], choices=["sites", "miniwob"])
    ap.add_argument(
        "--network",
        default="isolated",
        choices=["isolated", "host"],
        help="the browser in its own network namespace (default) or on the host's network",
    )
    ap.add_argument(
        "--through",
        nargs="+",
        default=["batch", "pool-sequential", "pool"],
        choices=["batch", "pool-sequential", "pool"],
        help="batch: agentgym_web.batch.step_many; pool: the rollout runner's env pool (threads "
        "for concurrent_steps envs); pool-sequential: that pool stepping one env after another",
    )
    add_out(ap, "web_throughput")
    args = ap.parse_args(argv)

    from agentgym_web.browser import get_pool

    pool = get_pool(network=args.network)
    pool.ensure_started()
    rows = []
    for w in args.workloads:
        for c in args.concurrency:
            env_id, tasks = workload_tasks(w, max(args.episodes, 2 * c))
            bench(env_id, tasks[: min(len(tasks), 2 * c)], c)  # warm-up (page cache, code paths)
            for way in args.through:
                if way == "batch":
                    got = bench(env_id, tasks, c)
                else:
                    got = bench_pool(env_id, tasks, c, threads=1 if way == "pool-sequential" else 16)
                row = {"workload": w, "through": way, **got}
                rows.append(row)
                print(f"  {w:8s} x{c:<3d} {way:16s} {row['steps_per_s']:6.1f} steps/s", file=sys.stderr, flush=True)
    mem = memory_per_context(16)

    print(
        f"\nWeb env throughput (scripted oracles; Chromium {pool._browser.version if pool._browser else '?'}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end)"
    )
    head = (
        f"{'workload':9s} {'through':16s} {'conc':>4s} {'steps/s':>8s} {'w/ resets':>9s} "
        f"{'step p50':>9s} {'step p95':>9s} {'reset':>8s} {'ok':>5s} "
        f"{'cpu/step':>9s} {'cpu floor':>9s} {'of floor':>8s}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['workload']:9s} {r['through']:16s} {r['concurrency']:4d} {r['steps_per_s']:8.1f} "
            f"{r['steps_per_s_with_resets']:9.1f} {_ms(r['step_ms_p50']):>9s} {_ms(r['step_ms_p95']):>9s} "
            f"{_ms(r['reset_ms']):>8s} {r['success']:5.0%} {r['cpu_ms_per_step']:7.1f}ms "
            f"{r['cpu_floor_steps_per_s']:9.1f} {r['of_floor']:8.0%}"
        )
    at16 = [r["steps_per_s"] for r in rows if r["concurrency"] == 16]
    if at16:
        print(
            f"target: {TARGET:.0f} steps/s at 16 concurrent episodes -> "
            + ", ".join(
                f"{r['workload']} ({r['through']}) {r['steps_per_s']:.1f}" for r in rows if r["concurrency"] == 16
            )
        )
    print(
        f"memory: {mem['pss_mib_per_context']:.1f} MiB PSS per context ({mem['rss_mib_per_context']:.1f} MiB RSS); "
        f"browser alone {mem['base']['pss_mib']:.0f} MiB PSS in {mem['base']['processes']} processes, "
        f"{mem['loaded']['pss_mib']:.0f} MiB with {mem['contexts']} contexts in {mem['loaded']['processes']}"
    )
    result = {
        "rows": rows,
        "memory": mem,
        "target_steps_per_s_at_16": TARGET,
        "browser": {
            "source": pool.browser_source,
            "version": pool._browser.version if pool._browser else None,
            "network": pool.network,
        },
        "pool_stats": pool.stats.as_dict(),
    }
    out = Path(args.out)
    write_report(out, result)
    return result


if __name__ == "__main__":
    main()
