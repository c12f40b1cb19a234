"""The BabyAI bot playing from the text alone: the proof that the text view loses nothing.

:class:`TextBot` never touches the environment object. It reads the chat messages an
agent gets (the mission, the per-action feedback, the view), rebuilds a map from them
and runs minigrid's BabyAI bot on that map; the bot's action comes back as an action
word that goes through ``env.step(text)`` like any model's reply.

How the map is rebuilt:

- The facing direction is in the text ("You face east"). The position is dead-reckoned
  from the start: "You went forward." moves one cell, "You could not go forward" does
  not. The map's origin is the start cell, in the middle of a canvas larger than any
  level (``margin`` cells each side).
- Each view lists every visible non-empty cell (objects with their state, walls as
  rows/columns). Which cells are visible follows from those contents alone (minigrid's
  occlusion pass reads only visible cells), so the bot recomputes the exact visibility
  mask and writes visible cells into the map: listed contents, everything else empty.
- Objects keep their identity across views while they stay in place (the bot tracks
  objects by identity), and a carried object keeps its identity when put down.

The bot gets a minimal stand-in env (:class:`MapEnv`) with the attributes it reads, and
the mission parsed into minigrid's instruction classes (:func:`~agentgym_minigrid.bots.parse_mission`).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from minigrid.core.actions import Actions
from minigrid.core.grid import Grid
from minigrid.core.world_object import Ball, Box, Door, Goal, Key, Lava, Wall, WorldObj

from agentgym_minigrid.bots import FastBot, GoalDesc, instr_descs, is_goal_mission, parse_mission
from agentgym_minigrid.text import ACTION_WORDS, DONE, FORWARD
from agentgym_minigrid.view import DIR_NAMES, DIR_VECS, occlusion_mask

VIEW = 7
_COLORS = "red|green|blue|purple|yellow|grey"
_NAME = re.compile(rf"^(?:a|an|the)\s+(?:(open|closed|locked)\s+)?({_COLORS})\s+(key|ball|box|door|goal)$")
_LAT = r"(centre|\d+ left|\d+ right)"


class TextParseError(ValueError):
    """The text is not in the env's view format."""


def parse_object(text: str) -> WorldObj:
    text = text.strip()
    if text == "lava":
        return Lava()
    if text in ("a wall", "the wall"):
        return Wall()
    m = _NAME.match(text)
    if not m:
        raise TextParseError(f"unknown object {text!r}")
    state, color, kind = m.groups()
    if kind == "door":
        return Door(color, is_open=state == "open", is_locked=state == "locked")
    return {"key": Key, "ball": Ball, "box": Box, "goal": Goal}[kind](color)


def parse_position(text: str) -> tuple[int, int]:
    """``(ahead, lateral)`` of "2 ahead, 1 left" (lateral < 0 is left)."""
    ahead = lat = 0
    for part in text.split(","):
        n, _, word = part.strip().partition(" ")
        if word == "ahead":
            ahead = int(n)
        elif word == "behind":
            ahead = -int(n)
        elif word == "left":
            lat = -int(n)
        elif word == "right":
            lat = int(n)
        else:
            raise TextParseError(f"bad position {text!r}")
    return ahead, lat


def _lateral(text: str) -> int:
    if text == "centre":
        return 0
    n, word = text.split()
    return -int(n) if word == "left" else int(n)


def parse_walls(text: str) -> set[tuple[int, int]]:
    cells: set[tuple[int, int]] = set()
    for seg in text.split(";"):
        seg = seg.strip()
        m = re.fullmatch(rf"row (\d+) ahead from {_LAT} to {_LAT}", seg)
        if m:
            a, lo, hi = int(m.group(1)), _lateral(m.group(2)), _lateral(m.group(3))
            cells.update((a, lat) for lat in range(lo, hi + 1))
            continue
        m = re.fullmatch(rf"column {_LAT} from (\d+) to (\d+) ahead", seg)
        if m:
            lat, lo, hi = _lateral(m.group(1)), int(m.group(2)), int(m.group(3))
            cells.update((a, lat) for a in range(lo, hi + 1))
            continue
        cells.add(parse_position(seg))
    return cells


