"""TextArena games as agentgym multi-agent games on PettingZoo's AEC API.

``agentgym.make("textarena:TicTacToe-v0")`` wraps TextArena's game of that id (its raw
game, without TextArena's observation wrappers) in a :class:`TextArenaGame`, a
:class:`~agentgym.multiagent.TextAECEnv`: seats ``player_0`` and ``player_1``, text
actions, each seat observing the messages addressed to it since it last moved. It
trains like any agentgym game (per-seat GRPO, self-play; ``agentgym play``).

What TextArena gives and what it does not:

- Rewards and the end of the game are TextArena's (win +1, loss -1, draw 0, in
  ``reward_parts["game"]``); ``success`` is a positive game reward (a win). TextArena's
  own rules for invalid moves apply (usually one warning, then the game is lost).
- Parameters: TextArena games have none beyond the seed, so the space is only who plays
  (``opponent``: ``self`` or ``random``; ``seat``: the learner's seat).
- Held-out tasks are held-out seeds (``HeldOut.content_fraction`` is 0): for a game whose
  deal or board depends on the seed they are new games; for a game with no chance
  (TicTacToe) they are the same game again, and say nothing about generalisation.
- The scripted ``random`` player picks one of the bracketed moves (``[4]``, ``[e2e4]``)
  in the last messages it was shown, TextArena's convention for legal moves; a game that
  lists none gets ``[pass]``. There is no oracle.
- A game that raises on an input ends there, with no result and the error named to both
  seats (TextArena is not hardened against arbitrary text; agentgym envs must be).
- What TextArena queues for a seat between two of its moves arrives as one user message
  (its parts separated by blank lines); a seat's own move is not echoed back to it.
- TextArena games draw from Python's global ``random``; each wrapped game keeps its own
  state of it (swapped in around the game's calls), so the same seed gives the same game
  whatever else runs, as PettingZoo's ``seed_test`` checks.
"""

from __future__ import annotations

import random
import re
import threading
from typing import Any, ClassVar

import gymnasium
import numpy as np

from agentgym.env import ChatSpace
from agentgym.multiagent import Outcome, TextAECEnv
from agentgym.spaces import Categorical, HeldOut, Params, ParamSpace

PREFIX = "textarena:"
_MOVE = re.compile(r"\[([^\[\]\n]{1,40})\]")
_NOT_MOVES = re.compile(r"^(GAME|Player \d+)$")
#: TextArena games draw from Python's global ``random`` (seeded once at reset): each game
#: gets its own state, swapped in around its calls, so two games never share draws.
_GLOBAL_RANDOM = threading.Lock()


