"""Seats: every env, one agent or several, as a play in which policy seats take turns.

The runner plays one shape. A *play* is an env opened on a task; it has policy seats
(played by the policy being trained) and may have scripted seats (opponents, played
here). After the reset and after each step the play says where it stands, as a
:class:`Turn`: which policy seats must move now, what each policy seat has been told
since it last moved, and what rewards reached which seat, in order.

- :class:`OneSeat`: a single-agent :class:`~agentgym.env.TextEnv` is a play with one
  policy seat, named ``""``; every turn it moves.
- :class:`GameSeats`: a PettingZoo game (:class:`~agentgym.multiagent.TextAECEnv`,
  turn-based, or :class:`~agentgym.multiagent.TextParallelEnv`, simultaneous) with a
  policy seat or a scripted kind in each seat; scripted seats move inside the play
  (from a random stream seeded per play), so a turn only ever waits for the policy.

:func:`seat_env` picks the adapter; it is the one place that tells the two kinds apart.
Plays live in an env pool (:mod:`agentgym.rollout.pool`): in this process or in Ray
workers, for games as for single-agent envs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agentgym.env import Message, TaskSpec
from agentgym.multiagent import POLICY, TextAECEnv, TextParallelEnv, is_multiagent

#: The seat name of a single-agent env (and ``Episode.agent`` of its episodes).
ONLY_SEAT = ""

#: Scripted kinds that demonstrate a game well, best first (see :meth:`GameSeats.oracle`).
DEMONSTRATORS = ("optimal", "oracle", "fair", "greedy")


@dataclass
class Turn:
    """Where a play stands after its reset or a step.

    ``credits`` are ``(seat, reward, info)`` in the order the env gave them since the
    last turn (scripted seats' moves included); ``observations`` holds, for every policy
    seat, the messages it was told since it last moved; ``movers`` are the policy seats
    that must move now (none once ``done``, with ``end_reason`` "terminated" or
    "truncated"). ``said`` lists the scripted seats' moves since the last turn as
    ``(seat, kind, text)``, for a transcript."""

    movers: list[str]
    observations: dict[str, list[Message]]
    credits: list[tuple[str, float, dict[str, Any]]] = field(default_factory=list)
    done: bool = False
    end_reason: str = "terminated"
    said: list[tuple[str, str, str]] = field(default_factory=list)

    def observed(self) -> tuple:
        """What a replay of the same actions must reproduce exactly (infos left out)."""
        return (
            self.movers,
            self.observations,
            [(seat, reward) for seat, reward, _ in self.credits],
            self.done,
            self.end_reason,
        )


@dataclass
class Seating:
    """How one play is seated: who plays each seat and the seed of its scripted seats.

    ``controllers`` (seat -> :data:`~agentgym.multiagent.POLICY` or a scripted kind)
    override the game's own (its ``opponent``/``seat`` params). Scripted seats draw from
    ``np.random.default_rng(key)``, or without a key from ``(seed, task seed, group,
    member)``. ``demonstrator`` names the scripted kind :meth:`GameSeats.oracle` plays.
    A single-agent env ignores all of it."""

    controllers: dict[str, str] | None = None
    key: int | None = None
    seed: int = 0
    group: int = 0
    member: int = 0
    demonstrator: str | None = None


@dataclass
class Setting:
    """One way to seat the learner for evaluation: against ``opponent`` in ``seat``
    (``"all"`` in self-play), as ``controllers`` say. A single-agent env has one setting,
    with no opponent."""

    opponent: str = ""
    seat: str = ""
    controllers: dict[str, str] | None = None


def seat_env(env: Any) -> OneSeat | GameSeats:
    """The play adapter of ``env``: :class:`GameSeats` for a game, else :class:`OneSeat`."""
    return GameSeats(env) if is_multiagent(env) else OneSeat(env)


def as_moves(action: str | Mapping[str, str], movers: list[str]) -> dict[str, str]:
    """Moves by seat; a bare text is the move of the only seat to move."""
    if isinstance(action, Mapping):
        return dict(action)
    if len(movers) != 1:
        raise ValueError(f"a bare text needs exactly one seat to move; {movers} must move: pass moves by seat")
    return {movers[0]: action}


class OneSeat:
    """A single-agent :class:`~agentgym.env.TextEnv` as a play with one policy seat."""

    def __init__(self, env: Any):
        self.env = env
        self.seats = [ONLY_SEAT]
        self.info: dict[str, Any] = {}
        self._turn = Turn([], {})

    @property
    def task(self) -> TaskSpec:
        return self.env.task

    @property
    def done(self) -> bool:
        return self._turn.done

    def reset(self, task: TaskSpec | None, seating: Seating | None = None, seed: int | None = None) -> Turn:
        """Open the env on ``task`` (None: a training task the env draws, from ``seed``)."""
        messages, self.info = self.env.reset(seed=seed, options={"task": task})
        self._turn = Turn([ONLY_SEAT], {ONLY_SEAT: list(messages)})
        return self._turn

    def step(self, action: Any) -> Turn:
        """Step the env with the seat's text (bad input is the env's to answer)."""
        text = action.get(ONLY_SEAT) if isinstance(action, Mapping) else action
        messages, reward, terminated, truncated, info = self.env.step(text)
        done = bool(terminated or truncated)
        self._turn = Turn(
            [] if done else [ONLY_SEAT],
            {ONLY_SEAT: list(messages)},
            [(ONLY_SEAT, float(reward), dict(info))],
            done,
            "terminated" if terminated else "truncated",
        )
        return self._turn

    def settings(self, opponents: Sequence[str] = ()) -> list[Setting]:
        """Evaluation has one setting: the policy in the only seat (``opponents`` unused)."""
        return [Setting()]

    def oracle(self, seat: str | None = None) -> str:
        """The env's own oracle reply (``env.oracle()``)."""
        env = self.env.unwrapped
        if not hasattr(env, "oracle"):
            raise TypeError(f"{type(env).__name__} has no oracle() to demonstrate with")
        return env.oracle()

    def close(self) -> None:
        self.env.close()


