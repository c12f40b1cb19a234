"""Tasks: a point of an env's parameter space plus a seed, and the one place they are drawn.

:class:`TaskSpec` names one task. :class:`TrainingTasks` is an env's space seen from
training: narrowed by a config's restriction, with the held-out split removed. It is the
only code that makes task specs, for training (:meth:`TrainingTasks.spec`, which refuses
the held-out region and seeds and redraws seeds whose content is held out) and for
evaluation (:meth:`TrainingTasks.held_out_specs`, distinct held-out contents, used by the
trainer and ``agentgym eval`` alike).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from agentgym.spaces import (
    TRAIN_SEED_LIMIT,
    Categorical,
    Continuous,
    HeldOut,
    Integer,
    ParamError,
    Params,
    ParamSpace,
    Region,
)


@dataclass(frozen=True)
class TaskSpec:
    """One task: a point of an env's parameter space plus a seed.

    Given the same spec, an environment produces the same task.
    """

    params: Mapping[str, Any]
    seed: int

    def to_dict(self) -> dict[str, Any]:
        return {"params": dict(self.params), "seed": int(self.seed)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TaskSpec:
        if not isinstance(d, Mapping) or "params" not in d or "seed" not in d:
            raise ValueError(f"a task must be a TaskSpec or a dict with 'params' and 'seed', got {d!r}")
        return cls(params=dict(d["params"]), seed=int(d["seed"]))


class ContentOracle(Protocol):
    """What names a task's content and says whether it is held out (an env does both)."""

    def content_key(self, task: TaskSpec) -> str: ...

    def is_held_out_content(self, key: str) -> bool: ...


#: Seeds tried for one params point before a teacher is told all its content is held out.
MAX_CONTENT_TRIES = 256
#: Teacher proposals tried (see :meth:`TrainingTasks.spec_from`) before a uniform training task.
MAX_PROPOSALS = 8