class TextArenaGame(TextAECEnv):
    """A TextArena game for two seats; subclasses (made by :func:`game_class`) set ``game_id``."""

    #: TextArena's id of the game (e.g. ``"TicTacToe-v0"``).
    game_id: ClassVar[str] = ""
    param_space = ParamSpace([Categorical("opponent", ("self", "random")), Categorical("seat", (0, 1))])
    held_out = HeldOut(content_fraction=0.0)
    scripted_kinds = ("random",)

    def __init__(self, render_mode: str | None = None, *, max_turns: int = 64, **kwargs: Any):
        super().__init__(render_mode, max_turns=max_turns, **kwargs)
        # One message per seat per move, but a seat may wait out many moves (a long hand).
        self.observation_spaces = {
            a: gymnasium.spaces.Dict({"messages": ChatSpace(max_messages=max(64, 2 * self.max_turns + 2))})
            for a in self.possible_agents
        }
        self._game: Any = None
        self._random_state: Any = None

    def _in_game(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``fn(...)`` with this game's own state of Python's global ``random``."""
        with _GLOBAL_RANDOM:
            outer = random.getstate()
            random.setstate(self._random_state)
            try:
                return fn(*args, **kwargs)
            finally:
                self._random_state = random.getstate()
                random.setstate(outer)

    # ----- the game -------------------------------------------------------------------
    def _reset(self, params: Params, rng: np.random.Generator) -> dict[str, list[dict[str, str]]]:
        import textarena as ta

        game = ta.make(self.game_id)
        while isinstance(game, ta.Wrapper):  # TextArena's wrappers re-render the history; agents keep their own
            game = game.env
        self._game = game
        seed = int(self._opened_task().seed)
        self._random_state = random.Random(seed).getstate()
        self._in_game(game.reset, num_players=len(self.possible_agents), seed=seed)
        return self._drain()

    def _next_agent(self) -> str:
        return self.possible_agents[int(self._game.state.current_player_id)]

    def _play(self, agent: str, text: str) -> Outcome:
        try:
            done, _ = self._in_game(self._game.step, text)
        except Exception as exc:  # the game's own bug on this input: end it, say why
            note = f"The game stopped: TextArena's {self.game_id} raised {type(exc).__name__}: {exc}"
            return Outcome(
                messages={a: [{"role": "user", "content": note}] for a in self.possible_agents},
                errors={agent: f"TextArena raised {type(exc).__name__} on this move"},
                done=True,
            )
        out = Outcome(messages=self._drain(), done=bool(done))
        if done:
            rewards, info = self._game.state.rewards or {}, self._game.state.game_info or {}
            for pid, a in enumerate(self.possible_agents):
                r = float(rewards.get(pid, 0.0))
                out.rewards[a] = {"game": r}
                out.success[a] = r > 0
            reason = next((i.get("reason") for i in info.values() if isinstance(i, dict) and i.get("reason")), None)
            if reason:
                for a in self.possible_agents:
                    out.messages.setdefault(a, []).append({"role": "user", "content": f"Game over: {reason}"})
        return out

    def _drain(self) -> dict[str, list[dict[str, str]]]:
        """The messages TextArena has queued for each seat, as chat messages (a seat's own
        move is left out: its agent already has it)."""
        queued = self._game.state.observations
        out: dict[str, list[dict[str, str]]] = {}
        for pid, agent in enumerate(self.possible_agents):
            parts = [
                str(message) if from_id < 0 else f"[Player {from_id}] {message}"
                for from_id, message, _kind in queued.get(pid, [])
                if from_id != pid
            ]
            queued[pid] = []
            out[agent] = [{"role": "user", "content": "\n\n".join(parts)}] if parts else []
        return out

    def _scripted(self, agent: str, kind: str, rng: np.random.Generator) -> str:
        for msgs in (self._pending.get(agent, [])[-1:], self._pending.get(agent, [])):
            moves = sorted(
                {m for msg in msgs for m in _MOVE.findall(msg["content"]) if not _NOT_MOVES.match(m.strip())}
            )
            if moves:
                return f"[{moves[int(rng.integers(len(moves)))]}]"
        return "[pass]"


def game_class(game_id: str) -> type[TextArenaGame]:
    """The :class:`TextArenaGame` subclass for TextArena's ``game_id`` (ValueError if unknown)."""
    import textarena as ta

    registry = ta.envs.registration.ENV_REGISTRY
    if game_id not in registry:
        import difflib

        close = difflib.get_close_matches(game_id, list(registry), n=3)
        raise ValueError(f"TextArena has no game {game_id!r}" + (f"; did you mean {close}?" if close else ""))
    name = "TextArena_" + re.sub(r"\W", "_", game_id)
    return type(
        name,
        (TextArenaGame,),
        {
            "game_id": game_id,
            "metadata": {**TextAECEnv.metadata, "name": name},
            "__doc__": f"TextArena's {game_id} for two seats (see agentgym.interop.textarena_env).",
        },
    )


def register_id(env_id: str) -> None:
    """Register ``textarena:<GameId>`` (the registry's resolver for the prefix)."""
    from agentgym.registry import register

    game_id = env_id.removeprefix(PREFIX)
    register(env_id, game_class(game_id), description=f"TextArena's {game_id} (two seats)", gymnasium_id=False)


def two_player_games() -> list[str]:
    """TextArena's game ids, less the ``-raw``/``-train`` variants of the same games, that
    start a game with two players (a game for one or for more players refuses two)."""
    import contextlib
    import io

    import textarena as ta

    found = []
    for game_id in ta.envs.registration.ENV_REGISTRY:
        if game_id.endswith(("-raw", "-train")) or "-train-" in game_id or "-raw-" in game_id:
            continue
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                game = ta.make(game_id)
                game.reset(num_players=2, seed=0)
        except Exception:
            continue
        found.append(game_id)
    return found
