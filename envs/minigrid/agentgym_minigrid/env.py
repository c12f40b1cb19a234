"""The MiniGrid text environments: :class:`MiniGridEnv` and one subclass per family.

An episode is one minigrid level. The opening user message holds the mission and the
text view (see :mod:`agentgym_minigrid.text`); each reply is a list of action words,
each of which steps the minigrid env (stopping early if the episode ends); the answer
says what every action did, then the new view.

Reward parts (they sum to the reward of a step):

- ``success``: ``success_reward`` on the step that completes the mission;
- ``subgoal``: ``subgoal_reward`` for each planner subgoal reached during the step
  (in order, each once; see :mod:`agentgym_minigrid.subgoals`);
- ``invalid``: ``invalid_penalty`` when the reply had no usable action (nothing was
  done) or more than ``max_actions`` (the first ``max_actions`` were done).

The episode ends (``terminated``) when the mission is complete or failed (a BabyAI level
judged a wrong action final). It is truncated when minigrid's step budget is spent or
after ``max_turns`` replies.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any, ClassVar

import numpy as np

from agentgym import Categorical, Feedback, HeldOut, Integer, ParamSpace, Region, TaskSpec, TextEnv
from agentgym.env import positive_int
from agentgym_minigrid import levels
from agentgym_minigrid.subgoals import KINDS, Subgoal, follow_action, plan_subgoals
from agentgym_minigrid.text import (
    ACTION_WORDS,
    ALLOWED_TEXT,
    READERS,
    ActionError,
    outcome,
    parse_actions,
    render_view,
    snapshot,
)
from agentgym_minigrid.view import egocentric

SYSTEM_PROMPT = (
    "You control an agent in a grid world. Each turn you read what the agent sees and reply "
    "with actions: turn left, turn right, go forward, pick up, drop, toggle (open or close the "
    "door in front; a locked door opens only if you carry its key), done. Give up to {cap} "
    'actions per reply separated by commas, e.g. "turn left, go forward, go forward".\n'
    'Positions are relative to you: "2 ahead, 1 left" is 2 cells in the direction you face '
    "and 1 cell to your left. You see a 7x7 square in front of you (you stand in the middle of "
    "its back row); walls and closed doors hide what is behind them, and cells not mentioned "
    "are empty floor or hidden. To pick up or open something, stand next to it and face it. "
    "You can carry one object."
)

_FAMILY_DIM_DOC = "level family: " + "; ".join(f"{f}: {d}" for f, d in levels.DESCRIPTIONS.items())
PARAM_DIMS = (
    Integer(
        "size", *levels.SIZE_RANGE, description="room (or grid) side in cells, walls included; per family in the README"
    ),
    Integer(
        "count",
        *levels.COUNT_RANGE,
        description="rooms, and with them objects, per family in the README (unused by empty, doorkey)",
    ),
    Categorical("show_subgoals", (False, True), description="show the planner's current subgoal in every observation"),
)
HELD_OUT_SEEDS = range(1_000_000_000, 1_000_000_000 + 1_000_000)


def _no_obs(self: Any = None) -> dict[str, Any]:
    """Stands in for minigrid's per-step ``gen_obs``: the text view is built once per turn."""
    return {}


