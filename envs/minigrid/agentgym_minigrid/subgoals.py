"""Subgoals: a planner that reads the true state and splits the mission into steps.

:func:`plan_subgoals` turns the mission of a minigrid env (a goal square, a KeyCorridor
object, or a BabyAI instruction: go to / open / pick up / put next, also in sequences)
into an ordered list of :class:`Subgoal`. For DoorKey: go to the key, pick it up, go to
the door, open it, go to the goal. Doors on the way are opened first (a locked one after
fetching its key, dropping what the agent carried if it needs its hands), and an object
is put down before another is picked up.

A subgoal is reached when its condition holds in the true state (:meth:`Subgoal.reached`);
the env checks the current subgoal after every primitive action, rewards each one once,
in order, and moves to the next. Subgoals reached out of order (a door the agent already
opened) are passed over at once, with their reward; those that already hold when the
episode starts (the agent spawned facing the key) are skipped without reward.

Each subgoal can be shown in one of three forms, as in "Words as Beacons"
(:meth:`Subgoal.describe`):

- ``position``: the target cell relative to the agent now ("cell 2 ahead, 1 left");
- ``object``: the target object ("the yellow key");
- ``instruction``: an instruction ("pick up the yellow key").

Position and object forms add the action in brackets when there is one ("the yellow
key [pick up]"). :func:`follow` is a planner-and-search agent that carries out one
subgoal from the true state: tests use it to show that following the planner's
subgoals completes the mission.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass
from typing import Any

from agentgym_minigrid.text import DROP, FORWARD, LEFT, PICKUP, RIGHT, TOGGLE, plain_name, position
from agentgym_minigrid.view import DIR_VECS

KINDS = ("instruction", "object", "position")
#: What a subgoal asks for: go and face an object, stand on it (a goal square), pick it
#: up, open a door, put down what is carried, face a free cell next to an object (to put
#: something there), put the carried object down next to it.
VERBS = ("goto", "reach", "pickup", "open", "drop", "goto_next", "put_next")


@dataclass
class Subgoal:
    verb: str
    #: The object the plan chose (the one whose position the ``position`` form gives).
    obj: Any
    #: Every object that satisfies the subgoal ("go to a red ball": any red ball).
    matches: tuple[Any, ...] = ()
    #: ``put_next`` / ``goto_next``: the object being carried to ``obj``.
    moving: Any = None
    #: A goal square's position (``reach``), fixed.
    pos: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if not self.matches and self.obj is not None:
            self.matches = (self.obj,)

    # ----- condition ------------------------------------------------------------------
    def reached(self, env: Any) -> bool:
        env = env.unwrapped
        verb = self.verb
        if verb == "goto":
            front = _front_cell(env)
            return front is not None and any(front is m for m in self.matches)
        if verb == "reach":
            return tuple(int(v) for v in env.agent_pos) == self.pos
        if verb == "pickup":
            return env.carrying is not None and any(env.carrying is m for m in self.matches)
        if verb == "open":
            return any(m.is_open for m in self.matches)
        if verb == "drop":
            return env.carrying is not self.obj
        if verb == "goto_next":
            front = _front_pos(env)
            return (
                env.carrying is self.moving
                and _cell(env, front) is None
                and any(_adjacent(front, p) for p in _positions(env, self.matches))
            )
        if verb == "put_next":
            if env.carrying is self.moving:
                return False
            here = _position_of(env, self.moving)
            return here is not None and any(_adjacent(here, p) for p in _positions(env, self.matches))
        raise ValueError(f"unknown subgoal verb {verb!r}")

    # ----- words ----------------------------------------------------------------------
    def describe(self, env: Any, kind: str = "instruction") -> str:
        if kind not in KINDS:
            raise ValueError(f"subgoal kind must be one of {KINDS}, got {kind!r}")
        env = env.unwrapped
        target = plain_name(self.obj) if self.obj is not None else "it"
        if kind == "instruction":
            return {
                "goto": f"go to {target}",
                "reach": f"step onto {target}",
                "pickup": f"pick up {target}",
                "open": f"open {target}",
                "drop": f"drop {target}",
                "goto_next": f"go next to {target} with {plain_name(self.moving) if self.moving is not None else 'it'}",
                "put_next": f"put {plain_name(self.moving) if self.moving is not None else 'it'} next to {target}",
            }[self.verb]
        tag = {
            "goto": "",
            "reach": " [step onto]",
            "pickup": " [pick up]",
            "open": " [open]",
            "drop": " [drop]",
            "goto_next": " [go next to it]",
            "put_next": " [put down next to it]",
        }[self.verb]
        if kind == "object":
            return target + tag
        if self.verb == "drop":
            return "anywhere free [drop]"
        where = self.pos if self.verb == "reach" else _position_of(env, self.obj)
        if where is None:
            return target + tag
        ahead, lat = relative(env, where)
        return f"cell {position(ahead, lat)}{tag}"


def relative(env: Any, pos: tuple[int, int]) -> tuple[int, int]:
    """``(ahead, lateral)`` of an absolute cell from the agent's pose (lateral > 0: right)."""
    fx, fy = DIR_VECS[env.agent_dir]
    dx, dy = pos[0] - int(env.agent_pos[0]), pos[1] - int(env.agent_pos[1])
    return dx * fx + dy * fy, dx * (-fy) + dy * fx