def parse_view(content: str) -> dict[str, Any]:
    """The facts of one observation: direction, carried object, objects, walls, feedback."""
    out: dict[str, Any] = {"objects": [], "walls": set(), "moved": "You went forward" in content}
    m = re.search(r"You face (\w+)\.", content)
    if not m or m.group(1) not in DIR_NAMES:
        raise TextParseError("no 'You face ...' in the observation")
    out["dir"] = DIR_NAMES.index(m.group(1))
    m = re.search(r"You carry (nothing|[^.]+)\.", content)
    out["carrying"] = None if m is None or m.group(1) == "nothing" else parse_object(m.group(1))
    m = re.search(r"^You see: (.*)\.$", content, re.MULTILINE)
    if m:
        for item in m.group(1).split(";"):
            what, _, where = item.strip().rpartition(" at ")
            out["objects"].append((parse_position(where), parse_object(what)))
    m = re.search(r"^Walls: (.*)\.$", content, re.MULTILINE)
    if m:
        out["walls"] = parse_walls(m.group(1))
    m = re.search(r"^Mission: (.*)$", content, re.MULTILINE)
    out["mission"] = m.group(1).strip() if m else None
    return out


class _AnyRoom:
    @staticmethod
    def pos_inside(x: int, y: int) -> bool:
        return True


class _MapGrid(Grid):
    """The map's grid: minigrid's :class:`Grid` without the bounds asserts in ``get``.

    The bot scans the whole map to find objects by description; on a canvas larger than
    any level that scan is most of its time, and the asserts most of the scan.
    """

    def get(self, i: int, j: int) -> WorldObj | None:
        return self.grid[j * self.width + i]


