"""Nim as a text game (normal play: whoever takes the last object wins).

A position is a list of heap sizes. A move takes ``k >= 1`` objects from one heap and
is written ``take K from heap H`` (heaps are numbered from 1). The player to move wins
with perfect play exactly when the nim-sum (XOR of the heap sizes) is not zero
(Bouton, 1901); :func:`optimal_move` then moves to a zero nim-sum.
"""

from __future__ import annotations

import re
from functools import reduce
from operator import xor
from typing import Any, ClassVar

import numpy as np

from agentgym.env import Message
from agentgym.multiagent import Outcome, TextAECEnv
from agentgym.spaces import Categorical, HeldOut, Integer, Params, ParamSpace, Region
from agentgym_multiagent.parsing import MOVE_CHARS

PLAYERS = ("player_0", "player_1")
FORMAT = "take K from heap H"
_MOVE = re.compile(r"\btake\s+(\d+)(?:\s+(?:objects?|items?|stones?))?\s+from\s+heap\s*#?\s*(\d+)", re.IGNORECASE)
_TAKE = re.compile(r"\btake\s+(\d+)\b", re.IGNORECASE)


def nim_sum(heaps: list[int] | tuple[int, ...]) -> int:
    """XOR of the heap sizes: the player to move can force a win iff it is not 0."""
    return reduce(xor, heaps, 0)


def legal_moves(heaps: list[int] | tuple[int, ...]) -> list[tuple[int, int]]:
    """Every move as ``(take, heap index from 0)``."""
    return [(k, i) for i, h in enumerate(heaps) for k in range(1, h + 1)]


def optimal_move(heaps: list[int] | tuple[int, ...], rng: np.random.Generator) -> tuple[int, int]:
    """A move to a zero nim-sum (one of them, at random), or one random object if none exists."""
    s = nim_sum(heaps)
    if s:
        winning = [(h - (h ^ s), i) for i, h in enumerate(heaps) if h ^ s < h]
        return winning[int(rng.integers(len(winning)))]
    nonempty = [i for i, h in enumerate(heaps) if h]
    return 1, nonempty[int(rng.integers(len(nonempty)))]


def random_move(heaps: list[int] | tuple[int, ...], rng: np.random.Generator) -> tuple[int, int]:
    """A legal move drawn uniformly from all of them."""
    moves = legal_moves(heaps)
    return moves[int(rng.integers(len(moves)))]


def say(take: int, heap: int) -> str:
    """The canonical text of a move (``heap`` counted from 0)."""
    return f"take {take} from heap {heap + 1}"


def parse_move(text: str, heaps: list[int]) -> tuple[tuple[int, int] | None, str | None]:
    """``((take, heap from 0), None)`` for a legal move in ``text``, else ``(None, error)``.

    Case-insensitive, inside a short sentence; ``take 3 objects from heap #2`` reads too.
    With a single heap ``take K`` is enough. A reply naming two different moves is refused.
    """
    legal = _legal_text(heaps)
    if len(text) > MOVE_CHARS:
        return None, f"your reply is too long to read as a move ({len(text)} characters). Reply like: {FORMAT}. {legal}"
    found = {(int(k), int(h)) for k, h in _MOVE.findall(text)}
    if not found and len(heaps) == 1:
        found = {(int(k), 1) for k in _TAKE.findall(text)}
    if not found:
        return None, f"no move found. Reply exactly like: {FORMAT} (for example: take 1 from heap 1). {legal}"
    if len(found) > 1:
        return None, f"your reply names several moves. Give exactly one: {FORMAT}. {legal}"
    ((take, heap),) = found
    if not 1 <= heap <= len(heaps):
        return None, f"there is no heap {heap}; the heaps are numbered 1 to {len(heaps)}. {legal}"
    size = heaps[heap - 1]
    if size == 0:
        return None, f"heap {heap} is empty. {legal}"
    if take < 1:
        return None, f"you must take at least 1 object. {legal}"
    if take > size:
        return None, f"heap {heap} has only {size}, you cannot take {take}. {legal}"
    return (take, heap - 1), None


def _legal_text(heaps: list[int]) -> str:
    parts = [f"heap {i + 1}: take 1 to {h}" if h > 1 else f"heap {i + 1}: take 1" for i, h in enumerate(heaps) if h]
    return "Legal moves: " + "; ".join(parts) + "."