# ----- state helpers ------------------------------------------------------------------
def _cell(env: Any, pos: tuple[int, int]) -> Any:
    x, y = pos
    g = env.grid
    if 0 <= x < g.width and 0 <= y < g.height:
        return g.grid[y * g.width + x]
    return None


def _front_pos(env: Any) -> tuple[int, int]:
    fx, fy = DIR_VECS[env.agent_dir]
    return int(env.agent_pos[0]) + fx, int(env.agent_pos[1]) + fy


def _front_cell(env: Any) -> Any:
    return _cell(env, _front_pos(env))


def _adjacent(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1


def _position_of(env: Any, obj: Any) -> tuple[int, int] | None:
    """Where ``obj`` lies in the grid now (``None`` when carried or gone)."""
    if obj is None or env.carrying is obj:
        return None
    cp = getattr(obj, "cur_pos", None)
    if cp is not None:
        p = (int(cp[0]), int(cp[1]))
        if _cell(env, p) is obj:
            return p
    g = env.grid
    for k, c in enumerate(g.grid):
        if c is obj:
            return k % g.width, k // g.width
    return None


def _positions(env: Any, objs: tuple[Any, ...]) -> list[tuple[int, int]]:
    return [p for p in (_position_of(env, o) for o in objs) if p is not None]


# ----- the planner ----------------------------------------------------------------------
def mission_steps(env: Any) -> list[tuple[str, tuple[Any, ...], tuple[Any, ...]]]:
    """The mission as ``(verb, objects, fixed_objects)`` steps, read from the true state."""
    env = env.unwrapped
    instrs = getattr(env, "instrs", None)
    if instrs is not None:
        return _instr_steps(instrs)
    target = getattr(env, "obj", None)
    if target is not None and str(env.mission).startswith("pick up"):
        return [("pickup", (target,), ())]
    goals = [c for c in env.grid.grid if c is not None and c.type == "goal"]
    return [("reach", tuple(goals[:1]), ())] if goals else []


def _instr_steps(instr: Any) -> list[tuple[str, tuple[Any, ...], tuple[Any, ...]]]:
    from minigrid.envs.babyai.core.verifier import (
        AfterInstr,
        AndInstr,
        BeforeInstr,
        GoToInstr,
        OpenInstr,
        PickupInstr,
        PutNextInstr,
    )

    if isinstance(instr, (BeforeInstr, AndInstr)):
        return _instr_steps(instr.instr_a) + _instr_steps(instr.instr_b)
    if isinstance(instr, AfterInstr):
        return _instr_steps(instr.instr_b) + _instr_steps(instr.instr_a)
    if isinstance(instr, GoToInstr):
        return [("goto", tuple(instr.desc.obj_set), ())]
    if isinstance(instr, OpenInstr):
        return [("open", tuple(instr.desc.obj_set), ())]
    if isinstance(instr, PickupInstr):
        return [("pickup", tuple(instr.desc.obj_set), ())]
    if isinstance(instr, PutNextInstr):
        return [("put_next", tuple(instr.desc_move.obj_set), tuple(instr.desc_fixed.obj_set))]
    raise ValueError(f"unsupported instruction {type(instr).__name__}")


class _Plan:
    """A virtual walk through the mission: where the agent will be, what it carries."""

    def __init__(self, env: Any):
        self.env = env
        self.pos = (int(env.agent_pos[0]), int(env.agent_pos[1]))
        self.carrying = env.carrying
        self.opened: set[int] = set()  # ids of doors the plan opens
        self.removed: set[int] = set()  # ids of objects the plan picks up
        self.out: list[Subgoal] = []

    def costs(self) -> list[int | None]:
        """Each cell's cost to walk through in the plan (``None``: impassable), flat."""
        key = (len(self.opened), len(self.removed))
        if self._costs is not None and self._costs_key == key:
            return self._costs
        out: list[int | None] = []
        for c in self.env.grid.grid:
            if c is None or id(c) in self.removed:
                out.append(1)
            elif c.type == "door":
                out.append(1 if c.is_open or id(c) in self.opened else 40 if c.is_locked else 3)
            elif c.type in ("wall", "lava", "goal"):
                out.append(None)
            else:
                out.append(60)  # an object in the way: possible, but only as a last resort
        self._costs, self._costs_key = out, key
        return out

    _costs: list[int | None] | None = None
    _costs_key: tuple[int, int] = (-1, -1)

    def search(
        self, targets: set[int] | None, through: int | None = None
    ) -> tuple[dict[int, int], dict[int, int], int | None]:
        """Dijkstra from the plan's position over flat cell indices.

        Stops at the first cell in ``targets`` (``None``: explores everything). ``through``
        is a cell that may be entered even if impassable (a goal square being reached).
        Returns ``(distances, predecessors, reached_target)``.
        """
        w = self.env.grid.width
        n = len(self.env.grid.grid)
        costs = self.costs()
        start = self.pos[1] * w + self.pos[0]
        best = {start: 0}
        prev = {start: -1}
        heap = [(0, start)]
        while heap:
            d, p = heapq.heappop(heap)
            if d > best[p]:
                continue
            if targets is not None and p in targets:
                return best, prev, p
            x = p % w
            for q in (p + 1 if x + 1 < w else -1, p - 1 if x > 0 else -1, p + w, p - w):
                if q < 0 or q >= n:
                    continue
                c = 1 if q == through else costs[q]
                if c is None:
                    continue
                nd = d + c
                if nd < best.get(q, 1 << 30):
                    best[q] = nd
                    prev[q] = p
                    heapq.heappush(heap, (nd, q))
        return best, prev, None

    def route(self, target: tuple[int, int], adjacent: bool) -> list[tuple[int, int]] | None:
        """Cheapest path from the plan's position to ``target`` (or a cell next to it)."""
        w, h = self.env.grid.width, self.env.grid.height
        t = target[1] * w + target[0]
        if adjacent:
            goals = {
                (target[1] + dy) * w + target[0] + dx
                for dx, dy in DIR_VECS
                if 0 <= target[0] + dx < w and 0 <= target[1] + dy < h
            }
            _, prev, end = self.search(goals)
        else:
            _, prev, end = self.search({t}, through=t)
        if end is None:
            return None
        path = []
        while end != -1:
            path.append((end % w, end // w))
            end = prev[end]
        return path[::-1]

    def go_next_to(
        self, target: tuple[int, int], adjacent: bool = True, depth: int = 0
    ) -> list[tuple[int, int]] | None:
        """Open every closed door on the way to ``target`` (adding subgoals); the final path."""
        for _ in range(32):
            path = self.route(target, adjacent)
            if path is None:
                return None
            door = next(
                (
                    (i, c)
                    for i, p in enumerate(path)
                    if (c := _cell(self.env, p)) is not None
                    and c.type == "door"
                    and not c.is_open
                    and id(c) not in self.opened
                ),
                None,
            )
            if door is None:
                return path
            i, c = door
            if not self.open_door(c, path[i], depth + 1):
                return None
        return None

    def open_door(self, door: Any, door_pos: tuple[int, int], depth: int) -> bool:
        if depth > 6:
            return False
        if door.is_locked and not (
            self.carrying is not None and self.carrying.type == "key" and self.carrying.color == door.color
        ):
            keys = [
                c
                for c in self.env.grid.grid
                if c is not None and c.type == "key" and c.color == door.color and id(c) not in self.removed
            ]
            if not keys:
                return False
            key = self.nearest(keys)
            if not self.pick_up((key,), key, depth):
                return False
        path = self.go_next_to(door_pos, True, depth)
        if path is None:
            return False
        self.out.append(Subgoal("goto", door))
        self.out.append(Subgoal("open", door))
        self.opened.add(id(door))
        self.pos = path[-1]
        return True

    def pick_up(self, matches: tuple[Any, ...], obj: Any, depth: int) -> bool:
        pos = _position_of(self.env, obj)
        if pos is None:
            return False
        path = self.go_next_to(pos, True, depth)
        if path is None:
            return False
        if self.carrying is not None:  # hands full (often the key of a door on the way)
            self.out.append(Subgoal("drop", self.carrying))
            self.carrying = None
        self.out.append(Subgoal("goto", obj, matches))
        self.out.append(Subgoal("pickup", obj, matches))
        self.pos = path[-1]
        self.carrying = obj
        self.removed.add(id(obj))
        return True

    def nearest(self, objs: list[Any] | tuple[Any, ...]) -> Any:
        """The object of ``objs`` the plan reaches (next to it) most cheaply."""
        if len(objs) == 1:
            return objs[0]
        w, h = self.env.grid.width, self.env.grid.height
        best_d, _, _ = self.search(None)
        best, best_len = objs[0], 1 << 30
        for o in objs:
            p = _position_of(self.env, o)
            if p is None:
                continue
            for dx, dy in DIR_VECS:
                x, y = p[0] + dx, p[1] + dy
                if 0 <= x < w and 0 <= y < h:
                    d = best_d.get(y * w + x)
                    if d is not None and d < best_len:
                        best, best_len = o, d
        return best

    def step(self, verb: str, objs: tuple[Any, ...], fixed: tuple[Any, ...]) -> bool:
        objs = tuple(o for o in objs if _position_of(self.env, o) is not None or self.env.carrying is o)
        if not objs:
            return False
        if verb == "reach":
            goal = objs[0]
            pos = _position_of(self.env, goal)
            if self.go_next_to(pos, False) is None:
                return False
            self.out.append(Subgoal("reach", goal, pos=pos))
            self.pos = pos
            return True
        if verb == "goto":
            obj = self.nearest(objs)
            path = self.go_next_to(_position_of(self.env, obj), True)
            if path is None:
                return False
            self.out.append(Subgoal("goto", obj, objs))
            self.pos = path[-1]
            return True
        if verb == "open":
            doors = [d for d in objs if not d.is_open]
            if not doors:
                return True
            door = self.nearest(doors)
            return self.open_door(door, _position_of(self.env, door), 0)
        if verb == "pickup":
            if self.carrying is not None and any(self.carrying is o for o in objs):
                return True
            return self.pick_up(objs, self.nearest(objs), 0)
        if verb == "put_next":
            if not (self.carrying is not None and any(self.carrying is o for o in objs)):
                if not self.pick_up(objs, self.nearest(objs), 0):
                    return False
            moving = self.carrying
            fixed = tuple(f for f in fixed if _position_of(self.env, f) is not None)
            if not fixed:
                return False
            target = self.nearest(fixed)
            path = self.go_next_to(_position_of(self.env, target), True)
            if path is None:
                return False
            self.out.append(Subgoal("goto_next", target, fixed, moving=moving))
            self.out.append(Subgoal("put_next", target, fixed, moving=moving))
            self.carrying = None
            return True
        raise ValueError(f"unknown mission verb {verb!r}")


def plan_subgoals(env: Any) -> list[Subgoal]:
    """The ordered subgoals of ``env``'s mission from its current true state.

    An empty list means the planner could not decompose the mission (the env then gives
    no subgoal rewards and shows no subgoal); every family in this package is supported.
    """
    env = env.unwrapped
    plan = _Plan(env)
    for verb, objs, fixed in mission_steps(env):
        if not plan.step(verb, objs, fixed):
            return []
    return plan.out


# ----- a subgoal follower (planner + search) ----------------------------------------
def follow(env: Any, sg: Subgoal) -> int:
    """One primitive action towards ``sg`` from the true state (minigrid action id)."""
    env = env.unwrapped
    verb = sg.verb
    carrying = env.carrying
    front_pos = _front_pos(env)
    if verb in ("goto", "pickup", "open"):
        targets = set(_positions(env, sg.matches))
        if front_pos in targets:
            return {"goto": FORWARD, "pickup": PICKUP, "open": TOGGLE}[verb]
        if verb == "pickup" and carrying is not None:
            return _drop_somewhere(env)
        return _navigate(env, lambda p, f: f in targets)
    if verb == "reach":
        return _navigate(env, lambda p, f: p == sg.pos, allow_goal=True)
    if verb == "drop":
        if carrying is not sg.obj:
            return FORWARD
        return _drop_somewhere(env)
    if verb in ("goto_next", "put_next"):
        if carrying is not sg.moving:
            if _position_of(env, sg.moving) is not None:
                return follow(env, Subgoal("pickup", sg.moving))
        fixed = _positions(env, sg.matches)
        spots = {
            (fx + dx, fy + dy) for fx, fy in fixed for dx, dy in DIR_VECS if _cell(env, (fx + dx, fy + dy)) is None
        }
        if front_pos in spots:
            return DROP
        return _navigate(env, lambda p, f: f in spots)
    raise ValueError(f"unknown subgoal verb {verb!r}")


def _passable(env: Any, c: Any, allow_goal: bool) -> bool:
    if c is None:
        return True
    if c.type == "door":
        if c.is_open or not c.is_locked:
            return True
        k = env.carrying
        return k is not None and k.type == "key" and k.color == c.color
    if c.type == "goal":
        return allow_goal
    return c.can_overlap() and c.type != "lava"


def _navigate(env: Any, accept, allow_goal: bool = False) -> int:
    """First action of a shortest turn/move sequence to a pose where ``accept(pos, front)``.

    Closed doors count as passable; facing one on the way gives ``toggle``.
    """
    start = (int(env.agent_pos[0]), int(env.agent_pos[1]), int(env.agent_dir))
    w, h = env.grid.width, env.grid.height
    first: dict[tuple[int, int, int], int | None] = {start: None}
    queue = deque([start])
    while queue:
        x, y, d = queue.popleft()
        fx, fy = DIR_VECS[d]
        if accept((x, y), (x + fx, y + fy)):
            act = first[(x, y, d)]
            if act is None:
                return FORWARD
            return act
        moves = [((x, y, (d - 1) % 4), LEFT), ((x, y, (d + 1) % 4), RIGHT)]
        nx, ny = x + fx, y + fy
        if 0 <= nx < w and 0 <= ny < h:
            if _passable(env, _cell(env, (nx, ny)), allow_goal):
                moves.append(((nx, ny, d), FORWARD))
        for state, act in moves:
            if state not in first:
                first[state] = first[(x, y, d)] if first[(x, y, d)] is not None else act
                queue.append(state)
    return LEFT  # nowhere to go: turn (the env stays consistent; the step budget ends it)


def _toggle_if_closed(env: Any, action: int) -> int:
    if action == FORWARD:
        c = _front_cell(env)
        if c is not None and c.type == "door" and not c.is_open:
            return TOGGLE
    return action


def _drop_somewhere(env: Any) -> int:
    """Drop the carried object on a free cell whose filling cuts no path (else anywhere)."""
    spots = _drop_spots(env)
    if _front_pos(env) in spots:
        return DROP
    return _toggle_if_closed(env, _navigate(env, lambda p, f: f in spots))


def _drop_spots(env: Any) -> set[tuple[int, int]]:
    w, h = env.grid.width, env.grid.height
    start = (int(env.agent_pos[0]), int(env.agent_pos[1]))

    def reachable(blocked: tuple[int, int] | None) -> set[tuple[int, int]]:
        seen = {start}
        queue = deque([start])
        while queue:
            x, y = queue.popleft()
            for dx, dy in DIR_VECS:
                q = (x + dx, y + dy)
                if q in seen or q == blocked or not (0 <= q[0] < w and 0 <= q[1] < h):
                    continue
                if _passable(env, _cell(env, q), False):
                    seen.add(q)
                    queue.append(q)
        return seen

    region = reachable(None)
    free = [p for p in region if p != start and _cell(env, p) is None]
    # Near first, so the agent does not wander; a cell is good if filling it keeps the rest connected.
    free.sort(key=lambda p: abs(p[0] - start[0]) + abs(p[1] - start[1]))
    good = set()
    for p in free[:24]:
        if len(reachable(p)) == len(region) - 1:
            good.add(p)
            if len(good) >= 4:
                break
    return good or set(free)


def follow_action(env: Any, sg: Subgoal) -> int:
    """:func:`follow`, opening a closed door when the next move walks into one."""
    return _toggle_if_closed(env.unwrapped, follow(env, sg))
