"""What the MiniGrid agent sees, computed straight from the grid.

``minigrid``'s own ``gen_obs_grid`` slices the grid, rotates the slice once per quarter
turn, runs the occlusion pass and encodes the result, about 150 us a step; most of a
text step would go there. :func:`egocentric` computes the same partial view (the same
cells, the same visibility mask, the carried object at the agent's cell) in one pass,
and a test checks it against ``minigrid``'s encoding on many states.

The view is a list of ``size * size`` cells indexed ``vj * size + vi``: ``vi`` runs from
the agent's left (0) to its right (``size - 1``), ``vj`` from the farthest row (0) to the
agent's own row (``size - 1``), the agent standing at ``vi = size // 2`` of that row, as
in ``minigrid``. A cell ``ahead`` steps forward and ``lateral`` steps to the right
(negative: left) is ``vj = size - 1 - ahead``, ``vi = size // 2 + lateral``.
"""

from __future__ import annotations

from typing import Any

#: Unit vectors of minigrid's four directions: east, south, west, north.
DIR_VECS = ((1, 0), (0, 1), (-1, 0), (0, -1))
DIR_NAMES = ("east", "south", "west", "north")


class _OutsideWall:
    """What ``minigrid`` shows outside the grid: a wall (one shared, read-only instance)."""

    type = "wall"
    color = "grey"

    @staticmethod
    def see_behind() -> bool:
        return False

    @staticmethod
    def can_overlap() -> bool:
        return False

    @staticmethod
    def encode() -> tuple[int, int, int]:
        return (2, 5, 0)


OUTSIDE = _OutsideWall()


def opaque(c: Any) -> bool:
    """Whether a cell blocks the view (minigrid's ``not see_behind()``)."""
    if c is None:
        return False
    t = c.type
    if t == "wall":
        return True
    if t == "door":
        return not c.is_open
    return not c.see_behind()


def occlusion_mask(cells: list[Any], size: int) -> list[bool]:
    """Which cells of a view the agent can see: minigrid's occlusion pass, as a flat list.

    Visibility spreads from the agent's cell row by row towards the far edge, sideways
    and diagonally forward, and stops at cells that cannot be seen through (walls,
    closed doors). Only visible cells are ever read, so hidden cells' contents never
    matter: a text reader that knows only what was described gets the same mask.
    """
    return _occlusion([opaque(c) for c in cells], size)


def _occlusion(blocks: list[bool], size: int) -> list[bool]:
    mask = [False] * (size * size)
    mask[(size - 1) * size + size // 2] = True
    for j in range(size - 1, -1, -1):
        row = j * size
        up = row - size
        for k in range(row, row + size - 1):
            if mask[k] and not blocks[k]:
                mask[k + 1] = True
                if j > 0:
                    mask[k + 1 - size] = True
                    mask[k - size] = True
        for k in range(row + size - 1, row, -1):
            if mask[k] and not blocks[k]:
                mask[k - 1] = True
                if up >= 0:
                    mask[k - 1 - size] = True
                    mask[k - size] = True
    return mask


_INDEX_CACHE: dict[tuple[int, int, int, int, int, int], tuple[int, ...]] = {}


def _view_indices(ax: int, ay: int, d: int, width: int, height: int, size: int) -> tuple[int, ...]:
    """Flat grid index of each view cell for a pose (-1 outside the grid), memoised."""
    key = (ax, ay, d, width, height, size)
    idx = _INDEX_CACHE.get(key)
    if idx is None:
        if len(_INDEX_CACHE) > 200_000:
            _INDEX_CACHE.clear()
        half = size // 2
        fx, fy = DIR_VECS[d]
        rx, ry = -fy, fx
        out = []
        for vj in range(size):
            ahead = size - 1 - vj
            for vi in range(size):
                x = ax + fx * ahead + rx * (vi - half)
                y = ay + fy * ahead + ry * (vi - half)
                out.append(y * width + x if 0 <= x < width and 0 <= y < height else -1)
        idx = _INDEX_CACHE[key] = tuple(out)
    return idx


def egocentric(env: Any) -> tuple[list[Any], list[bool]]:
    """``(cells, visible)`` of ``env``'s partial view (see the module docstring for the layout).

    Hidden cells keep their true contents in ``cells``; readers must check ``visible``.
    The agent's cell holds what it carries (``None`` if nothing), as in minigrid.
    """
    size = env.agent_view_size
    grid = env.grid
    flat = grid.grid
    idx = _view_indices(int(env.agent_pos[0]), int(env.agent_pos[1]), int(env.agent_dir), grid.width, grid.height, size)
    cells = [flat[i] if i >= 0 else OUTSIDE for i in idx]
    if env.see_through_walls:
        visible = [True] * (size * size)
    else:
        visible = _occlusion([c is not None and opaque(c) for c in cells], size)
    cells[(size - 1) * size + size // 2] = env.carrying
    return cells, visible


def encode(cells: list[Any], visible: list[bool], size: int):
    """The ``(size, size, 3)`` uint8 array minigrid's ``gen_obs()["image"]`` would hold."""
    import numpy as np

    out = np.zeros((size, size, 3), dtype=np.uint8)
    for vj in range(size):
        for vi in range(size):
            k = vj * size + vi
            if not visible[k]:
                continue
            c = cells[k]
            out[vi, vj] = (1, 0, 0) if c is None else c.encode()
    return out