class MiniGridEnv(TextEnv):
    """MiniGrid and BabyAI levels through a text view, with planner subgoals.

    Keyword arguments (also ``env.kwargs`` in a run config):

    - ``max_turns`` (20): replies before the episode is truncated;
    - ``max_actions`` (8): actions done per reply at most;
    - ``success_reward`` (1.0), ``subgoal_reward`` (0.1), ``invalid_penalty`` (-0.1);
    - ``show_subgoals`` (None): ``None`` follows the task's ``show_subgoals`` parameter,
      ``True``/``False`` force it (e.g. hidden for an evaluation);
    - ``subgoal_kind`` ("instruction"): how a shown subgoal is worded: ``instruction``,
      ``object`` or ``position``;
    - ``system_prompt``: replaces the default (``{cap}`` is filled with ``max_actions``);
    - ``oracle_actions`` (1): actions in one :meth:`oracle` reply, at most ``max_actions``.
      Above 1 the bot plans ahead on a copy of the level (the reply stops early where the
      episode ends), so its demonstrations fit tasks into few turns: with 4 turns the bot
      solves no DoorKey at one action per turn and all of sizes 5-6 at six.
    - ``action_reader`` ("strict"): ``"lenient"`` pulls action phrases out of prose
      ("I will turn left to face the key") and skips what is not an action, where the
      strict reader refuses the whole reply (see :func:`agentgym_minigrid.text.parse_actions`).
    """

    param_space: ClassVar[ParamSpace] = ParamSpace(
        [Categorical("family", levels.FAMILIES, description=_FAMILY_DIM_DOC), *PARAM_DIMS]
    )
    held_out: ClassVar[HeldOut] = HeldOut(
        seeds=HELD_OUT_SEEDS, region=Region({"family": ["doorkey"], "size": [7]}, name="doorkey, size 7")
    )
    max_action_chars: ClassVar[int] = 8192

    def __init__(
        self,
        max_turns: int = 20,
        max_actions: int = 8,
        success_reward: float = 1.0,
        subgoal_reward: float = 0.1,
        invalid_penalty: float = -0.1,
        show_subgoals: bool | None = None,
        subgoal_kind: str = "instruction",
        system_prompt: str | None = None,
        oracle_actions: int = 1,
        action_reader: str = "strict",
        render_mode: str | None = None,
    ):
        super().__init__(render_mode=render_mode)
        if subgoal_kind not in KINDS:
            raise ValueError(f"subgoal_kind must be one of {KINDS}, got {subgoal_kind!r}")
        if show_subgoals is not None and not isinstance(show_subgoals, bool):
            raise ValueError(f"show_subgoals must be None, True or False, got {show_subgoals!r}")
        self.max_turns = positive_int("max_turns", max_turns)
        self.max_actions = positive_int("max_actions", max_actions)
        self.oracle_actions = positive_int("oracle_actions", oracle_actions)
        if self.oracle_actions > self.max_actions:
            raise ValueError(f"oracle_actions ({oracle_actions}) must not exceed max_actions ({max_actions})")
        if action_reader not in READERS:
            raise ValueError(f"action_reader must be one of {READERS}, got {action_reader!r}")
        self.action_reader = action_reader
        self.success_reward = float(success_reward)
        self.subgoal_reward = float(subgoal_reward)
        self.invalid_penalty = float(invalid_penalty)
        self.invalid_action_penalty = self.invalid_penalty
        self.show_subgoals_override = show_subgoals
        self.subgoal_kind = subgoal_kind
        self.system_prompt = (system_prompt or SYSTEM_PROMPT).replace("{cap}", str(max_actions))
        self._levels: dict[tuple[str, int, int], Any] = {}
        self.minigrid: Any = None
        self.subgoals: list[Subgoal] = []
        self.subgoal_index = 0
        self.show_subgoals = False
        self.actions_done: list[int] = []
        self._bot: Any = None
        self._bot_synced = 0
        self._bot_next: int | None = None
        self._shadow: MiniGridEnv | None = None  # the copy the last multi-action plan ran on

    # ----- episode ---------------------------------------------------------------------
    def _level(self, params: dict[str, Any]) -> Any:
        key = (params["family"], params["size"], params["count"])
        env = self._levels.get(key)
        if env is None:
            env = levels.build(*key)
            env.gen_obs = _no_obs  # the text view is computed once per turn from the grid
            self._levels[key] = env
        return env

    def content_key(self, task: TaskSpec) -> str:
        """The level as laid out (the whole grid, the agent's start and direction) and its
        mission; whether subgoals are shown does not make another problem."""
        params = self.param_space.validate(task.params)
        key = (params["family"], params["size"], params["count"])
        cache = self.__dict__.setdefault("_key_levels", {})  # not the episode's levels: keying leaves them be
        env = cache.get(key)
        if env is None:
            env = cache[key] = levels.build(*key)
            env.gen_obs = _no_obs
        levels.reset_level(env, int(np.random.default_rng(int(task.seed)).integers(0, 2**31 - 1)))
        u = env.unwrapped
        grid = hashlib.sha256(u.grid.encode().tobytes()).hexdigest()[:32]
        return f"{params['family']}|{u.width}x{u.height}|{grid}|{tuple(u.agent_pos)}|{u.agent_dir}|{u.mission}"

    def _reset(self, params: dict[str, Any], rng: np.random.Generator) -> list[dict[str, str]]:
        env = self._level(params)
        levels.reset_level(env, int(rng.integers(0, 2**31 - 1)))
        self.minigrid = env
        self.subgoals = plan_subgoals(env)
        self.subgoal_index = 0
        self._advance_subgoals()  # already true at the start (facing the key): skipped, unpaid
        override = self.show_subgoals_override
        self.show_subgoals = bool(params["show_subgoals"]) if override is None else override
        self.actions_done = []
        self._bot = None
        self._bot_synced = 0
        self._bot_next = None
        self._shadow = None
        parts = [f"Mission: {env.mission}", self.view_text()]
        line = self.subgoal_line()
        if line:
            parts.append(line)
        return [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": "\n".join(parts)},
        ]

    def _step(self, action: str) -> Feedback:
        env = self.minigrid
        try:
            actions, warning = parse_actions(action, self.max_actions, self.action_reader)
        except ActionError as exc:
            error = str(exc)
            return Feedback(
                messages=[{"role": "user", "content": f"Error: {error} Nothing was done."}],
                reward_parts={"success": 0.0, "subgoal": 0.0, "invalid": self.invalid_penalty},
                error=error,
            )
        said: list[str] = []
        reached: list[Subgoal] = []
        terminated = truncated = success = False
        for a in actions:
            before = snapshot(env)
            _, reward, term, trunc, _ = env.step(a)
            self.actions_done.append(a)
            said.append(outcome(a, before, env))
            reached.extend(self._advance_subgoals())
            if term:
                terminated, success = True, bool(reward > 0)
                break
            if trunc:  # minigrid's step budget: a truncation, not an outcome of the task
                truncated = True
                break
        parts = {
            "success": self.success_reward if success else 0.0,
            "subgoal": self.subgoal_reward * len(reached),
            "invalid": self.invalid_penalty if warning else 0.0,
        }
        if terminated or truncated:
            return Feedback(
                messages=[],
                reward_parts=parts,
                terminated=terminated,
                truncated=truncated,
                success=success,
                error=warning,
            )
        lines = [" ".join(said)]
        if warning:
            lines.append(f"Note: {warning}.")
        if self.show_subgoals and reached:
            lines.append("Subgoal done: " + "; ".join(sg.describe(env, "instruction") for sg in reached) + ".")
        lines.append(self.view_text())
        line = self.subgoal_line()
        if line:
            lines.append(line)
        return Feedback(messages=[{"role": "user", "content": "\n".join(lines)}], reward_parts=parts, error=warning)

    def _advance_subgoals(self) -> list[Subgoal]:
        out = []
        while self.subgoal_index < len(self.subgoals) and self.subgoals[self.subgoal_index].reached(self.minigrid):
            out.append(self.subgoals[self.subgoal_index])
            self.subgoal_index += 1
        return out

    # ----- words ------------------------------------------------------------------------
    def view_text(self) -> str:
        """The text view of the current state (what the agent sees)."""
        env = self.minigrid
        cells, visible = egocentric(env)
        return render_view(
            cells, visible, env.agent_view_size, env.agent_dir, env.carrying, steps_left=env.max_steps - env.step_count
        )

    def subgoal_line(self) -> str | None:
        if not self.show_subgoals or self.subgoal_index >= len(self.subgoals):
            return None
        sg = self.subgoals[self.subgoal_index]
        return (
            f"Subgoal {self.subgoal_index + 1} of {len(self.subgoals)}: "
            f"{sg.describe(self.minigrid, self.subgoal_kind)}."
        )

    @property
    def current_subgoal(self) -> Subgoal | None:
        if self.subgoal_index < len(self.subgoals):
            return self.subgoals[self.subgoal_index]
        return None

    # ----- oracle -----------------------------------------------------------------------
    def oracle(self) -> str:
        """The next reply of minigrid's BabyAI bot (see :mod:`agentgym_minigrid.bots`): one
        action word, or with ``oracle_actions`` above 1 up to that many, comma-separated.

        Several actions are planned on a copy of the level (the bot sees the true state
        and the level is deterministic), stopping after the action that ends the episode;
        the real level is not touched. The bot follows the episode
        action by action (advising mode: it replans after whatever was done). If the agent
        did several actions since the last call the bot starts afresh; if it fails, the
        planner's subgoal follower answers instead.
        """
        if self.minigrid is None or self.task is None:
            raise RuntimeError("call reset() before oracle()")
        if self.oracle_actions == 1:
            return ACTION_WORDS[self.oracle_action()]
        # Plan on a copy. When the agent did exactly the last plan, continue from that plan's
        # copy (the same state, and a bot that remembers what it explored); else from the
        # real level, where the bot starts afresh.
        shadow = self._shadow
        base = shadow if shadow is not None and shadow.actions_done == self.actions_done else self
        sim = copy.copy(base)  # the env object's fields, with copies of what stepping changes
        sim.minigrid, sim._bot, sim.subgoals = copy.deepcopy((base.minigrid, base._bot, base.subgoals))
        sim.actions_done = list(base.actions_done)
        sim._shadow = None
        words = []
        for _ in range(self.oracle_actions):
            a = sim.oracle_action()
            words.append(ACTION_WORDS[a])
            _, _, term, trunc, _ = sim.minigrid.step(a)
            sim.actions_done.append(a)
            sim._advance_subgoals()  # the bot's fallback follows the current subgoal
            if term or trunc:
                break
        self._shadow = sim
        return ", ".join(words)

    def oracle_action(self) -> int:
        from agentgym_minigrid.bots import bot_action, make_bot

        env = self.minigrid
        n = len(self.actions_done)
        if self._bot != "failed":
            try:
                if self._bot is None or n - self._bot_synced > 1:
                    self._bot = make_bot(env)
                    self._bot_next = bot_action(self._bot, env, None)
                elif n - self._bot_synced == 1:
                    self._bot_next = bot_action(self._bot, env, self.actions_done[-1])
                self._bot_synced = n
                assert self._bot_next is not None
                return self._bot_next
            except Exception:  # the bot's own asserts, on states it did not plan for
                self._bot = "failed"
        sg = self.current_subgoal
        return follow_action(env, sg) if sg is not None else 6


