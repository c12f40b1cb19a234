"""Episodes per second of the rollout runner with envs in-process vs in 1 and 2 Ray workers.

    python bench/rollout_scaling.py [--workers 1 2] [--math-episodes 512] [--web-episodes 16]
                                    [--repeats 3] [--out bench/results/rollout_scaling.json]

What is measured is the env side: the policy is a :class:`~agentgym.policies.ScriptedPolicy`
that answers a fixed short text at once, and the env is wrapped so that it ignores that
text and plays its own oracle (``env.oracle()``, as in bench/env_throughput.py and
bench/web_throughput.py), so every episode runs to its real end. Each row plays a batch
of whole episodes through :meth:`agentgym.rollout.RolloutRunner.run` (one batched
generate and one batched env step per round) and reports:

- ``episodes/s``: episodes per second of wall time of the batch (best of ``--repeats``,
  after one warm-up batch that builds the envs: browsers, pages);
- ``steps/s``: env steps per second over the same time;
- ``env s``: the part of that time spent waiting for the pool (reset + step + release
  calls), i.e. env work plus, for Ray, messaging; the rest is the runner and policy;
- ``overhead/ep``: (t_ray - t_inprocess) / episodes, the time Ray adds per episode
  (negative when the workers' parallelism wins), and ``env overhead/ep`` the same from
  the pool times alone (less noisy: the runner's own work is the same in every row).

Workloads: ``math/arithmetic-v0`` (one step per episode, microseconds of env work: the
runner's own costs and Ray's messaging dominate) and ``web/sites-v0`` (Chromium pages, a
few steps per episode, tens of milliseconds a step: where workers can pay off). The web
rows are skipped, with the reason, when agentgym_web, Playwright or Chromium is missing.
The trainer process itself (chat template, tokenizer, scripted policy) runs on one of the
machine's cores in every row.
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
from agentgym import TaskSpec, TextEnv


class OracleActs(TextEnv):
    """An env that ignores the policy's text and plays the wrapped env's oracle."""

    def __init__(self, inner: str, **kwargs: Any):
        super().__init__()
        self.inner = agentgym.make(inner, **kwargs)
        self.max_turns = getattr(self.inner, "max_turns", 1)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        out = self.inner.reset(seed=seed, options=options)
        self.task = self.inner.task
        return out

    def step(self, action: str):
        return self.inner.step(self.inner.unwrapped.oracle())

    def close(self) -> None:
        self.inner.close()


def tasks_for(env_id: str, n: int, seed: int = 0) -> list[TaskSpec]:
    cls = agentgym.spec(env_id).load_class()
    rng = np.random.default_rng(seed)
    return [cls.sample_train_task(rng) for _ in range(n)]


def web_unavailable() -> str | None:
    """Why the web rows cannot run here (None when they can)."""
    try:
        import agentgym_web  # noqa: F401
        import playwright  # noqa: F401
    except ImportError as exc:
        return f"agentgym_web or playwright is not installed ({exc.name})"
    try:
        env = agentgym.make("web/sites-v0")
        env.reset(options={"task": tasks_for("web/sites-v0", 1)[0]})
        env.close()
    except Exception as exc:  # no Chromium, a sandbox that forbids it, ...
        return f"web/sites-v0 cannot start a browser here: {exc!r}"[:300]
    return None


class _TimedPool:
    """A pool proxy that adds up the wall time of its calls."""

    def __init__(self, pool: Any):
        self.pool, self.seconds = pool, 0.0

    @property
    def stats(self) -> Any:
        return self.pool.stats

    def _timed(self, name: str, *args: Any) -> Any:
        t = time.perf_counter()
        try:
            return getattr(self.pool, name)(*args)
        finally:
            self.seconds += time.perf_counter() - t

    def reset(self, *args: Any) -> Any:
        return self._timed("reset", *args)

    def step(self, *args: Any) -> Any:
        return self._timed("step", *args)

    def release(self, *args: Any) -> Any:
        return self._timed("release", *args)

    def close(self) -> None:
        self.pool.close()


def bench_row(
    workload: str,
    env_id: str,
    env_kwargs: dict[str, Any],
    tasks: list[TaskSpec],
    backend: str,
    workers: int,
    repeats: int,
    chat: Any,
) -> dict[str, Any]:
    from agentgym.policies import SamplingParams, ScriptedPolicy
    from agentgym.rollout import InProcessPool, RolloutRunner

    if backend == "ray":
        from agentgym.rollout.ray_pool import RayPool

        pool: Any = RayPool(workers)
    else:
        pool = InProcessPool()
    pool = _TimedPool(pool)
    runner = RolloutRunner(
        ScriptedPolicy(chat, lambda text: "ok"),
        SamplingParams(max_new_tokens=4),
        env_kwargs={"inner": env_id, **env_kwargs},
        max_episode_tokens=1 << 20,
        pool=pool,
    )
    try:
        runner.run("bench/oracle-v0", tasks[: max(2 * max(workers, 1), len(tasks) // 8)])  # warm-up: envs built
        best = None
        for _ in range(repeats):
            pool.seconds = 0.0
            t = time.perf_counter()
            eps = runner.run("bench/oracle-v0", tasks)
            dt = time.perf_counter() - t
            if best is None or dt < best[0]:
                best = (dt, pool.seconds, eps, runner.last_stats)
    finally:
        runner.close()
    dt, env_s, eps, st = best
    steps = sum(e.num_turns for e in eps)
    return {
        "workload": workload,
        "env": env_id,
        "backend": backend,
        "workers": workers if backend == "ray" else 0,
        "episodes": len(eps),
        "steps": steps,
        "seconds": dt,
        "env_seconds": env_s,
        "episodes_per_s": len(eps) / dt,
        "steps_per_s": steps / dt,
        "success": float(np.mean([e.success for e in eps])) if eps else 0.0,
        "dropped": st.dropped_env_errors,
        "worker_restarts": st.worker_restarts,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--math-episodes", type=int, default=512)
    ap.add_argument("--web-episodes", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--workloads", nargs="+", default=["math", "web"], choices=["math", "web"])
    add_out(ap, "rollout_scaling")
    args = ap.parse_args(argv)

    import ray

    from agentgym.policies import ChatFormat
    from agentgym.policies.models import load_tokenizer

    agentgym.register("bench/oracle-v0", OracleActs, description="plays the wrapped env's oracle")
    chat = ChatFormat(load_tokenizer())
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    plan = []
    skipped: dict[str, str] = {}
    if "math" in args.workloads:
        plan.append(("math", "math/arithmetic-v0", {}, tasks_for("math/arithmetic-v0", args.math_episodes)))
    if "web" in args.workloads:
        why = web_unavailable()
        if why is None:
            plan.append(("web", "web/sites-v0", {"max_turns": 50}, tasks_for("web/sites-v0", args.web_episodes)))
        else:
            skipped["web"] = why
            print(f"skipping the web rows: {why}", file=sys.stderr)
    rows = []
    try:
        for workload, env_id, kw, tasks in plan:
            base = bench_row(workload, env_id, kw, tasks, "inprocess", 0, args.repeats, chat)
            base["overhead_ms_per_episode"] = base["env_overhead_ms_per_episode"] = 0.0
            rows.append(base)
            print(f"  {workload:5s} in-process  {base['episodes_per_s']:8.1f} episodes/s", file=sys.stderr, flush=True)
            for n in args.workers:
                row = bench_row(workload, env_id, kw, tasks, "ray", n, args.repeats, chat)
                row["overhead_ms_per_episode"] = 1000 * (row["seconds"] - base["seconds"]) / max(row["episodes"], 1)
                row["env_overhead_ms_per_episode"] = (
                    1000 * (row["env_seconds"] - base["env_seconds"]) / max(row["episodes"], 1)
                )
                rows.append(row)
                print(
                    f"  {workload:5s} ray x{n}      {row['episodes_per_s']:8.1f} episodes/s",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        ray.shutdown()

    print(
        f"\nRollout scaling: envs in-process vs Ray workers (scripted policy, env oracles; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end)"
    )
    head = (
        f"{'workload':9s} {'backend':12s} {'episodes':>8s} {'steps':>6s} {'seconds':>8s} {'env s':>7s} "
        f"{'episodes/s':>10s} {'steps/s':>8s} {'overhead/ep':>11s} {'env overhead/ep':>15s} {'ok':>5s}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        name = "in-process" if r["backend"] == "inprocess" else f"ray x{r['workers']}"
        over = "" if r["backend"] == "inprocess" else f"{r['overhead_ms_per_episode']:+9.2f}ms"
        env_over = "" if r["backend"] == "inprocess" else f"{r['env_overhead_ms_per_episode']:+9.2f}ms"
        print(
            f"{r['workload']:9s} {name:12s} {r['episodes']:8d} {r['steps']:6d} {r['seconds']:8.2f} "
            f"{r['env_seconds']:7.2f} "
            f"{r['episodes_per_s']:10.1f} {r['steps_per_s']:8.1f} {over:>11s} {env_over:>15s} {r['success']:5.0%}"
        )
    for w, why in skipped.items():
        print(f"{w}: skipped ({why})")
    result = {
        "benchmark": "rollout_scaling",
        "what": "episodes per second through RolloutRunner.run with a scripted policy and env oracles; "
        "envs in-process vs in N Ray workers; overhead = (t_ray - t_inprocess) / episodes",
        "rows": rows,
        "skipped": skipped,
        "repeats": args.repeats,
    }
    out = Path(args.out)
    write_report(out, result)
    return result


if __name__ == "__main__":
    main()
