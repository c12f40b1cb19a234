"""Text environments for several agents, on PettingZoo's AEC and Parallel APIs.

Two bases share one contract with the single-agent :class:`agentgym.env.TextEnv`:

- :class:`TextAECEnv` (turn-based: poker, Nim, a pioneer then an observer) is a
  :class:`pettingzoo.AECEnv`; :class:`TextParallelEnv` (simultaneous moves) is a
  :class:`pettingzoo.ParallelEnv`.
- A task is a :class:`~agentgym.env.TaskSpec`, a point of the env's ``param_space``
  plus a seed; ``reset(options={"task": spec})`` builds the same game for the same spec.
  Without a task, a training task is drawn from the seeded RNG (never a held-out one).
- Each agent observes ``{"messages": [...]}``: the chat messages addressed to it since
  it last acted (the first observation holds its opening messages). An agent keeps its
  own history, exactly as with a single-agent env.
- Actions are text. Anything unusable (not a string, too long, an illegal move, text
  that does not parse) gets an error message back to that agent, the configured
  penalty, and the game goes on; after ``max_invalid`` unusable actions in a row by the
  same agent it forfeits (``forfeit_penalty``). ``max_turns`` bounds the game (moves in
  all); PettingZoo's ``max_cycles`` (rounds in which every seat moves once) sets it too.
- Infos per agent always have ``success``, ``reward_parts`` (summing to that step's
  reward), ``error`` and ``turn``; ``reward_parts`` and rewards are per agent.

Subclasses implement :meth:`_reset` and :meth:`_play` (see :class:`Outcome`) and, for
evaluation and opponents, :meth:`scripted_action`. Seats may be played by scripted
opponents: a game whose ``param_space`` has ``opponent`` (``"self"`` or a scripted
kind) and ``seat`` (the learner's seat) tells runners who plays where through
:meth:`controllers`, so a teacher can choose opponents like any other parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium
import numpy as np
from pettingzoo import AECEnv, ParallelEnv

from agentgym.env import ChatSpace, Message, TaskFamily, TaskSpec, TextSpace, _check_action
from agentgym.spaces import Params

#: The controller name meaning "the policy being trained plays this seat".
POLICY = "policy"


@dataclass
class Outcome:
    """What one move (AEC) or one round of moves (parallel) does to the game.

    ``messages[agent]`` are new messages for that agent; ``rewards[agent]`` is a dict of
    reward parts for this step (missing agents get nothing). ``errors[agent]`` explains
    an unusable action (the base class counts it towards a forfeit). ``done`` ends the
    game for everyone; ``success[agent]`` is read at the end (a win, a correct answer).
    """

    messages: dict[str, list[Message]] = field(default_factory=dict)
    rewards: dict[str, dict[str, float]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    done: bool = False
    success: dict[str, bool] = field(default_factory=dict)


class _TextGame(TaskFamily):
    """What both bases share: spaces, task handling, bookkeeping of messages and infos."""

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["ansi"],
        "name": "agentgym_text_game",
        "is_parallelizable": False,
    }
    #: Agent names, in seat order (seat 0 first).
    agent_names: ClassVar[tuple[str, ...]] = ("player_0", "player_1")
    max_action_chars: ClassVar[int] = 4096
    #: Scripted players this game offers for opponents and evaluation.
    scripted_kinds: ClassVar[tuple[str, ...]] = ("random",)
    env_id: str | None = None

    def __init__(
        self,
        render_mode: str | None = None,
        *,
        max_turns: int = 32,
        invalid_action_penalty: float = -0.1,
        max_invalid: int = 3,
        forfeit_penalty: float = -1.0,
        max_cycles: int | None = None,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode {render_mode!r} not in {self.metadata['render_modes']}")
        for name, v in (("max_turns", max_turns), ("max_invalid", max_invalid)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        self.render_mode = render_mode
        if max_cycles is not None:  # PettingZoo's name: cycles in which every seat moves once
            if isinstance(max_cycles, bool) or not isinstance(max_cycles, int) or max_cycles < 1:
                raise ValueError(f"max_cycles must be an integer >= 1, got {max_cycles!r}")
            max_turns = max_cycles * len(self.agent_names)
        self.max_turns = max_turns
        self.invalid_action_penalty = float(invalid_action_penalty)
        self.max_invalid = max_invalid
        self.forfeit_penalty = float(forfeit_penalty)
        self.possible_agents = list(self.agent_names)
        self.agents: list[str] = []
        self.observation_spaces = {a: gymnasium.spaces.Dict({"messages": ChatSpace()}) for a in self.possible_agents}
        self.action_spaces = {a: TextSpace(self.max_action_chars) for a in self.possible_agents}
        self.task: TaskSpec | None = None
        self.turn = 0
        self.np_random = np.random.default_rng()
        self._pending: dict[str, list[Message]] = {}
        self._invalid_run: dict[str, int] = {}
        self._transcript: list[tuple[str, Message]] = []

    # ----- to implement in subclasses -------------------------------------------------
    def _reset(self, params: Params, rng: np.random.Generator) -> dict[str, list[Message]]:
        """Build the game for ``params`` from ``rng``; the opening messages of each agent."""
        raise NotImplementedError

    def _scripted(self, agent: str, kind: str, rng: np.random.Generator) -> str:
        """The text a scripted player of ``kind`` (one of :attr:`scripted_kinds`) says now."""
        raise NotImplementedError(f"{type(self).__name__} has no scripted players")

    # ----- shared machinery ----------------------------------------------------------
    def observation_space(self, agent: str) -> gymnasium.spaces.Space:
        # The same object on every call, as PettingZoo requires (seeding goes through it).
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> gymnasium.spaces.Space:
        return self.action_spaces[agent]

    @property
    def num_agents(self) -> int:
        return len(self.agents)

    @property
    def max_num_agents(self) -> int:
        return len(self.possible_agents)

    @property
    def max_seat_moves(self) -> int:
        """The moves one seat makes in a game that runs to its limit: what bounds one seat's
        episode (Dr. GRPO's token budget is ``rollout.max_new_tokens`` times this). Seats
        taking turns share ``max_turns`` (moves in all); simultaneous games override it."""
        return -(-self.max_turns // len(self.possible_agents))

    def controllers(self) -> dict[str, str]:
        """Who plays each seat of the current task: :data:`POLICY` or a scripted kind.

        With an ``opponent`` parameter other than ``"self"``, the seat given by the
        ``seat`` parameter (default 0) is the learner's and every other seat is played by
        that scripted opponent; otherwise the policy plays all seats (self-play).
        """
        params = dict(self.task.params) if self.task is not None else {}
        opponent = params.get("opponent", "self")
        if opponent in (None, "self", POLICY):
            return {a: POLICY for a in self.possible_agents}
        seat = int(params.get("seat", 0)) % len(self.possible_agents)
        return {a: (POLICY if i == seat else str(opponent)) for i, a in enumerate(self.possible_agents)}

    def scripted_action(self, agent: str, kind: str, rng: np.random.Generator) -> str:
        """What the scripted player ``kind`` says in ``agent``'s seat now (an unknown kind
        is a ValueError naming the ones this game has)."""
        self.check_players(opponents=[kind])
        return self._scripted(agent, kind, rng)

    def check_players(
        self, controllers: dict[str, str] | None = None, opponents: list[str] | tuple[str, ...] = ()
    ) -> None:
        """Raise a ValueError naming the seats and players this game has when
        ``controllers`` (seat -> "policy" or a scripted kind) or ``opponents`` (scripted
        kinds or "self") name anything else."""
        controllers = controllers or {}
        seats = sorted(set(controllers) - set(self.possible_agents))
        kinds = {k for k in controllers.values() if k != POLICY} | {o for o in opponents if o != "self"}
        players = sorted(kinds - set(self.scripted_kinds))
        name = self.env_id or type(self).__name__
        problems = ([f"{name} has no seat {seats} (its seats: {self.possible_agents})"] if seats else []) + (
            [f"{name} has no scripted player {players} (it has {list(self.scripted_kinds)}, and 'self' as an opponent)"]
            if players
            else []
        )
        if problems:
            raise ValueError("; ".join(problems))

    def _start(self, seed: int | None, options: dict[str, Any] | None) -> None:
        if seed is not None:
            self.np_random = np.random.default_rng(seed)
        self.task = self.resolve_task((options or {}).get("task"), self.np_random)
        params = dict(self.task.params)
        self.turn = 0
        self.agents = list(self.possible_agents)
        self._invalid_run = {a: 0 for a in self.possible_agents}
        opening = self._reset(params, np.random.default_rng(self.task.seed))
        self._pending = {a: [dict(m) for m in opening.get(a, [])] for a in self.possible_agents}
        self._transcript = [(a, dict(m)) for a in self.possible_agents for m in opening.get(a, [])]

    def _info(self, agent: str, parts: dict[str, float], error: str | None, success: bool) -> dict[str, Any]:
        return {
            "task": self.task.to_dict() if self.task else None,
            "turn": self.turn,
            "success": bool(success),
            "reward_parts": dict(parts),
            "error": error,
        }

    def _apply_actions(
        self, actions: dict[str, Any], judge, *, judge_empty: bool = False
    ) -> tuple[Outcome, dict[str, str | None]]:
        """Check each action, let ``judge`` play the usable ones, add penalties and forfeits.

        ``judge_empty``: call ``judge`` even when no action is usable (a simultaneous
        round still happened, and the game must count it).
        """
        usable: dict[str, str] = {}
        errors: dict[str, str | None] = {}
        for agent, action in actions.items():
            err = _check_action(action, self.max_action_chars)
            if err is None:
                usable[agent] = action
            errors[agent] = err
            self._transcript.append((agent, {"role": "assistant", "content": str(action)[:2000]}))
        out = judge(usable) if usable or judge_empty else Outcome()
        # Whether the moves themselves ended the game: agents who reach max_invalid in the
        # same simultaneous round all forfeit, not only the first one listed.
        over = out.done
        for agent in actions:
            err = errors[agent] or out.errors.get(agent)
            errors[agent] = err
            if err is None:
                self._invalid_run[agent] = 0
                continue
            self._invalid_run[agent] += 1
            parts = out.rewards.setdefault(agent, {})
            parts["invalid_action"] = parts.get("invalid_action", 0.0) + self.invalid_action_penalty
            if agent not in out.messages or not any(err in m["content"] for m in out.messages[agent]):
                out.messages.setdefault(agent, []).append({"role": "user", "content": f"Error: {err}"})
            if self._invalid_run[agent] >= self.max_invalid and not over:
                out.done = True
                parts["forfeit"] = parts.get("forfeit", 0.0) + self.forfeit_penalty
                note = f"{agent} made {self.max_invalid} unusable moves in a row and forfeits; the game is over."
                for a in self.possible_agents:
                    out.messages.setdefault(a, []).append({"role": "user", "content": note})
        for agent, msgs in out.messages.items():
            self._pending.setdefault(agent, []).extend(dict(m) for m in msgs)
            self._transcript.extend((agent, dict(m)) for m in msgs)
        return out, errors

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        return "\n".join(f"<{a}> [{m['role']}] {m['content']}" for a, m in self._transcript)

    def close(self) -> None:
        pass


class TextAECEnv(_TextGame, AECEnv):
    """Turn-based text game on PettingZoo's AEC API.

    Subclasses implement ``_reset`` (the opening messages; the first mover is
    :meth:`_next_agent`), ``_play(agent, text) -> Outcome`` for one usable action by the
    agent to move, and ``_next_agent()`` (whose turn it is now).
    """

    def __init__(self, render_mode: str | None = None, **kwargs: Any):
        _TextGame.__init__(self, render_mode, **kwargs)
        self.rewards: dict[str, float] = {}
        self._cumulative_rewards: dict[str, float] = {}
        self.terminations: dict[str, bool] = {}
        self.truncations: dict[str, bool] = {}
        self.infos: dict[str, dict[str, Any]] = {}
        self.agent_selection = self.possible_agents[0]
        self._success: dict[str, bool] = {}

    def _play(self, agent: str, text: str) -> Outcome:
        raise NotImplementedError

    def _next_agent(self) -> str:
        raise NotImplementedError

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        self._start(seed, options)
        self.rewards = {a: 0.0 for a in self.agents}
        self._cumulative_rewards = {a: 0.0 for a in self.agents}
        self.terminations = {a: False for a in self.agents}
        self.truncations = {a: False for a in self.agents}
        self._success = {a: False for a in self.agents}
        self.infos = {a: self._info(a, {}, None, False) for a in self.agents}
        self.agent_selection = self._next_agent()

    def observe(self, agent: str) -> dict[str, list[Message]]:
        return {"messages": [dict(m) for m in self._pending.get(agent, [])]}

    def step(self, action: Any) -> None:
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        self._cumulative_rewards[agent] = 0.0
        self._pending[agent] = []
        self.turn += 1
        out, errors = self._apply_actions({agent: action}, lambda usable: self._play(agent, usable[agent]))
        self._success.update(out.success)
        truncated = not out.done and self.turn >= self.max_turns
        if truncated:
            note = f"The game reached its limit of {self.max_turns} moves and ends without a result."
            for a in self.agents:
                self._pending[a].append({"role": "user", "content": note})
        self.rewards = {a: float(sum(out.rewards.get(a, {}).values())) for a in self.agents}
        self.infos = {
            a: self._info(a, out.rewards.get(a, {}), errors.get(a), self._success.get(a, False)) for a in self.agents
        }
        if out.done or truncated:
            for a in self.agents:
                self.terminations[a] = out.done
                self.truncations[a] = truncated
            nxt = self.possible_agents.index(agent) + 1
            self.agent_selection = self.agents[nxt % len(self.agents)]
        else:
            self.agent_selection = self._next_agent()
        self._accumulate_rewards()


class TextParallelEnv(_TextGame, ParallelEnv):
    """Simultaneous-move text game on PettingZoo's Parallel API.

    Subclasses implement ``_reset`` and ``_play_round(actions) -> Outcome`` for the
    usable actions of one round (an agent whose action was unusable is absent from
    ``actions`` and has already been told why). It is called for every round, with an
    empty dict when no action was usable, so a game can count its rounds.
    """

    metadata: ClassVar[dict[str, Any]] = {**_TextGame.metadata, "is_parallelizable": True}

    @property
    def max_seat_moves(self) -> int:
        """Every seat moves once a round, and ``max_turns`` counts rounds."""
        return self.max_turns

    def _play_round(self, actions: dict[str, str]) -> Outcome:
        raise NotImplementedError

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        self._start(seed, options)
        obs = {a: {"messages": self._take(a)} for a in self.agents}
        return obs, {a: self._info(a, {}, None, False) for a in self.agents}

    def _take(self, agent: str) -> list[Message]:
        msgs, self._pending[agent] = self._pending.get(agent, []), []
        return msgs

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise RuntimeError("the game has ended; call reset() to start a new one")
        unknown = set(actions) - set(self.agents)
        if unknown:
            raise ValueError(f"actions for agents not in the game: {sorted(unknown)}")
        self.turn += 1
        full = {a: actions.get(a) for a in self.agents}  # a missing action is an unusable one
        out, errors = self._apply_actions(full, self._play_round, judge_empty=True)
        truncated = not out.done and self.turn >= self.max_turns
        if truncated:
            note = f"The game reached its limit of {self.max_turns} rounds and ends without a result."
            for a in self.agents:
                self._pending[a].append({"role": "user", "content": note})
        agents = list(self.agents)
        obs = {a: {"messages": self._take(a)} for a in agents}
        rewards = {a: float(sum(out.rewards.get(a, {}).values())) for a in agents}
        terms = {a: bool(out.done) for a in agents}
        truncs = {a: truncated for a in agents}
        infos = {a: self._info(a, out.rewards.get(a, {}), errors.get(a), out.success.get(a, False)) for a in agents}
        if out.done or truncated:
            self.agents = []
        return obs, rewards, terms, truncs, infos


def is_multiagent(env: Any) -> bool:
    """True for the multi-agent text games of this module."""
    return isinstance(env, _TextGame)
