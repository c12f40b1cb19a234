"""Gymnasium's shared-memory vector envs for chat observations (``make_vec(..., "async")``).

:class:`~agentgym.env.ChatSpace` observations are lists of messages, not arrays. Each env
of an ``AsyncVectorEnv`` gets a fixed slot of :data:`SLOT_BYTES` in one shared buffer and
writes its observation there as length-prefixed JSON; the parent decodes a slot when it
is read. An observation larger than a slot is an error that says to pass
``vector_kwargs={"shared_memory": False}``.
"""

from __future__ import annotations

import copy
import json
import multiprocessing as mp
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.vector.utils.shared_memory import create_shared_memory, read_from_shared_memory, write_to_shared_memory

from agentgym.env import ChatSpace

#: Bytes of shared memory per env (the JSON of one observation, plus 8 for its length).
SLOT_BYTES = 1 << 20


class SharedChats(Sequence):
    """The batch of observations in shared memory, decoded when read (a deepcopy is a tuple)."""

    def __init__(self, shared: Any, n: int):
        self._shared, self._n = shared, n

    def _buf(self) -> np.ndarray:
        return np.frombuffer(self._shared.get_obj(), dtype=np.uint8)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: int) -> Any:  # type: ignore[override]
        if isinstance(i, slice):
            return tuple(self[j] for j in range(*i.indices(self._n)))
        if not -self._n <= i < self._n:
            raise IndexError(i)
        i %= self._n
        buf = self._buf()
        start = i * SLOT_BYTES
        size = int.from_bytes(buf[start : start + 8].tobytes(), "little")
        return json.loads(buf[start + 8 : start + 8 + size].tobytes()) if size else None

    def __deepcopy__(self, memo: dict) -> tuple:
        return tuple(copy.deepcopy(self[i], memo) for i in range(self._n))

    def __repr__(self) -> str:
        return f"SharedChats({list(self)!r})"


@create_shared_memory.register(ChatSpace)
def _create(space: ChatSpace, n: int = 1, ctx: Any = mp) -> Any:
    return ctx.Array("B", n * SLOT_BYTES)


@read_from_shared_memory.register(ChatSpace)
def _read(space: ChatSpace, shared_memory: Any, n: int = 1) -> SharedChats:
    return SharedChats(shared_memory, n)


@write_to_shared_memory.register(ChatSpace)
def _write(space: ChatSpace, index: int, value: Any, shared_memory: Any) -> None:
    data = json.dumps(value).encode()
    if len(data) + 8 > SLOT_BYTES:
        raise ValueError(
            f"an observation of {len(data)} bytes does not fit the {SLOT_BYTES}-byte shared-memory slot; "
            'pass vector_kwargs={"shared_memory": False} to make_vec'
        )
    buf = np.frombuffer(shared_memory.get_obj(), dtype=np.uint8)
    start = index * SLOT_BYTES
    buf[start : start + 8] = np.frombuffer(len(data).to_bytes(8, "little"), dtype=np.uint8)
    buf[start + 8 : start + 8 + len(data)] = np.frombuffer(data, dtype=np.uint8)