class MapEnv:
    """The stand-in env the bot plans on: a map rebuilt from text, the agent's pose."""

    agent_view_size = VIEW
    actions = Actions

    def __init__(self, size: int, instrs: Any):
        self.grid = _MapGrid(size, size)
        self.width = self.height = size
        self.agent_pos: tuple[int, int] = (size // 2, size // 2)
        self.agent_dir = 0
        self.carrying: WorldObj | None = None
        self.instrs = instrs
        self.see_through_walls = False

    @property
    def unwrapped(self) -> MapEnv:
        return self

    @property
    def dir_vec(self) -> np.ndarray:
        return np.array(DIR_VECS[self.agent_dir])

    @property
    def right_vec(self) -> np.ndarray:
        dx, dy = DIR_VECS[self.agent_dir]
        return np.array((-dy, dx))

    @property
    def front_pos(self) -> np.ndarray:
        return np.array(self.agent_pos) + self.dir_vec

    def relative(self, x: int, y: int) -> tuple[int, int]:
        fx, fy = DIR_VECS[self.agent_dir]
        dx, dy = x - self.agent_pos[0], y - self.agent_pos[1]
        return dx * fx + dy * fy, dx * (-fy) + dy * fx

    def in_view(self, x: int, y: int) -> bool:
        ahead, lat = self.relative(int(x), int(y))
        return 0 <= ahead < VIEW and abs(lat) <= VIEW // 2

    def room_from_pos(self, x: int, y: int) -> Any:
        return _AnyRoom()


class _MapBot(FastBot):
    """The BabyAI bot on a :class:`MapEnv`: visibility comes from the text, not a view call."""

    def _process_obs(self) -> None:
        pass

    def _find_obj_pos(self, obj_desc: Any, adjacent: bool = False) -> Any:
        # On the real grid every matching object is known, seen or not, and only seen ones
        # are used; on a map built from text the unseen ones are simply not there yet.
        if not obj_desc.obj_set:
            return None, None
        return super()._find_obj_pos(obj_desc, adjacent)


class TextBot:
    """Plays an episode from the env's messages only; :meth:`act` returns the next reply.

    ``margin``: cells of map on each side of the start. Every visible cell lies inside the
    level, so levels up to ``margin + 1`` cells wide and high fit (this package's largest,
    MultiRoom, is 25x25); the bot scans the whole map, so a bigger one only costs time.
    """

    def __init__(self, margin: int = 25):
        self.margin = margin
        self.env: MapEnv | None = None
        self.bot: _MapBot | None = None
        self.last: int | None = None
        self.steps = 0
        #: Non-wall objects on the map by position.
        self.objects: dict[tuple[int, int], WorldObj] = {}

    def act(self, messages: list[dict[str, str]]) -> str:
        """The action word for the newest observation (the last user message)."""
        content = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
        facts = parse_view(content)
        if self.env is None:
            if facts["mission"] is None:
                raise TextParseError("the first observation has no 'Mission: ...' line")
            instrs = parse_mission(facts["mission"])
            self.env = MapEnv(2 * self.margin + 1, instrs)
        elif self.last == FORWARD and facts["moved"]:
            fx, fy = DIR_VECS[self.env.agent_dir]
            x, y = self.env.agent_pos[0] + fx, self.env.agent_pos[1] + fy
            if not (0 < x < self.env.width - 1 and 0 < y < self.env.height - 1):
                raise TextParseError(f"the agent left the map: make TextBot(margin=...) larger than {self.margin}")
            self.env.agent_pos = (x, y)
        env = self.env
        before_front = env.grid.get(*env.front_pos)
        env.agent_dir = facts["dir"]
        self._update_carrying(facts["carrying"], before_front)
        if self.bot is None:
            self.bot = _MapBot(env)
        self._update_map(facts)
        self._refresh_descs()
        a = int(self.bot.replan(None if self.last is None else Actions(self.last)))
        if a == DONE and is_goal_mission(env.instrs):
            front = env.grid.get(*env.front_pos)
            if front is not None and front.type == "goal":
                a = FORWARD
        self.last = a
        self.steps += 1
        return ACTION_WORDS[a]

    def _update_carrying(self, seen: WorldObj | None, before_front: WorldObj | None) -> None:
        env = self.env
        if seen is None:
            env.carrying = None
            return
        cur = env.carrying
        if cur is not None and (cur.type, cur.color) == (seen.type, seen.color):
            return
        if before_front is not None and (before_front.type, before_front.color) == (seen.type, seen.color):
            env.carrying = before_front  # the object just picked up keeps its identity
        else:
            env.carrying = seen
        env.carrying.cur_pos = np.array([-1, -1])

    def _update_map(self, facts: dict[str, Any]) -> None:
        env, bot = self.env, self.bot
        half = VIEW // 2
        local: list[Any] = [None] * (VIEW * VIEW)
        described = [False] * (VIEW * VIEW)
        for (ahead, lat), obj in facts["objects"]:
            k = (VIEW - 1 - ahead) * VIEW + half + lat
            local[k], described[k] = obj, True
        for ahead, lat in facts["walls"]:
            k = (VIEW - 1 - ahead) * VIEW + half + lat
            local[k], described[k] = Wall(), True
        visible = occlusion_mask(local, VIEW)
        agent_k = (VIEW - 1) * VIEW + half
        ax, ay = env.agent_pos
        fx, fy = DIR_VECS[env.agent_dir]
        rx, ry = -fy, fx
        dropped = self._last_carried
        bot.mark_seen(ax, ay)  # the agent's own cell (its content is not described)
        for k in range(VIEW * VIEW):
            if k == agent_k or not (visible[k] or described[k]):
                continue
            vj, vi = divmod(k, VIEW)
            ahead, lat = VIEW - 1 - vj, vi - half
            x, y = ax + fx * ahead + rx * lat, ay + fy * ahead + ry * lat
            if not (0 <= x < env.width and 0 <= y < env.height):
                continue
            new, old = local[k], env.grid.get(x, y)
            if new is None:
                env.grid.set(x, y, None)
                self.objects.pop((x, y), None)
            elif old is not None and (old.type, old.color) == (new.type, new.color):
                if old.type == "door":
                    old.is_open, old.is_locked = new.is_open, new.is_locked
            else:
                if (
                    dropped is not None
                    and env.carrying is None
                    and (dropped.type, dropped.color) == (new.type, new.color)
                ):
                    new, dropped = dropped, None  # the object just put down keeps its identity
                new.cur_pos = (x, y)
                env.grid.set(x, y, new)
                if new.type == "wall":
                    self.objects.pop((x, y), None)
                else:
                    self.objects[(x, y)] = new
            bot.mark_seen(x, y)
        self._last_carried = env.carrying

    _last_carried: WorldObj | None = None

    def _refresh_descs(self) -> None:
        """Point every object description of the mission at the matching objects on the map."""
        for d in instr_descs(self.env.instrs):
            objs, poss = [], []
            for pos, c in sorted(self.objects.items(), key=lambda item: (item[0][1], item[0][0])):
                if (isinstance(d, GoalDesc) or d.type is not None) and c.type != d.type:
                    continue
                if d.color is not None and c.color != d.color:
                    continue
                objs.append(c)
                poss.append(pos)
            d.obj_set, d.obj_poss = objs, poss
