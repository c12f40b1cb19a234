"""Level families: how a point of the parameter space becomes a ``minigrid`` environment.

Every family is built from the real ``minigrid`` package:

=========== ============================================ ============================== ==========================
family      minigrid class                               ``size`` (5..8)                ``count`` (1..3)
=========== ============================================ ============================== ==========================
empty       ``minigrid.envs.EmptyEnv`` (random start)    grid side, walls included      not used
doorkey     ``minigrid.envs.DoorKeyEnv``                 grid side, walls included      not used
multiroom   ``minigrid.envs.MultiRoomEnv``               largest room side              rooms = count + 1
keycorridor ``minigrid.envs.KeyCorridorEnv``             room side = size - 2           rows of rooms = count
goto        ``minigrid.envs.babyai.goto.GoTo``           room side                      rooms in a row = count
open        :class:`BabyAILevel` (RoomGridLevel)         room side                      rooms in a row = count + 1
pickup      :class:`BabyAILevel` (RoomGridLevel)         room side                      rooms in a row = count
putnext     :class:`BabyAILevel` (RoomGridLevel)         room side                      rooms in a row = count
=========== ============================================ ============================== ==========================

Objects (:func:`babyai_objects`): goto, pickup and putnext have ``count * (size - 4) + 1``
objects, the target among them; open has ``count * (size - 4)`` (its target is a door).
Fewer objects in small rooms keep BabyAI's reachability check from redrawing the level
too often. ``open``, ``pickup`` and ``putnext`` use :class:`BabyAILevel`, a small
:class:`~minigrid.envs.babyai.core.roomgrid_level.RoomGridLevel` that generates its
mission the way BabyAI's own ``Open``, ``Pickup`` and ``PutNext`` levels do (place the
agent, connect the rooms with closed doors, add objects, check they are reachable, pick
the target, build the instruction with minigrid's verifier classes), with the number of
rooms and objects as parameters: the shipped ``Open`` and ``Pickup`` classes hard-code 18
distractors in a 3x3 maze, far too many for rooms of side 5.

``multiroom`` gets ``40 * rooms`` steps instead of minigrid's ``20 * rooms`` (too few to
open each door with a text agent); every other family keeps minigrid's own step budget.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

FAMILIES: tuple[str, ...] = (
    "empty",
    "doorkey",
    "multiroom",
    "keycorridor",
    "goto",
    "open",
    "pickup",
    "putnext",
)
#: Families whose levels do not depend on ``count``.
COUNT_UNUSED = frozenset({"empty", "doorkey"})
SIZE_RANGE = (5, 8)
COUNT_RANGE = (1, 3)

DESCRIPTIONS = {
    "empty": "an empty room; get to the green goal square",
    "doorkey": "pick up the key, unlock the door, get to the goal",
    "multiroom": "a chain of rooms joined by closed doors; get to the goal in the last one",
    "keycorridor": "find the key in a side room, unlock the locked room, pick up the ball",
    "goto": "BabyAI GoTo: go to an object among distractors",
    "open": "BabyAI Open: open a door of the given colour",
    "pickup": "BabyAI Pickup: pick up an object among distractors",
    "putnext": "BabyAI PutNext: put one object next to another",
}


def _babyai_level_class():
    """:class:`BabyAILevel`, defined on first use so that minigrid loads lazily."""
    global _BABYAI_LEVEL
    if _BABYAI_LEVEL is not None:
        return _BABYAI_LEVEL
    from minigrid.envs.babyai.core.roomgrid_level import RoomGridLevel
    from minigrid.envs.babyai.core.verifier import ObjDesc, OpenInstr, PickupInstr, PutNextInstr

    class BabyAILevel(RoomGridLevel):
        """BabyAI Open / Pickup / PutNext in a row of ``num_cols`` rooms with ``num_objs`` objects."""

        def __init__(self, task: str, room_size: int, num_cols: int, num_objs: int, **kwargs: Any):
            if task not in ("open", "pickup", "putnext"):
                raise ValueError(f"unknown BabyAI task {task!r}")
            self.task = task
            self.num_objs = num_objs
            super().__init__(room_size=room_size, num_rows=1, num_cols=num_cols, **kwargs)

        def gen_mission(self) -> None:
            self.place_agent()
            self.connect_all()
            objs = self.add_distractors(num_distractors=self.num_objs, all_unique=self.task == "putnext")
            self.check_objs_reachable()
            if self.task == "open":
                doors = [d for i in range(self.num_cols) for d in self.get_room(i, 0).doors if d is not None]
                # Each door is listed by both rooms it joins: dedupe by identity, keep order.
                unique = list({id(d): d for d in doors}.values())
                door = self._rand_elem(unique)
                self.instrs = OpenInstr(ObjDesc("door", door.color))
            elif self.task == "pickup":
                obj = self._rand_elem(objs)
                self.instrs = PickupInstr(ObjDesc(obj.type, obj.color))
            else:
                a, b = self._rand_subset(objs, 2)
                self.instrs = PutNextInstr(ObjDesc(a.type, a.color), ObjDesc(b.type, b.color))

    BabyAILevel.__module__ = __name__
    _BABYAI_LEVEL = BabyAILevel
    return BabyAILevel


_BABYAI_LEVEL = None


def build(family: str, size: int, count: int) -> Any:
    """A fresh minigrid environment of ``family`` (call ``reset(seed=...)`` to make a task)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {list(FAMILIES)}")
    if not (SIZE_RANGE[0] <= size <= SIZE_RANGE[1] and COUNT_RANGE[0] <= count <= COUNT_RANGE[1]):
        raise ValueError(f"size must be in {SIZE_RANGE} and count in {COUNT_RANGE}, got {size}, {count}")
    if family == "empty":
        from minigrid.envs import EmptyEnv

        return EmptyEnv(size=size, agent_start_pos=None)
    if family == "doorkey":
        from minigrid.envs import DoorKeyEnv

        return DoorKeyEnv(size=size)
    if family == "multiroom":
        from minigrid.envs import MultiRoomEnv

        rooms = count + 1
        return MultiRoomEnv(minNumRooms=rooms, maxNumRooms=rooms, maxRoomSize=size, max_steps=40 * rooms)
    if family == "keycorridor":
        from minigrid.envs import KeyCorridorEnv

        return KeyCorridorEnv(num_rows=count, room_size=size - 2)
    objects = babyai_objects(family, size, count)
    if family == "goto":
        from minigrid.envs.babyai.goto import GoTo

        return GoTo(room_size=size, num_rows=1, num_cols=count, num_dists=objects)
    cls = _babyai_level_class()
    if family == "open":
        return cls("open", room_size=size, num_cols=count + 1, num_objs=objects)
    return cls(family, room_size=size, num_cols=count, num_objs=objects)


def babyai_objects(family: str, size: int, count: int) -> int:
    """Objects in a BabyAI level: ``size - 4`` per room (more in bigger rooms), plus the
    target for goto / pickup / putnext (open's target is a door)."""
    per_room = size - 4
    return count * per_room if family == "open" else count * per_room + 1


def reset_level(env: Any, seed: int) -> None:
    """``env.reset(seed=seed)``, quietly, with every object's ``cur_pos`` set.

    BabyAI prints "Sampling rejected" while it redraws a level; that goes nowhere.
    MultiRoom puts its doors in the grid without recording their position
    (``cur_pos`` stays ``None``), which the BabyAI bot reads: it is filled in.
    """
    with contextlib.redirect_stdout(io.StringIO()):
        env.reset(seed=seed)
    grid = env.unwrapped.grid
    w = grid.width
    for k, c in enumerate(grid.grid):
        if c is not None and c.cur_pos is None and c.type != "wall":
            c.cur_pos = (k % w, k // w)
