"""A simultaneous-move negotiation over a few kinds of items (general-sum).

Items of 2 or 3 kinds (books, hats, balls) lie on the table in small counts. Each agent
values each kind privately; both value the whole table at :data:`TOTAL_VALUE` points,
but their values differ, so some splits are worth more to both than others. Every round
both agents say at once which items *they* take (``books=1 hats=2 balls=0``). When the
two requests fit together (for every kind, the sum does not exceed the count) it is a
deal: each gets what it asked for (what neither asked for stays on the table). Without
a deal after ``max_rounds`` rounds both get nothing. After each round each agent sees
the other's request.

The game is general-sum, not zero-sum: rewards are each agent's own share of its own
value, and a deal can give both a lot, or no deal can give both nothing.
"""

from __future__ import annotations

import itertools
import re
from typing import Any, ClassVar

import numpy as np

from agentgym.env import Message
from agentgym.multiagent import Outcome, TextParallelEnv
from agentgym.spaces import Categorical, HeldOut, Integer, Params, ParamSpace, Region
from agentgym_multiagent.parsing import MOVE_CHARS

PLAYERS = ("player_0", "player_1")
ITEMS = ("books", "hats", "balls")
TOTAL_VALUE = 10
_PAIR = re.compile(r"([A-Za-z]+)\s*[=:]\s*(-?\d+)")


def value_vectors(counts: tuple[int, ...], total: int = TOTAL_VALUE) -> list[tuple[int, ...]]:
    """Every per-item value vector (non-negative integers) worth ``total`` for the whole table."""
    return [
        v
        for v in itertools.product(range(total + 1), repeat=len(counts))
        if sum(c * x for c, x in zip(counts, v)) == total
    ]


def worth(take: tuple[int, ...], values: tuple[int, ...]) -> int:
    """Value of the items ``take`` to an agent with per-item ``values``."""
    return sum(t * v for t, v in zip(take, values))


def fits(a: tuple[int, ...], b: tuple[int, ...], counts: tuple[int, ...]) -> bool:
    """True when the two requests together do not exceed the table."""
    return all(x + y <= c for x, y, c in zip(a, b, counts))


def show(take: tuple[int, ...]) -> str:
    """The canonical text of a request: ``books=1 hats=2``."""
    return " ".join(f"{ITEMS[i]}={n}" for i, n in enumerate(take))


def parse_request(text: str, counts: tuple[int, ...]) -> tuple[tuple[int, ...] | None, str | None]:
    """``(request, None)`` for a usable ``books=1 hats=2 ...`` in ``text``, else ``(None, error)``.

    Case-insensitive; ``book`` or ``books``, ``=`` or ``:``; every kind must be named once.
    """
    names = ITEMS[: len(counts)]
    form = f"Reply in exactly this form: {show(tuple(0 for _ in counts))} (how many of each you take)."
    if len(text) > MOVE_CHARS:
        return None, f"your reply is too long to read ({len(text)} characters). {form}"
    asked: dict[int, int] = {}
    for name, num in _PAIR.findall(text):
        word = name.lower()
        kind = next((i for i, n in enumerate(names) if word in (n, n[:-1])), None)
        if kind is None:
            return None, f"there are no {word} here; the items are {', '.join(names)}. {form}"
        n = int(num)
        if kind in asked and asked[kind] != n:
            return None, f"you named {names[kind]} twice with different numbers. {form}"
        asked[kind] = n
    if not asked:
        return None, f"no request found. {form}"
    missing = [names[i] for i in range(len(names)) if i not in asked]
    if missing:
        return None, f"say how many {' and '.join(missing)} you take too (0 is fine). {form}"
    for i, n in asked.items():
        if n < 0:
            return None, f"you cannot take a negative number of {names[i]}. {form}"
        if n > counts[i]:
            return (
                None,
                f"you asked for {n} {names[i]} but there {'is' if counts[i] == 1 else 'are'} only {counts[i]}. {form}",
            )
    return tuple(asked[i] for i in range(len(names))), None


def fair_request(
    values: tuple[int, ...], counts: tuple[int, ...], other_last: tuple[int, ...] | None
) -> tuple[int, ...]:
    """Ask for half of one's own value: accept what the other left if that is enough, else
    take the most valuable units until reaching half."""
    target = (TOTAL_VALUE + 1) // 2
    if other_last is not None:
        rest = tuple(c - o for c, o in zip(counts, other_last))
        if worth(rest, values) >= target:
            return rest
    take = [0] * len(counts)
    got = 0
    for i in sorted(range(len(counts)), key=lambda i: -values[i]):
        while take[i] < counts[i] and got < target and values[i] > 0:
            take[i] += 1
            got += values[i]
    return tuple(take)