def _family_env(family: str) -> type[MiniGridEnv]:
    """The env class of one family: the same dims with ``family`` fixed."""
    region = MiniGridEnv.held_out.region
    own = region is not None and family in region.constraints["family"]
    dims = list(PARAM_DIMS)
    if family in levels.COUNT_UNUSED:  # one value: a teacher wastes no arm on a dim that changes nothing
        dims[1] = Integer("count", 1, 1, description=f"unused by {family}")
    space = ParamSpace([Categorical("family", (family,), description=levels.DESCRIPTIONS[family]), *dims])
    held_out = HeldOut(
        seeds=HELD_OUT_SEEDS,
        region=Region({"size": list(region.constraints["size"])}, name=f"{family}, size 7") if own else None,
    )
    name = "".join(p.capitalize() for p in family.split("_")) + "Env"
    cls = type(
        name,
        (MiniGridEnv,),
        {
            "param_space": space,
            "held_out": held_out,
            "__doc__": f"MiniGrid text env, {family} only: {levels.DESCRIPTIONS[family]}.",
        },
    )
    cls.__module__ = __name__
    return cls


EmptyEnv = _family_env("empty")
DoorkeyEnv = _family_env("doorkey")
MultiroomEnv = _family_env("multiroom")
KeycorridorEnv = _family_env("keycorridor")
GotoEnv = _family_env("goto")
OpenEnv = _family_env("open")
PickupEnv = _family_env("pickup")
PutnextEnv = _family_env("putnext")

__all__ = ["ALLOWED_TEXT", "MiniGridEnv", *(f"{f.capitalize()}Env" for f in levels.FAMILIES)]
