"""``python -m agentgym_multiagent play ENV_ID --p0 KIND --p1 KIND --games N``: scripted
players against each other, with a win-rate table. ``all`` as a kind plays every kind."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agentgym_multiagent")
    sub = parser.add_subparsers(dest="command", required=True)
    play = sub.add_parser("play", help="scripted players against each other; prints a win-rate table")
    play.add_argument("env_id")
    play.add_argument("--p0", required=True, help="scripted kind of seat 0 (or 'all')")
    play.add_argument("--p1", required=True, help="scripted kind of seat 1 (or 'all')")
    play.add_argument("--games", type=int, default=200)
    play.add_argument("--seed", type=int, default=0)
    play.add_argument(
        "--param", "-p", action="append", default=[], metavar="NAME=VALUE", help="fix a task parameter (repeatable)"
    )
    args = parser.parse_args(argv)

    import agentgym
    from agentgym_multiagent.play import play_games

    try:
        params = dict(p.split("=", 1) for p in args.param)
    except ValueError:
        parser.error("--param takes NAME=VALUE")
    params = {k: _value(v) for k, v in params.items()}
    probe = agentgym.make(args.env_id)
    kinds = list(probe.scripted_kinds)
    seats = probe.possible_agents
    firsts = kinds if args.p0 == "all" else [args.p0]
    seconds = kinds if args.p1 == "all" else [args.p1]
    try:
        for k0 in firsts:
            for k1 in seconds:
                report = play_games(
                    args.env_id, {seats[0]: k0, seats[1]: k1}, args.games, seed=args.seed, params=params
                )
                print(report.table())
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
