"""Parameter spaces of environment families.

An environment family declares a :class:`ParamSpace`: the knobs that shape its tasks
(number of digits, grid size, noise...). Teachers see only this space and the results of
episodes; they never look inside an environment. Every space maps to and from the unit
cube ``[0, 1]^d`` so that continuous teachers (ALP-GMM) and discrete ones (bandits over
arms) can work on any mix of dimension kinds.

A :class:`Region` is a box over some dimensions (a set of allowed values for categorical
and integer dims, an interval for continuous ones). Held-out splits are a region of the
space plus a range of seeds (:class:`HeldOut`); training-side sampling excludes both.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Params = dict[str, Any]


class ParamError(ValueError):
    """A parameter dict does not fit its space (unknown name, missing name, bad value)."""


@dataclass(frozen=True)
class Categorical:
    """A dimension taking one of a fixed list of values (strings, bools, numbers)."""

    name: str
    values: tuple[Any, ...]
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))
        if not self.values:
            raise ValueError(f"Categorical {self.name!r} needs at least one value")
        if len(set(map(repr, self.values))) != len(self.values):
            raise ValueError(f"Categorical {self.name!r} has repeated values: {self.values}")

    @property
    def n(self) -> int:
        return len(self.values)

    def index(self, value: Any) -> int:
        for i, v in enumerate(self.values):
            # True == 1 in Python; a bool dim must not accept 1 and vice versa.
            if v == value and isinstance(v, bool) == isinstance(value, bool):
                return i
        raise ParamError(f"{self.name}={value!r} is not one of {list(self.values)}")

    def to_unit(self, value: Any) -> float:
        # The centre of the value's cell: cells are equal slices of [0, 1].
        return (self.index(value) + 0.5) / self.n

    def from_unit(self, u: float) -> Any:
        return self.values[_cell_of(u, self.n)]

    def validate(self, value: Any) -> Any:
        self.index(value)
        return value

    def describe(self) -> str:
        return "{" + ", ".join(map(str, self.values)) + "}"


@dataclass(frozen=True)
class Integer:
    """An integer dimension, ``low`` and ``high`` both included."""

    name: str
    low: int
    high: int
    description: str = ""

    def __post_init__(self) -> None:
        if int(self.low) != self.low or int(self.high) != self.high or self.high < self.low:
            raise ValueError(f"Integer {self.name!r} needs integers low <= high, got {self.low}, {self.high}")

    @property
    def n(self) -> int:
        return self.high - self.low + 1

    @property
    def values(self) -> tuple[int, ...]:
        return tuple(range(self.low, self.high + 1))

    def to_unit(self, value: int) -> float:
        return (self.validate(value) - self.low + 0.5) / self.n

    def from_unit(self, u: float) -> int:
        return self.low + _cell_of(u, self.n)

    def validate(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise ParamError(f"{self.name}={value!r} must be an integer in [{self.low}, {self.high}]")
        if not self.low <= value <= self.high:
            raise ParamError(f"{self.name}={value!r} is outside [{self.low}, {self.high}]")
        return int(value)

    def describe(self) -> str:
        return f"[{self.low}..{self.high}]"


@dataclass(frozen=True)
class Continuous:
    """A real dimension in ``[low, high]``; ``log=True`` maps it to the cube on a log scale."""

    name: str
    low: float
    high: float
    log: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.high <= self.low:
            raise ValueError(f"Continuous {self.name!r} needs finite low < high, got {self.low}, {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"Continuous {self.name!r} with log=True needs low > 0")

    def to_unit(self, value: float) -> float:
        v = self.validate(value)
        if self.log:
            return (math.log(v) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (v - self.low) / (self.high - self.low)

    def from_unit(self, u: float) -> float:
        u = _clip01(u)
        if self.log:
            v = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            v = self.low + u * (self.high - self.low)
        # Rounding in exp/log can step just past an edge (10.000000000000007 for high=10).
        return float(min(max(v, self.low), self.high))

    def validate(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
            raise ParamError(f"{self.name}={value!r} must be a number in [{self.low}, {self.high}]")
        value = float(value)
        if not self.low <= value <= self.high:
            raise ParamError(f"{self.name}={value!r} is outside [{self.low}, {self.high}]")
        return value

    def describe(self) -> str:
        return f"[{self.low:g}, {self.high:g}]" + (" (log)" if self.log else "")


Dim = Categorical | Integer | Continuous


def _clip01(u: float) -> float:
    # Plain floats: this runs once per dim per sampled task, and np.clip on a scalar is slow.
    u = float(u)
    return 0.0 if u < 0.0 else 1.0 if u > 1.0 else u


def _cell_of(u: float, n: int) -> int:
    """Index of the equal slice of [0, 1] holding ``u`` (the top edge in the last slice)."""
    return min(int(_clip01(u) * n), n - 1)


@dataclass(frozen=True)
class Region:
    """A box in a parameter space: for each named dim, allowed values or an interval.

    ``Region({"digits": [3, 4], "noise": (0.5, 1.0)})`` holds every point whose
    ``digits`` is 3 or 4 *and* whose ``noise`` lies in [0.5, 1.0]. Dims not named are
    unconstrained. A tuple of two numbers is an interval on a continuous dim; a list or
    set is a set of values.
    """

    constraints: Mapping[str, Any] = field(default_factory=dict)
    name: str = "region"

    def contains(self, params: Mapping[str, Any]) -> bool:
        for key, allowed in self.constraints.items():
            if key not in params:
                return False
            v = params[key]
            if isinstance(allowed, tuple) and len(allowed) == 2 and not isinstance(v, (str, bool)):
                lo, hi = allowed
                if not lo <= v <= hi:
                    return False
            elif v not in allowed:
                return False
        return True

    def check_against(self, space: ParamSpace) -> None:
        for key, allowed in self.constraints.items():
            dim = space[key]
            if isinstance(dim, Continuous):
                if not (isinstance(allowed, tuple) and len(allowed) == 2):
                    raise ParamError(f"region {self.name!r}: {key} needs a (low, high) interval")
            else:
                for v in allowed:
                    dim.validate(v)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "constraints": {k: list(v) for k, v in self.constraints.items()}}


@dataclass(frozen=True)
class HeldOut:
    """A held-out split: a share of task contents, a range of seeds and (optionally) a
    region of the space.

    Two seeds can make the same problem in a small space (one-digit ``a + b`` has 162),
    so seeds alone do not hold anything out. Each task has a content key (see
    ``TaskFamily.content_key``); a stable hash of it puts the content in the held-out
    share with probability ``content_fraction``. Training never yields held-out content,
    a held-out seed, or params inside ``region``; evaluation draws held-out content only,
    from ``seeds``, across the whole space, so it measures both new problems of trained
    parameters and the never-trained region.
    """

    seeds: range = range(1_000_000_000, 1_000_000_000 + 1_000_000)
    region: Region | None = None
    #: Share of contents held out. 0 turns the content split off: seeds and region alone
    #: split the tasks, for an env with a single content (a user's one page).
    content_fraction: float = 0.25

    def __post_init__(self) -> None:
        if not 0.0 <= self.content_fraction < 1.0:
            raise ValueError(f"content_fraction must be in [0, 1), got {self.content_fraction!r}")

    def is_held_out(self, params: Mapping[str, Any], seed: int) -> bool:
        return seed in self.seeds or (self.region is not None and self.region.contains(params))

    def holds_content(self, key: str) -> bool:
        """Whether the content named by ``key`` is held out (the same answer on every machine)."""
        return content_bucket(key) < self.content_fraction


def content_bucket(key: str) -> float:
    """A stable uniform number in [0, 1) for a content key: the first 8 bytes of its SHA-256.

    Not salted by env: the same problem text is held out in every env that poses it.
    """
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


#: Seeds that training draws from never reach this value (held-out ranges live above it).
TRAIN_SEED_LIMIT = 1_000_000_000


class ParamSpace:
    """An ordered collection of named dims with unit-cube mapping and sampling."""

    def __init__(self, dims: Iterable[Dim]):
        self.dims: tuple[Dim, ...] = tuple(dims)
        names = [d.name for d in self.dims]
        if len(set(names)) != len(names):
            raise ValueError(f"ParamSpace has repeated dim names: {names}")
        self._by_name = {d.name: d for d in self.dims}

    def __len__(self) -> int:
        return len(self.dims)

    def __iter__(self):
        return iter(self.dims)

    def __getitem__(self, name: str) -> Dim:
        try:
            return self._by_name[name]
        except KeyError:
            raise ParamError(f"unknown parameter {name!r}; this space has {self.names}") from None

    def __repr__(self) -> str:
        return "ParamSpace(" + ", ".join(f"{d.name}={d.describe()}" for d in self.dims) + ")"

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dims]

    def validate(self, params: Mapping[str, Any], *, fill_defaults: bool = False) -> Params:
        """Return a clean copy of ``params`` or raise :class:`ParamError` naming the problem."""
        unknown = set(params) - set(self._by_name)
        if unknown:
            raise ParamError(f"unknown parameter(s) {sorted(unknown)}; this space has {self.names}")
        out: Params = {}
        for d in self.dims:
            if d.name in params:
                out[d.name] = d.validate(params[d.name])
            elif fill_defaults:
                out[d.name] = d.from_unit(0.0)
            else:
                raise ParamError(f"missing parameter {d.name!r} ({d.describe()})")
        return out

    def to_unit(self, params: Mapping[str, Any]) -> np.ndarray:
        return np.array([d.to_unit(params[d.name]) for d in self.dims], dtype=np.float64)

    def from_unit(self, u: Sequence[float] | np.ndarray) -> Params:
        u = np.asarray(u, dtype=np.float64)
        if u.shape != (len(self.dims),):
            raise ParamError(f"expected a point of {len(self.dims)} coordinates, got shape {u.shape}")
        return {d.name: d.from_unit(float(x)) for d, x in zip(self.dims, u)}

    def sample(
        self,
        rng: np.random.Generator,
        exclude: Region | None = None,
        max_tries: int = 10_000,
    ) -> Params:
        """A uniform point of the space (uniform over values for discrete dims).

        Points inside ``exclude`` are rejected and redrawn; if the region covers
        (almost) the whole space this raises instead of looping forever.
        """
        for _ in range(max_tries):
            p = self.from_unit(rng.random(len(self.dims)))
            if exclude is None or not exclude.contains(p):
                return p
        raise ParamError(f"could not sample outside {exclude}: does it cover the whole space?")

    def grid(self, per_continuous: int = 5) -> list[Params]:
        """Every combination of discrete values (continuous dims at evenly spaced points)."""
        axes = []
        for d in self.dims:
            if isinstance(d, Continuous):
                axes.append([d.from_unit((i + 0.5) / per_continuous) for i in range(per_continuous)])
            else:
                axes.append(list(d.values))
        out: list[Params] = [{}]
        for d, axis in zip(self.dims, axes):
            out = [{**p, d.name: v} for p in out for v in axis]
        return out

    def to_dict(self) -> list[dict[str, Any]]:
        rows = []
        for d in self.dims:
            row: dict[str, Any] = {"name": d.name, "kind": type(d).__name__.lower(), "description": d.description}
            if isinstance(d, Categorical):
                row["values"] = list(d.values)
            else:
                row["low"], row["high"] = d.low, d.high
            rows.append(row)
        return rows
