"""``python -m agentgym_web doctor`` (is there a browser?) and ``python -m agentgym_web oracle``
(the scripted oracles' success per MiniWoB++ task and per generated-site kind)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def doctor() -> int:
    from agentgym_web.browser import BrowserNotFound, find_browser, get_pool

    try:
        how, path = find_browser()
    except BrowserNotFound as exc:
        print(exc)
        return 1
    print(f"browser: {how} ({path or 'Playwright default'})")
    pool = get_pool()
    t = time.perf_counter()
    pool.ensure_started()
    print(f"launched Chromium {pool._browser.version} in {time.perf_counter() - t:.1f} s (pid {pool.browser_pid})")
    import agentgym

    env = agentgym.make("web/page-v0")
    env.reset(seed=0)
    ok = env.step(env.oracle())[4]["success"]
    env.close()
    print("demo page solved" if ok else "demo page NOT solved")
    return 0 if ok else 1


def oracle(episodes: int, concurrency: int, out: str | None, tasks: list[str] | None) -> int:
    import numpy as np

    import agentgym
    from agentgym import TaskSpec
    from agentgym_web.batch import play
    from agentgym_web.miniwob import TASKS

    report: dict[str, dict[str, float]] = {"miniwob": {}, "sites": {}}
    envs = [agentgym.make("web/miniwob-v0") for _ in range(concurrency)]
    chosen = tasks or list(TASKS)
    specs = [TaskSpec({"task": t}, seed) for t in chosen for seed in range(episodes)]
    t0 = time.perf_counter()
    stats = play(envs, specs)
    by_task: dict[str, list[bool]] = {}
    for r in stats.results:
        by_task.setdefault(r.task.params["task"], []).append(r.success)
    print(f"MiniWoB++ oracle, {episodes} episodes per task ({time.perf_counter() - t0:.0f} s)")
    for t in chosen:
        rate = float(np.mean(by_task.get(t, [False])))
        report["miniwob"][t] = rate
        print(f"  {t:28s} {rate:6.1%}")
    overall = float(np.mean([r.success for r in stats.results]))
    print(f"  {'all episodes':28s} {overall:6.1%}")
    for r in stats.results:
        if not r.success:
            print(
                f"  failed: {r.task.params['task']} seed {r.task.seed} after {r.steps} steps; "
                f"{r.error or (r.errors[-1] if r.errors else 'no error')}"
            )
    for e in envs:
        e.close()
    if not tasks:
        for env_id in ("web/form-v0", "web/shop-v0", "web/wiki-v0", "web/sites-v0"):
            cls = agentgym.spec(env_id).load_class()
            rng = np.random.default_rng(0)
            specs = [cls.sample_train_task(rng) for _ in range(episodes * 2)] + cls.held_out_tasks(episodes, seed=1)
            envs = [agentgym.make(env_id) for _ in range(concurrency)]
            stats = play(envs, specs)
            rate = stats.success_rate
            report["sites"][env_id] = rate
            print(f"  {env_id:28s} {rate:6.1%} of {len(specs)} episodes (training and held-out tasks)")
            for e in envs:
                e.close()
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(report, indent=2))
        print(f"wrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m agentgym_web")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("doctor", help="find and launch the browser, solve the demo page")
    o = sub.add_parser("oracle", help="success of the scripted oracles per MiniWoB++ task and per site kind")
    o.add_argument("--episodes", type=int, default=20)
    o.add_argument("--concurrency", type=int, default=8)
    o.add_argument("--tasks", nargs="*", default=None, help="MiniWoB tasks (default: all supported, and the sites)")
    o.add_argument("--out", default=None, help="write the rates as JSON here")
    args = ap.parse_args(argv)
    if args.cmd == "doctor":
        return doctor()
    return oracle(args.episodes, args.concurrency, args.out, args.tasks)


if __name__ == "__main__":
    sys.exit(main())
