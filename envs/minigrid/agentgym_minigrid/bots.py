"""minigrid's BabyAI bot as the oracle, on every family.

``minigrid.utils.baby_ai_bot.BabyAIBot`` plans from a BabyAI instruction tree
(``env.instrs``). BabyAI levels have one; the MiniGrid families do not, so
:func:`parse_mission` reads their mission text into the same instruction classes:

- "get to the green goal square", "use the key to open the door and then get to the
  goal", "traverse the rooms to get to the goal": go to the goal square (an
  :class:`~minigrid.envs.babyai.core.verifier.ObjDesc` of type ``goal``; the bot stops
  facing it and the driver steps onto it);
- "pick up the blue ball" (KeyCorridor): a pickup instruction, as in BabyAI.

The bot's planning is minigrid's own. :class:`FastBot` only replaces two inner pieces
with equivalent faster code: the breadth-first search (a deque instead of list slicing,
the same visiting order) and the visibility update (the view from
:func:`agentgym_minigrid.view.egocentric` instead of a second ``gen_obs_grid``). A test
checks that both bots choose the same actions.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any

from minigrid.core.actions import Actions
from minigrid.envs.babyai.core.verifier import (
    AfterInstr,
    AndInstr,
    BeforeInstr,
    GoToInstr,
    ObjDesc,
    OpenInstr,
    PickupInstr,
    PutNextInstr,
)
from minigrid.utils.baby_ai_bot import BabyAIBot

from agentgym_minigrid.view import DIR_VECS, egocentric


class GoalDesc(ObjDesc):
    """An :class:`ObjDesc` for the goal square (BabyAI's language has no word for it)."""

    def __init__(self, color: str | None = None):
        super().__init__(None, None)
        self.type = "goal"
        self.color = color


_OBJ = r"(?:the|a|an)\s+(?:(red|green|blue|purple|yellow|grey)\s+)?(ball|box|key|door|object)"


def parse_mission(text: str) -> Any:
    """A BabyAI instruction tree for a mission sentence (``ValueError`` if unknown)."""
    t = " ".join(str(text).lower().replace(",", " ,").split())
    if "goal" in t and ("get to" in t or "go to" in t or "reach" in t):
        return GoToInstr(GoalDesc())
    # BabyAI's sequences: "A, then B" and "A after you B" (B first), "A and B".
    for sep, cls in (
        (" , then ", BeforeInstr),
        (" then ", BeforeInstr),
        (" after you ", AfterInstr),
        (" and ", AndInstr),
    ):
        if sep in t:
            a, b = t.split(sep, 1)
            return cls(parse_mission(a.strip(" ,")), parse_mission(b.strip(" ,")))
    m = re.fullmatch(rf"put {_OBJ} next to {_OBJ}", t)
    if m:
        return PutNextInstr(_desc(m.group(1), m.group(2)), _desc(m.group(3), m.group(4)))
    for verb, cls in (("go to", GoToInstr), ("open", OpenInstr), ("pick up", PickupInstr)):
        m = re.fullmatch(rf"{verb} {_OBJ}", t)
        if m:
            return cls(_desc(m.group(1), m.group(2)))
    raise ValueError(f"cannot read the mission {text!r}")


def _desc(color: str | None, kind: str) -> ObjDesc:
    return ObjDesc(None if kind == "object" else kind, color)


def instr_descs(instr: Any) -> list[ObjDesc]:
    """Every object description in an instruction tree."""
    if isinstance(instr, (BeforeInstr, AfterInstr, AndInstr)):
        return instr_descs(instr.instr_a) + instr_descs(instr.instr_b)
    return [getattr(instr, a) for a in ("desc", "desc_move", "desc_fixed") if hasattr(instr, a)]


def is_goal_mission(instr: Any) -> bool:
    return isinstance(instr, GoToInstr) and isinstance(instr.desc, GoalDesc)


class _AnyRoom:
    """``room_from_pos`` for grids without rooms (only used for location words)."""

    @staticmethod
    def pos_inside(x: int, y: int) -> bool:
        return True


class BotEnv:
    """What the bot sees as its "mission": the real env plus an instruction tree."""

    def __init__(self, env: Any, instrs: Any):
        self._env = env
        self.instrs = instrs

    @property
    def unwrapped(self) -> BotEnv:
        return self

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_env":  # copy/pickle probe a half-built object
            raise AttributeError(name)
        return getattr(self._env, name)

    def room_from_pos(self, x: int, y: int) -> Any:
        f = getattr(self._env, "room_from_pos", None)
        return f(x, y) if f is not None else _AnyRoom()


class FastBot(BabyAIBot):
    """:class:`BabyAIBot` with a deque BFS and a cheaper visibility update (same decisions).

    ``seen`` mirrors the bot's ``vis_mask`` as a flat bytearray (index ``x * height + y``)
    so the search reads it without numpy indexing; :meth:`mark_seen` writes both.
    """

    def __init__(self, mission: Any):
        super().__init__(mission)
        self._height = int(self.vis_mask.shape[1])
        self.seen = bytearray(self.vis_mask.size)

    def mark_seen(self, x: int, y: int) -> None:
        self.vis_mask[x, y] = True
        self.seen[x * self._height + y] = 1

    def _process_obs(self) -> None:
        env = self.mission.unwrapped
        size = env.agent_view_size
        half = size // 2
        _, visible = egocentric(env)
        ax, ay = int(env.agent_pos[0]), int(env.agent_pos[1])
        fx, fy = DIR_VECS[env.agent_dir]
        rx, ry = -fy, fx
        w, h = self.vis_mask.shape
        for k, v in enumerate(visible):
            if v:
                vj, vi = divmod(k, size)
                ahead, lat = size - 1 - vj, vi - half
                x, y = ax + fx * ahead + rx * lat, ay + fy * ahead + ry * lat
                if 0 <= x < w and 0 <= y < h and not self.seen[x * h + y]:
                    self.mark_seen(x, y)

    def _breadth_first_search(self, initial_states, accept_fn, ignore_blockers):
        # minigrid's search, visiting cells in the same order: a cell is expanded the first
        # time it leaves the queue, so queue entries for cells already expanded are never
        # made (minigrid makes and then skips them).
        self.bfs_counter += 1
        grid = self.mission.unwrapped.grid
        width, flat = grid.width, grid.grid
        seen, height = self.seen, self._height
        queue = deque((state, None) for state in initial_states)
        previous_pos: dict[tuple[int, int], Any] = {}
        while queue:
            (i, j, di, dj), prev = queue.popleft()
            here = (i, j)
            if here in previous_pos:
                continue
            self.bfs_step_counter += 1
            cell = flat[j * width + i]
            previous_pos[here] = prev
            if accept_fn(here, cell):
                path = []
                pos = here
                while pos:
                    path.append(pos)
                    pos = previous_pos[pos]
                return path, here, previous_pos
            if not seen[i * height + j]:
                continue
            if cell:
                if cell.type == "wall":
                    continue
                if cell.type == "door":
                    if not cell.is_open:
                        continue
                elif not ignore_blockers:
                    continue
            for a, b in ((di, dj), (dj, di), (-dj, -di), (-di, -dj)):
                nxt = (i + a, j + b)
                if nxt not in previous_pos:
                    queue.append(((i + a, j + b, a, b), here))
        return None, None, previous_pos


def make_bot(env: Any, fast: bool = True) -> BabyAIBot:
    """A bot for ``env``'s mission (BabyAI's own instructions, else the parsed mission)."""
    env = env.unwrapped
    instrs = getattr(env, "instrs", None)
    if instrs is None:
        instrs = parse_mission(env.mission)
        shim = BotEnv(env, instrs)
        for d in instr_descs(instrs):
            d.find_matching_objs(shim)
    else:
        shim = env  # a BabyAI level: the bot reads it directly
    return (FastBot if fast else BabyAIBot)(shim)


def bot_action(bot: BabyAIBot, env: Any, action_taken: int | None) -> int:
    """The bot's next action as an int; "done" facing the goal square becomes forward."""
    a = bot.replan(None if action_taken is None else Actions(action_taken))
    a = int(a)
    if a == int(Actions.done) and is_goal_mission(bot.mission.unwrapped.instrs):
        env = env.unwrapped
        fx, fy = DIR_VECS[env.agent_dir]
        x, y = int(env.agent_pos[0]) + fx, int(env.agent_pos[1]) + fy
        c = env.grid.get(x, y)
        if c is not None and c.type == "goal":
            return int(Actions.forward)
    return a


def run_bot(env: Any, max_steps: int | None = None, fast: bool = True) -> tuple[bool, list[int]]:
    """Play one episode of a freshly reset minigrid ``env`` with the bot: (success, actions)."""
    env = env.unwrapped
    bot = make_bot(env, fast)
    actions: list[int] = []
    last = None
    limit = max_steps or env.max_steps
    for _ in range(limit):
        a = bot_action(bot, env, last)
        actions.append(a)
        _, reward, terminated, truncated, _ = env.step(a)
        last = a
        if terminated or truncated:
            return bool(terminated and reward > 0), actions
    return False, actions