class NegotiationEnv(TextParallelEnv):
    """Two agents split the items on the table by simultaneous requests.

    Params: ``n_kinds`` (2-3 kinds of items), ``max_count`` (each kind has 1 to
    ``max_count`` items), ``max_rounds``, ``opponent``, ``seat``. Reward part ``deal`` =
    own value obtained / own total value (0 without a deal), given at the deal.
    ``success`` = a deal worth at least half of one's own total value. Scripted players:
    ``"random"`` (a uniform request), ``"greedy"`` (every item it values, never less) and
    ``"fair"`` (:func:`fair_request`).
    """

    metadata: ClassVar[dict[str, Any]] = {**TextParallelEnv.metadata, "name": "negotiation_v0"}
    agent_names = PLAYERS
    scripted_kinds = ("random", "greedy", "fair")
    param_space = ParamSpace(
        [
            Integer("n_kinds", 2, 3, description="kinds of items on the table"),
            Integer("max_count", 1, 4, description="each kind has 1 to max_count items"),
            Integer("max_rounds", 2, 6, description="rounds of requests before the game ends without a deal"),
            Categorical(
                "opponent",
                ("self", "random", "greedy", "fair"),
                description="who plays the other seat ('self': self-play)",
            ),
            Integer("seat", 0, 1, description="the learner's seat when the opponent is scripted"),
        ]
    )
    held_out = HeldOut(region=Region({"n_kinds": [3], "max_count": [4]}, name="3 kinds of up to 4"))

    def __init__(self, render_mode: str | None = None, *, max_turns: int = 16, **kwargs: Any):
        super().__init__(render_mode, max_turns=max_turns, **kwargs)
        self.counts: tuple[int, ...] = (1, 1)
        self.values: dict[str, tuple[int, ...]] = {}
        self.max_rounds = 1
        self.last_request: dict[str, tuple[int, ...] | None] = {}

    def _reset(self, params: Params, rng: np.random.Generator) -> dict[str, list[Message]]:
        k = params["n_kinds"]
        for _ in range(1000):
            counts = tuple(int(rng.integers(1, params["max_count"] + 1)) for _ in range(k))
            options = value_vectors(counts)
            if len(options) >= 2:
                break
        else:  # pragma: no cover - a table of ones always has many value vectors
            counts = (1,) * k
            options = value_vectors(counts)
        first = options[int(rng.integers(len(options)))]
        others = [v for v in options if v != first]
        second = others[int(rng.integers(len(others)))]
        self.counts = counts
        self.values = {PLAYERS[0]: first, PLAYERS[1]: second}
        self.max_rounds = params["max_rounds"]
        self.last_request = {a: None for a in PLAYERS}
        names = ITEMS[:k]
        table = ", ".join(f"{c} {n if c > 1 else n[:-1]}" for c, n in zip(counts, names))
        out = {}
        for p, agent in enumerate(PLAYERS):
            vals = ", ".join(f"{n[:-1]} {v}" for n, v in zip(names, self.values[agent]))
            system = (
                f"You are agent {'AB'[p]} in a negotiation with agent {'BA'[p]}. On the table: {table}. "
                f"Your points per item: {vals} (the whole table is worth {TOTAL_VALUE} points to you; "
                "the other agent's points are secret and different). Each round you both say at the same time "
                "which items you take. If the two requests together do not exceed the table, it is a deal and "
                f"each gets what it asked for. With no deal after {self.max_rounds} rounds, both get 0. "
                "Your score is the points of the items you get. Reply in exactly this form: "
                f"{show(tuple(0 for _ in counts))}"
            )
            out[agent] = [
                {"role": "system", "content": system},
                {"role": "user", "content": f"Round 1 of {self.max_rounds}. What do you take?"},
            ]
        return out

    def _play_round(self, actions: dict[str, str]) -> Outcome:
        out = Outcome()
        requests: dict[str, tuple[int, ...]] = {}
        for agent, text in actions.items():
            req, error = parse_request(text, self.counts)
            if error is not None:
                out.errors[agent] = error
            else:
                requests[agent] = req
        rnd = self.turn
        for agent in PLAYERS:
            if agent in requests:
                self.last_request[agent] = requests[agent]
        if len(requests) == 2 and fits(requests[PLAYERS[0]], requests[PLAYERS[1]], self.counts):
            out.done = True
            for agent in PLAYERS:
                got = worth(requests[agent], self.values[agent])
                other = requests[PLAYERS[1 - PLAYERS.index(agent)]]
                out.rewards[agent] = {"deal": got / TOTAL_VALUE}
                out.success[agent] = 2 * got >= TOTAL_VALUE
                out.messages[agent] = [
                    {
                        "role": "user",
                        "content": f"Deal in round {rnd}: you get {show(requests[agent])} "
                        f"(the other agent gets {show(other)}). Your score: {got} of {TOTAL_VALUE} points.",
                    }
                ]
            return out
        last = rnd >= self.max_rounds
        for p, agent in enumerate(PLAYERS):
            other = PLAYERS[1 - p]
            if other in requests:
                seen = f"the other agent asked for {show(requests[other])}"
                if agent in requests:
                    over = [
                        ITEMS[i]
                        for i, (a, b, c) in enumerate(zip(requests[agent], requests[other], self.counts))
                        if a + b > c
                    ]
                    seen += f" (together you asked for too many {' and '.join(over)})"
            else:
                seen = "the other agent's request could not be read"
            if last:
                text = f"Round {rnd} of {self.max_rounds}: {seen}. No deal after {self.max_rounds} rounds: both get 0."
            else:
                text = f"Round {rnd} of {self.max_rounds}: {seen}. No deal yet. Round {rnd + 1}: what do you take?"
            out.messages[agent] = [{"role": "user", "content": text}]
            out.rewards[agent] = {"deal": 0.0} if last else {}
            out.success[agent] = False
        out.done = last
        return out

    def _scripted(self, agent: str, kind: str, rng: np.random.Generator) -> str:
        """A scripted request (it uses only the agent's own values and the other's last request)."""
        values = self.values.get(agent, tuple(1 for _ in self.counts))
        if kind == "random":
            take = tuple(int(rng.integers(0, c + 1)) for c in self.counts)
        elif kind == "greedy":
            take = tuple(c if v > 0 else 0 for c, v in zip(self.counts, values))
        else:
            other = PLAYERS[1 - PLAYERS.index(agent)]
            take = fair_request(values, self.counts, self.last_request.get(other))
        return show(take)
