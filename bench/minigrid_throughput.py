"""Steps per second of the MiniGrid text environments, played by minigrid's BabyAI bot.

    python bench/minigrid_throughput.py [--seconds S] [--out bench/results/minigrid_throughput.json]

For each family (``minigrid/<family>-v0``) it plays whole episodes of training tasks
drawn beforehand, one action word per ``env.step(text)``, in two ways:

- ``oracle``: ``env.oracle()`` (the BabyAI bot reading the true state, advising mode);
- ``text bot``: :class:`agentgym_minigrid.textbot.TextBot`, the same bot acting only on
  the messages the env returns (it rebuilds the map from the text).

Each row gives the env's own rate (steps per second of time spent inside ``reset`` and
``step``, what a rollout worker pays for the environment; resets are mostly minigrid's
level generation, which BabyAI repeats until a level passes its checks), the rate of
``step`` alone, the rate with the bot's thinking included, and the bot's success rate.
The target is 2,000 env steps per second (``reset`` included).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np
from common import add_out, write_report  # noqa: E402  (bench/ is on sys.path when run)

import agentgym

FAMILIES = ("empty", "doorkey", "multiroom", "keycorridor", "goto", "open", "pickup", "putnext")
TARGET = 2000.0


def bench_family(family: str, mode: str, seconds: float, seed: int = 0) -> dict[str, Any]:
    from agentgym_minigrid.textbot import TextBot

    env = agentgym.make(f"minigrid/{family}-v0", max_turns=1_000_000)
    rng = np.random.default_rng(seed)
    env_time = bot_time = reset_time = 0.0
    steps = episodes = successes = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        spec = env.sample_train_task(rng)
        t0 = time.perf_counter()
        obs, _ = env.reset(options={"task": spec})
        reset_time += time.perf_counter() - t0
        bot = TextBot() if mode == "text bot" else None
        while True:
            t0 = time.perf_counter()
            action = bot.act(obs) if bot is not None else env.oracle()
            t1 = time.perf_counter()
            obs, _, terminated, truncated, info = env.step(action)
            t2 = time.perf_counter()
            bot_time += t1 - t0
            env_time += t2 - t1
            steps += 1
            if terminated or truncated:
                break
        episodes += 1
        successes += bool(info["success"])
    env_rate = steps / (env_time + reset_time)
    return {
        "family": family,
        "bot": mode,
        "episodes": episodes,
        "steps": steps,
        "success_rate": round(successes / episodes, 4),
        "env_steps_per_s": round(env_rate, 1),
        "with_bot_steps_per_s": round(steps / (env_time + reset_time + bot_time), 1),
        "step_only_steps_per_s": round(steps / env_time, 1),
        "env_us_per_step": round(1e6 * (env_time + reset_time) / steps, 1),
        "reset_us": round(1e6 * reset_time / episodes, 1),
        "bot_us_per_step": round(1e6 * bot_time / steps, 1),
        "meets_target": env_rate >= TARGET,
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    headers = [
        "family",
        "bot",
        "episodes",
        "success",
        "env steps/s",
        "step() only/s",
        "with bot steps/s",
        "reset us",
        "bot us/step",
        f">= {TARGET:g}/s",
    ]
    cells = [
        [
            r["family"],
            r["bot"],
            str(r["episodes"]),
            f"{100 * r['success_rate']:.1f}%",
            f"{r['env_steps_per_s']:,.0f}",
            f"{r['step_only_steps_per_s']:,.0f}",
            f"{r['with_bot_steps_per_s']:,.0f}",
            f"{r['reset_us']:.0f}",
            f"{r['bot_us_per_step']:.0f}",
            "yes" if r["meets_target"] else "NO",
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    for c in cells:
        print("  ".join(x.ljust(w) for x, w in zip(c, widths)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="timing per family and bot (default 3)")
    parser.add_argument("--families", nargs="*", default=list(FAMILIES))
    add_out(parser, "minigrid_throughput")
    args = parser.parse_args(argv)

    rows = [bench_family(f, mode, args.seconds) for f in args.families for mode in ("oracle", "text bot")]
    print_table(rows)
    total_steps = sum(r["steps"] for r in rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "minigrid_throughput",
        "what": "env.step(text) per second with minigrid's BabyAI bot choosing the words, one process",
        "target_env_steps_per_s": TARGET,
        "seconds_per_row": args.seconds,
        "python": sys.version.split()[0],
        "total_steps": total_steps,
        "results": rows,
    }
    write_report(args.out, report)
    return 0 if all(r["meets_target"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