def _position(heaps: list[int]) -> str:
    return "Heaps: " + ", ".join(f"heap {i + 1} has {h}" for i, h in enumerate(heaps)) + "."


class NimEnv(TextAECEnv):
    """Nim between ``player_0`` (moves first) and ``player_1``; taking the last object wins.

    Params: ``heaps`` (1-3 heaps), ``max_heap`` (each heap starts with 1 to ``max_heap``
    objects), ``opponent`` and ``seat``. Reward parts at the end: ``win`` = +1 for the
    winner, -1 for the loser (zero-sum). An illegal move (an empty heap, too many
    objects, no such heap) is refused and the same player moves again.
    """

    metadata: ClassVar[dict[str, Any]] = {**TextAECEnv.metadata, "name": "nim_v0"}
    agent_names = PLAYERS
    scripted_kinds = ("random", "optimal")
    param_space = ParamSpace(
        [
            Integer("heaps", 1, 3, description="number of heaps"),
            Integer("max_heap", 2, 7, description="each heap starts with 1 to max_heap objects"),
            Categorical(
                "opponent", ("self", "random", "optimal"), description="who plays the other seat ('self': self-play)"
            ),
            Integer("seat", 0, 1, description="the learner's seat when the opponent is scripted (0 moves first)"),
        ]
    )
    held_out = HeldOut(region=Region({"heaps": [3], "max_heap": [5]}, name="3 heaps of up to 5"))

    def __init__(self, render_mode: str | None = None, *, win_reward: float = 1.0, max_turns: int = 64, **kwargs: Any):
        super().__init__(render_mode, max_turns=max_turns, **kwargs)
        self.win_reward = float(win_reward)
        self.heaps: list[int] = [1]
        self.to_move = 0

    def _reset(self, params: Params, rng: np.random.Generator) -> dict[str, list[Message]]:
        self.heaps = [int(rng.integers(1, params["max_heap"] + 1)) for _ in range(params["heaps"])]
        self.to_move = 0
        out = {}
        for p, name in enumerate(PLAYERS):
            who = "first" if p == 0 else "second"
            n = len(self.heaps)
            system = (
                f"You play Nim as the {who} player against one opponent. There "
                f"{'is 1 heap' if n == 1 else f'are {n} heaps'} "
                "of objects. Players take turns; on your turn take 1 or more objects from one heap. "
                f"Whoever takes the last object wins. Reply with one move in exactly this form: {FORMAT} "
                "(for example: take 2 from heap 1)."
            )
            out[name] = [{"role": "system", "content": system}]
        out[PLAYERS[0]].append({"role": "user", "content": f"{_position(self.heaps)} You move first."})
        return out

    def _next_agent(self) -> str:
        return PLAYERS[self.to_move]

    def _play(self, agent: str, text: str) -> Outcome:
        move, error = parse_move(text, self.heaps)
        if error is not None:
            return Outcome(errors={agent: error})
        take, heap = move
        self.heaps[heap] -= take
        me, other = self.to_move, 1 - self.to_move
        did = f"The other player took {take} from heap {heap + 1}."
        if any(self.heaps):
            self.to_move = other
            return Outcome(
                messages={PLAYERS[other]: [{"role": "user", "content": f"{did} {_position(self.heaps)} Your move."}]}
            )
        out = Outcome(done=True)
        out.messages[PLAYERS[me]] = [{"role": "user", "content": "You took the last object. You win."}]
        out.messages[PLAYERS[other]] = [{"role": "user", "content": f"{did} That was the last object. You lose."}]
        out.rewards = {PLAYERS[me]: {"win": self.win_reward}, PLAYERS[other]: {"win": -self.win_reward}}
        out.success = {PLAYERS[me]: True, PLAYERS[other]: False}
        return out

    def _scripted(self, agent: str, kind: str, rng: np.random.Generator) -> str:
        """``"optimal"``: move to a zero nim-sum when possible; ``"random"``: any legal move."""
        if not any(self.heaps):
            return say(1, 0)  # the game is over: a dead step ignores it
        take, heap = optimal_move(self.heaps, rng) if kind == "optimal" else random_move(self.heaps, rng)
        return say(take, heap)
