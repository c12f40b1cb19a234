"""Cells: a ParamSpace cut into the discrete pieces that schedules and bandits choose from.

Each dim is cut into cells: a categorical dim into its values; an integer dim into its
values, or into ``bins`` equal slices of the unit cube when it has more than ``bins``
values; a continuous dim into ``bins`` equal slices of the unit cube (so a ``log=True``
dim is cut on the log scale). A cell of an integer dim cut into bins holds the values
whose unit-cube centre falls in the slice (every slice holds at least one). Cells keep
the declared order of values: cell 0 is the first (by convention the easiest) value.

The helpers here also answer "is every point of this combination of cells held out?"
(such arms are removed by construction) and draw allowed points inside a combination.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agentgym.curriculum.base import TrainingTasks
from agentgym.spaces import Categorical, Continuous, Dim, Integer, ParamSpace, Region

#: Proposals inside the held-out region are redrawn this many times, then a uniform
#: allowed point of the whole training space is used instead.
MAX_TRIES = 64


@dataclass(frozen=True)
class Cell:
    """One piece of one dim: a set of discrete values, or a unit-cube slice [lo, hi]."""

    dim: str
    index: int
    label: str
    values: tuple[Any, ...] | None = None  # discrete dims
    lo: float = 0.0  # continuous dims: unit-cube slice
    hi: float = 1.0

    def draw(self, dim: Dim, rng: np.random.Generator) -> Any:
        if self.values is not None:
            if len(self.values) == 1:
                return self.values[0]
            return self.values[int(rng.integers(len(self.values)))]
        return value_from_unit(dim, self.lo + (self.hi - self.lo) * float(rng.random()))


def value_from_unit(dim: Dim, u: float) -> Any:
    """``dim.from_unit(u)``: clamped to the cube and to the dim's bounds by the dim itself."""
    return dim.from_unit(u)


def params_from_unit(space: ParamSpace, u: Sequence[float] | np.ndarray) -> dict[str, Any]:
    """``space.from_unit(u)`` with every value kept inside its dim (see :func:`value_from_unit`)."""
    return {d.name: value_from_unit(d, float(x)) for d, x in zip(space.dims, u)}


def _fmt(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def is_binned(dim: Dim, bins: int | None) -> bool:
    """True when ``dim`` is cut into ``bins`` unit-cube slices rather than into its values."""
    if isinstance(dim, Continuous):
        return True
    return isinstance(dim, Integer) and bins is not None and dim.n > bins


def dim_cells(dim: Dim, bins: int | None) -> list[Cell]:
    """The cells of ``dim``, in declared (easy-to-hard) order.

    ``bins`` cuts continuous dims and integer dims with more than ``bins`` values;
    ``None`` keeps every integer value its own cell (continuous dims then need bins).
    """
    if isinstance(dim, Categorical):
        return [Cell(dim.name, i, _fmt(v), values=(v,)) for i, v in enumerate(dim.values)]
    if isinstance(dim, Integer) and not is_binned(dim, bins):
        return [Cell(dim.name, i, _fmt(v), values=(v,)) for i, v in enumerate(dim.values)]
    if bins is None or bins < 1:
        raise ValueError(f"dim {dim.name!r} needs a number of bins >= 1, got {bins}")
    if isinstance(dim, Integer):
        groups: list[list[int]] = [[] for _ in range(bins)]
        for v in dim.values:
            groups[cell_index(dim, bins, v)].append(v)
        return [
            Cell(dim.name, b, f"{g[0]}" if len(g) == 1 else f"{g[0]}..{g[-1]}", values=tuple(g))
            for b, g in enumerate(groups)
        ]
    out = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        label = f"[{_fmt(value_from_unit(dim, lo))},{_fmt(value_from_unit(dim, hi))}]"
        out.append(Cell(dim.name, b, label, lo=lo, hi=hi))
    return out


def cell_index(dim: Dim, bins: int | None, value: Any) -> int:
    """Which cell of ``dim`` (cut as by :func:`dim_cells`) holds ``value``."""
    if isinstance(dim, Categorical):
        return dim.index(value)
    if isinstance(dim, Integer) and not is_binned(dim, bins):
        return dim.validate(value) - dim.low
    assert bins is not None
    return min(int(math.floor(dim.to_unit(value) * bins)), bins - 1)


def _covered(dim: Dim | None, cell: Cell | None, name: str, allowed: Any) -> bool:
    """Does the constraint ``name in allowed`` hold for every point of ``cell`` (None: whole dim)?"""
    if dim is None:  # the region names a dim this space lacks: Region.contains is then False
        return False
    one = Region({name: allowed})
    if isinstance(dim, Continuous):
        lo, hi = (cell.lo, cell.hi) if cell is not None else (0.0, 1.0)
        if not (isinstance(allowed, tuple) and len(allowed) == 2):
            return False  # an interval is never inside a finite set of values
        a, b = allowed
        return a <= value_from_unit(dim, lo) and value_from_unit(dim, hi) <= b
    values = cell.values if cell is not None and cell.values is not None else dim.values
    return all(one.contains({name: v}) for v in values)


def fully_held_out(tasks: TrainingTasks, cells: Mapping[str, Cell]) -> bool:
    """True when every point whose dims lie in ``cells`` (other dims free) is held out."""
    region = tasks.held_out.region
    if region is None:
        return False
    space = tasks.space
    names = set(space.names)
    return all(
        _covered(space[k] if k in names else None, cells.get(k), k, allowed)
        for k, allowed in region.constraints.items()
    )


def product_cells(space: ParamSpace, dims: Sequence[str], bins: int | None) -> list[tuple[Cell, ...]]:
    """Every combination of one cell per dim of ``dims`` (the first dim varies slowest)."""
    return list(itertools.product(*(dim_cells(space[d], bins) for d in dims)))


def draw_params(
    tasks: TrainingTasks,
    rng: np.random.Generator,
    cells: Sequence[Cell],
    max_tries: int = MAX_TRIES,
) -> dict[str, Any]:
    """Allowed params inside ``cells`` (one per constrained dim; other dims uniform).

    Proposals in the held-out region are redrawn up to ``max_tries`` times; then a
    uniform allowed point of the whole training space is returned instead.
    """
    space = tasks.space
    by_dim = {c.dim: c for c in cells}
    for _ in range(max_tries):
        p = {}
        for d in space.dims:
            c = by_dim.get(d.name)
            p[d.name] = c.draw(d, rng) if c is not None else value_from_unit(d, float(rng.random()))
        if tasks.is_allowed(p):
            return p
    return tasks.params(rng)


def uniform_allowed(tasks: TrainingTasks, rng: np.random.Generator, max_tries: int = MAX_TRIES) -> dict[str, Any]:
    """A uniform allowed point (the same draw as :func:`draw_params` with no cells)."""
    return draw_params(tasks, rng, (), max_tries)