class GameSeats:
    """A multi-agent game as a play: scripted seats move here, policy seats through turns."""

    def __init__(self, env: Any):
        self.env = env
        self.seats: list[str] = []
        self.controllers: dict[str, str] = {}
        self.rng = np.random.default_rng()
        self.demonstrator: str | None = None
        #: Simultaneous games: each seat's observation, kept until it moves.
        self._obs: dict[str, list[Message]] = {}
        self._credits: list[tuple[str, float, dict[str, Any]]] = []
        self._said: list[tuple[str, str, str]] = []
        self._movers: list[str] = []
        self._done = False
        self._end_reason = "terminated"

    @property
    def task(self) -> TaskSpec:
        return self.env.task

    @property
    def done(self) -> bool:
        return self._done

    def reset(self, task: TaskSpec | None, seating: Seating | None = None, seed: int | None = None) -> Turn:
        """Open the game (on ``task``; None: a training task drawn from ``seed``), seat its
        players and play the scripted seats up to the first policy move."""
        seating = seating or Seating()
        env = self.env
        if isinstance(env, TextParallelEnv):
            obs, _ = env.reset(seed=seed, options={"task": task})
            self._obs = {a: o["messages"] for a, o in obs.items()}
        else:
            env.reset(seed=seed, options={"task": task})
            self._obs = {}
        self.controllers = {**env.controllers(), **(seating.controllers or {})}
        env.check_players(self.controllers)
        self.seats = [a for a in env.possible_agents if self.controllers[a] == POLICY]
        stream = [seating.seed, int(env.task.seed) % (2**32), seating.group, seating.member]
        self.rng = np.random.default_rng(seating.key if seating.key is not None else stream)
        self.demonstrator = seating.demonstrator
        self._credits, self._said, self._movers = [], [], []
        self._done, self._end_reason = False, "terminated"
        return self._advance()

    def step(self, action: str | Mapping[str, str]) -> Turn:
        """Play the policy seats' moves, then the scripted seats up to the next policy move."""
        if self._done:
            raise RuntimeError("the game has ended; reset it to play another")
        moves = as_moves(action, self._movers)
        if sorted(moves) != sorted(self._movers):
            raise ValueError(f"seats {self._movers} must move now; got moves for {sorted(moves)}")
        env = self.env
        if isinstance(env, TextAECEnv):
            ((agent, text),) = moves.items()
            self._aec_step(agent, text)
        else:
            self._round(moves)
        return self._advance()

    def settings(self, opponents: Sequence[str] = ("random",)) -> list[Setting]:
        """Evaluation settings: self-play (opponent ``"self"``) or each seat against each
        scripted opponent. An opponent the game lacks is a ValueError naming the ones it has."""
        self.env.check_players(opponents=list(opponents))
        seats = list(self.env.possible_agents)
        out = []
        for opp in opponents:
            if opp == "self":
                out.append(Setting("self", "all", {a: POLICY for a in seats}))
            else:
                out.extend(Setting(opp, seat, {a: (POLICY if a == seat else opp) for a in seats}) for seat in seats)
        return out

    def oracle(self, seat: str | None = None) -> str:
        """What the demonstrating scripted player says in ``seat`` (default: the seat to
        move): ``Seating.demonstrator``, else the first of :data:`DEMONSTRATORS` the game has."""
        kind = self.demonstrator or demonstrator_kind(self.env)
        return self.env.scripted_action(seat if seat is not None else self._movers[0], kind, self.rng)

    def close(self) -> None:
        self.env.close()

    # ----- the game ------------------------------------------------------------------
    def _advance(self) -> Turn:
        env = self.env
        if isinstance(env, TextAECEnv):
            while not self._aec_over():
                agent = env.agent_selection
                kind = self.controllers[agent]
                if kind == POLICY:
                    return self._turn([agent])
                self._aec_step(agent, self._scripted(agent, kind))
            return self._turn([])
        while not self._done:
            if not env.agents:
                self._finish("terminated")
                break
            movers = [a for a in env.agents if self.controllers[a] == POLICY]
            if movers:
                return self._turn(movers)
            self._round({})  # every seat still in the game is scripted
        return self._turn([])

    def _turn(self, movers: list[str]) -> Turn:
        if isinstance(self.env, TextAECEnv):
            seen = {a: self.env.observe(a)["messages"] for a in self.seats}
        else:
            seen = {a: list(self._obs.get(a, [])) for a in self.seats}
        self._movers = movers
        credits, self._credits = self._credits, []
        said, self._said = self._said, []
        return Turn(list(movers), seen, credits, self._done, self._end_reason, said)

    def _scripted(self, agent: str, kind: str) -> str:
        text = self.env.scripted_action(agent, kind, self.rng)
        self._said.append((agent, kind, text))
        return text

    def _round(self, moves: dict[str, str]) -> None:
        env = self.env
        actions = {}
        for a in env.agents:
            kind = self.controllers[a]
            actions[a] = moves[a] if kind == POLICY else self._scripted(a, kind)
        obs, rewards, terms, truncs, infos = env.step(actions)
        self._obs = {a: o["messages"] for a, o in obs.items()}
        self._credits.extend((a, float(rewards[a]), dict(infos[a])) for a in rewards)
        if any(terms.values()) or any(truncs.values()):
            self._finish("terminated" if any(terms.values()) else "truncated")

    def _aec_step(self, agent: str, text: str) -> None:
        env = self.env
        env.step(text)
        self._credits.extend((a, float(env.rewards.get(a, 0.0)), dict(env.infos.get(a, {}))) for a in env.agents)

    def _aec_over(self) -> bool:
        env = self.env
        if self._done:
            return True
        if env.agents and not all(env.terminations[a] or env.truncations[a] for a in env.agents):
            return False
        truncated = any(env.truncations.get(a, False) for a in env.agents)
        self._finish("truncated" if truncated else "terminated")
        return True

    def _finish(self, reason: str) -> None:
        self._done, self._end_reason = True, reason


def demonstrator_kind(env: Any) -> str:
    """The scripted kind that demonstrates game ``env``: the first of :data:`DEMONSTRATORS` it has."""
    kinds = list(env.scripted_kinds)
    for kind in DEMONSTRATORS:
        if kind in kinds:
            return kind
    raise ValueError(f"{env.env_id or type(env).__name__} has no demonstrating player among its scripted kinds {kinds}")


def eval_settings(env: Any, opponents: Sequence[str] = ("random",)) -> list[Setting]:
    """The settings an evaluation plays ``env`` in (see :meth:`OneSeat.settings` and
    :meth:`GameSeats.settings`)."""
    return seat_env(env).settings(opponents)
