"""Which TextArena games pass PettingZoo's API tests through agentgym's wrapper.

For every TextArena id (less its ``-raw``/``-train`` variants) that starts a game with two
players, run PettingZoo's ``api_test`` and ``seed_test`` on ``textarena:<id>`` and record
pass or the first failure. Prints a table and writes JSON (default
``results/textarena_api.json``); docs/interop.md lists the outcome.

    OMP_NUM_THREADS=1 python bench/textarena_api.py [--out FILE] [--timeout 60]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import signal
import time
import warnings
from pathlib import Path


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def check(game_id: str) -> tuple[str, str]:
    """("pass" | "not two-player" | "fail", reason) for one TextArena id."""
    import textarena as ta
    from pettingzoo.test import api_test, seed_test

    import agentgym

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            probe = ta.make(game_id)
            probe.reset(num_players=2, seed=0)
    except _Timeout:
        raise
    except Exception as exc:
        return "not two-player", f"{type(exc).__name__}: {str(exc)[:120]}"
    env_id = f"textarena:{game_id}"
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            api_test(agentgym.make(env_id), num_cycles=60)
            seed_test(lambda: agentgym.make(env_id), num_cycles=60)
    except _Timeout:
        raise
    except Exception as exc:
        return "fail", f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
    return "pass", ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="results/textarena_api.json")
    ap.add_argument("--timeout", type=int, default=60, help="seconds per game")
    args = ap.parse_args()
    import textarena as ta

    ids = [
        g
        for g in ta.envs.registration.ENV_REGISTRY
        if not (g.endswith(("-raw", "-train")) or "-raw-" in g or "-train-" in g)
    ]
    signal.signal(signal.SIGALRM, _alarm)
    rows = []
    for game_id in ids:
        start = time.perf_counter()
        signal.alarm(args.timeout)
        try:
            verdict, reason = check(game_id)
        except _Timeout:
            verdict, reason = "fail", f"no answer within {args.timeout} s"
        finally:
            signal.alarm(0)
        rows.append({"id": game_id, "verdict": verdict, "reason": reason, "seconds": time.perf_counter() - start})
        if verdict != "not two-player":
            print(f"{game_id:40s} {verdict:6s} {reason}", flush=True)
    two = [r for r in rows if r["verdict"] != "not two-player"]
    passed = [r for r in two if r["verdict"] == "pass"]
    print(f"\n{len(passed)} of {len(two)} two-player TextArena ids pass api_test and seed_test ({len(ids)} ids tried)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"tried": len(ids), "two_player": len(two), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