class TrainingTasks:
    """The training side of an env's task space: what every teacher samples from.

    ``space`` is the env's ParamSpace narrowed by an optional restriction (a config's
    ``env.params``: allowed values per discrete dim, an interval per continuous one), so
    a teacher works over exactly the dims and values it may choose. :meth:`spec` is the
    only way a teacher turns params into a TaskSpec: it refuses params in the held-out
    region and draws the seed from the training range, so no held-out spec can be made.
    """

    def __init__(
        self,
        space: ParamSpace,
        held_out: HeldOut,
        restrict: Mapping[str, Any] | None = None,
        content: ContentOracle | None = None,
    ):
        self.full_space = space
        self.held_out = held_out
        #: Names each task's content; None: no content split (seeds and region only),
        #: for spaces that are not an env's (synthetic teacher benchmarks).
        self.content = content
        #: Held-out draws of the last :meth:`held_out_specs` that repeated an earlier content.
        self.repeats_skipped = 0
        #: Params (as ``repr`` of their sorted items) found to have no training content.
        self._all_held_out: set[str] = set()
        unknown = set(restrict or {}) - set(space.names)
        if unknown:
            raise ParamError(
                f"unknown parameter(s) {sorted(unknown)} in the training restriction; this space has {space.names}"
            )
        self.space = ParamSpace([_narrow(d, (restrict or {}).get(d.name)) for d in space])

    def is_allowed(self, params: Mapping[str, Any]) -> bool:
        """True when ``params`` may be trained on (not in the held-out region)."""
        return self.held_out.region is None or not self.held_out.region.contains(params)

    def params(self, rng: np.random.Generator) -> dict[str, Any]:
        """Uniform training params (rejection of the held-out region)."""
        for _ in range(10_000):
            p = self.space.sample(rng)
            if self.is_allowed(p):
                return p
        raise ParamError("the training restriction lies inside the held-out region: nothing can be sampled")

    def is_train_content(self, task: TaskSpec) -> bool:
        """True when ``task``'s content may be trained on (always, without a content oracle)."""
        return self.content is None or not self.content.is_held_out_content(self.content.content_key(task))

    def held_out_specs_per_cell(self, n: int, seed: int = 0) -> list[TaskSpec]:
        """Held-out specs spread evenly over the cells of the (restricted) space, every
        combination of its discrete dims' values: ``ceil(n / cells)`` distinct held-out
        contents per cell (fewer where a cell has no more), dealt cell by cell in turn, so
        a mean over the tasks weights every cell (nearly) equally. Cells inside the
        held-out region are included; reports split them off by region."""
        import itertools

        dims = list(self.space)
        if any(not hasattr(d, "values") for d in dims):
            cont = [d.name for d in dims if not hasattr(d, "values")]
            raise ParamError(f"per-cell evaluation needs discrete dims; {cont} are continuous")
        cells = [dict(zip([d.name for d in dims], combo)) for combo in itertools.product(*(d.values for d in dims))]
        k = -(-n // len(cells))
        rng = np.random.default_rng(seed)
        seeds = self.held_out.seeds
        seen: set[str] = set()
        self.repeats_skipped = 0
        per_cell: list[list[TaskSpec]] = []
        for cell in cells:
            got: list[TaskSpec] = []
            for _ in range(64 * k + 256 if self.content is not None else k):
                if len(got) == k:
                    break
                spec = TaskSpec(dict(cell), int(seeds[int(rng.integers(len(seeds)))]))
                if self.content is not None:
                    key = self.content.content_key(spec)
                    if key in seen or not self.content.is_held_out_content(key):
                        self.repeats_skipped += key in seen
                        continue
                    seen.add(key)
                got.append(spec)
            per_cell.append(got)
        tasks = [cell[i] for i in range(k) for cell in per_cell if i < len(cell)]
        if n > 0 and not tasks:
            raise ParamError("no held-out task in any cell: widen the space or raise HeldOut.content_fraction")
        return tasks

    def held_out_specs(self, n: int, seed: int = 0) -> list[TaskSpec]:
        """Up to ``n`` evaluation specs with distinct held-out contents: held-out seeds,
        params from the (restricted) space.

        Every fourth task (the first included) is drawn inside the held-out region, where that
        region meets the restricted space (the uniform draws between can land there too, so
        the region's share is a quarter or more), so reports can split new problems of trained
        params from params training never saw. Without such an overlap every task is a
        new problem of the restricted space. A space with fewer than ``n`` held-out
        contents gives fewer tasks (``len`` of the result says how many; none at all is a
        ParamError); without a content oracle, held-out seeds alone (``n`` tasks).
        """
        rng = np.random.default_rng(seed)
        region = _region_within(self.held_out.region, self.space)
        seeds = self.held_out.seeds
        tasks: list[TaskSpec] = []
        seen: set[str] = set()
        self.repeats_skipped = 0
        budget = n if self.content is None else 64 * n + 1024
        misses_in_region = 0  # in a row: a small region runs out of distinct contents
        for _ in range(budget):
            if len(tasks) == n:
                break
            if region is not None and len(tasks) % 4 == 0 and misses_in_region < 256:
                in_region, params = True, _sample_inside(self.space, region, rng)
            else:
                in_region, params = False, self.space.sample(rng)
            spec = TaskSpec(params, int(seeds[int(rng.integers(len(seeds)))]))
            if self.content is not None:
                key = self.content.content_key(spec)
                fresh = key not in seen
                if not (fresh and self.content.is_held_out_content(key)):
                    self.repeats_skipped += not fresh
                    misses_in_region += in_region
                    continue
                seen.add(key)
            misses_in_region = 0 if in_region else misses_in_region
            tasks.append(spec)
        if n > 0 and not tasks:
            raise ParamError(
                "no held-out task: every content of this (restricted) space is training content; widen the "
                "space (env.params / --param) or raise the env's HeldOut.content_fraction"
            )
        return tasks

    def seed(self, rng: np.random.Generator) -> int:
        while True:
            s = int(rng.integers(0, TRAIN_SEED_LIMIT))
            if s not in self.held_out.seeds:
                return s

    def spec(self, rng: np.random.Generator, params: Mapping[str, Any] | None = None) -> TaskSpec:
        """A training TaskSpec; given ``params`` must be valid and allowed (else ParamError).

        Seeds whose content is held out are redrawn; params all of whose contents are held
        out (a tiny space) are a ParamError after :data:`MAX_CONTENT_TRIES` seeds.
        """
        if params is None:
            for _ in range(MAX_CONTENT_TRIES):
                task = TaskSpec(self.params(rng), self.seed(rng))
                if self.is_train_content(task):
                    return task
            raise ParamError(
                f"{MAX_CONTENT_TRIES} training draws all had held-out content: the training space is too small "
                "for the content split (lower the env's HeldOut.content_fraction or widen env.params)"
            )
        clean = self.space.validate(params)
        region = self.held_out.region
        if region is not None and not self.is_allowed(clean):
            raise ParamError(f"{clean} lies in the held-out region {region.name!r}: a teacher may not sample it")
        known = repr(sorted(clean.items()))
        if known not in self._all_held_out:
            for _ in range(MAX_CONTENT_TRIES):
                task = TaskSpec(clean, self.seed(rng))
                if self.is_train_content(task):
                    return task
            self._all_held_out.add(known)
        raise ParamError(
            f"every task of {clean} tried ({MAX_CONTENT_TRIES} seeds) is held-out content: a teacher may not sample it"
        )

    def spec_from(self, rng: np.random.Generator, propose: Callable[[], Mapping[str, Any]]) -> TaskSpec:
        """A training spec at a teacher's proposed params (``propose()``, allowed params).

        In a small space a proposal can have no training content at all (every problem
        of a one-heap Nim of up to 2 held out): the next proposal is tried, and after
        :data:`MAX_PROPOSALS` a uniform training task is returned. The task's own params
        are in the spec, so a teacher credits the result to where it really was.
        """
        for _ in range(MAX_PROPOSALS):
            try:
                return self.spec(rng, propose())
            except ParamError:
                if self.content is None:
                    raise
        return self.spec(rng)


def _narrow(dim: Any, allowed: Any) -> Any:
    """``dim`` restricted to ``allowed`` (None: unchanged)."""
    if allowed is None:
        return dim
    if isinstance(dim, Continuous):
        if not (isinstance(allowed, (list, tuple)) and len(allowed) == 2):
            raise ParamError(f"restriction of {dim.name!r} must be [low, high]")
        lo, hi = (dim.validate(v) for v in allowed)
        return Continuous(dim.name, lo, hi, log=dim.log, description=dim.description)
    values = list(allowed) if isinstance(allowed, (list, tuple, set)) else [allowed]
    if not values:
        raise ParamError(f"restriction of {dim.name!r} allows no value")
    values = [dim.validate(v) for v in values]
    if isinstance(dim, Integer):
        values = sorted(set(values))
        if values == list(range(values[0], values[-1] + 1)):
            return Integer(dim.name, values[0], values[-1], description=dim.description)
    # Keep the declared order of the values (it is the easy-to-hard order for schedules).
    ordered = [v for v in dim.values if any(_same_value(v, w) for w in values)]
    return Categorical(dim.name, tuple(ordered), description=dim.description)


def _same_value(a: Any, b: Any) -> bool:
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _region_within(region: Region | None, space: ParamSpace) -> Region | None:
    """The part of ``region`` inside ``space`` (a narrowed space), or None when they do not meet."""
    if region is None:
        return None
    inside: dict[str, Any] = {}
    for name, allowed in region.constraints.items():
        dim = space[name]
        if isinstance(dim, Continuous):
            lo, hi = max(allowed[0], dim.low), min(allowed[1], dim.high)
            if lo > hi:
                return None
            inside[name] = (lo, hi)
        else:
            values = [v for v in allowed if any(_same_value(v, w) for w in dim.values)]
            if not values:
                return None
            inside[name] = values
    return Region(inside, name=region.name)


def _sample_inside(space: ParamSpace, region: Region, rng: np.random.Generator) -> Params:
    """A uniform point of ``region`` (drawn dim by dim, so small regions cost nothing)."""
    params = space.sample(rng)
    for name, allowed in region.constraints.items():
        if isinstance(allowed, tuple) and len(allowed) == 2 and isinstance(space[name], Continuous):
            params[name] = float(rng.uniform(allowed[0], allowed[1]))
        else:
            allowed = list(allowed)
            params[name] = allowed[int(rng.integers(len(allowed)))]
    return space.validate(params)
