"""Checks on the JSON files of a run folder before ``--resume`` decodes them.

A run folder may come from elsewhere (a shared drive, a download). Its checkpoint's
``state.json`` is decoded into numpy arrays and Python values; unchecked, a 190-byte file
could ask numpy for a gigabyte (a huge structured dtype, or a shape its data does not
have), and a deeply nested one ends in a RecursionError traceback. :func:`check_run_state`
reads each file once and refuses, with one paragraph naming the file and the reason:

- a file over :data:`MAX_STATE_BYTES`, or nesting deeper than :data:`MAX_DEPTH`;
- an ``__ndarray__`` whose dtype is not a plain bool, integer or float type, whose shape
  is not a list of non-negative integers, or whose shape does not hold exactly its data
  (so no array is larger than the numbers written in the file);
- an ``__ndarray__`` nested in ragged lists.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

MAX_STATE_BYTES = 256 << 20
MAX_DEPTH = 64
#: dtypes a checkpoint's arrays have (RNG states, teacher statistics): nothing else is decoded.
ALLOWED_DTYPES = frozenset(
    {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float16", "float32", "float64"}
)


class StateFileError(ValueError):
    """A run folder's state file that will not be decoded; the message says which and why."""


def check_state_file(path: Path) -> Any:
    """Parse and check one state file (``state.json``, ``pending.json``); its JSON value."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_STATE_BYTES:
        raise StateFileError(f"{path} is {size} bytes, over the {MAX_STATE_BYTES}-byte limit for a checkpoint state")
    try:
        value = json.loads(path.read_bytes())
    except RecursionError:
        raise StateFileError(f"{path} nests too deeply to be a checkpoint state") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise StateFileError(f"{path} is not JSON ({str(exc)[:200]}): the checkpoint is damaged") from None
    _walk(value, path)
    return value


def _walk(root: Any, path: Path) -> None:
    stack = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise StateFileError(f"{path} nests deeper than {MAX_DEPTH} levels: not a checkpoint agentgym wrote")
        if isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
        elif isinstance(node, dict):
            if "__ndarray__" in node:
                _check_array(node, path)
                continue  # its data was checked as numbers
            stack.extend((v, depth + 1) for v in node.values())


def _check_array(node: dict[str, Any], path: Path) -> None:
    dtype, shape, data = node.get("dtype"), node.get("shape"), node.get("__ndarray__")
    if dtype not in ALLOWED_DTYPES:
        raise StateFileError(
            f"{path} holds an array of dtype {str(dtype)[:60]!r}; a checkpoint's arrays are "
            f"{', '.join(sorted(ALLOWED_DTYPES))}"
        )
    if (
        not isinstance(shape, list)
        or len(shape) > MAX_DEPTH
        or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
    ):
        raise StateFileError(f"{path} holds an array whose shape {str(shape)[:80]} is not a list of sizes")
    count = _leaves(data, len(shape), path)
    if count != math.prod(shape):
        raise StateFileError(f"{path} holds an array of shape {shape} with {count} numbers: the checkpoint is damaged")


def _leaves(data: Any, ndim: int, path: Path) -> int:
    """How many numbers ``data`` holds, checking it is a rectangular nest of ``ndim`` lists."""
    level = [data]
    for _ in range(ndim):
        nxt = []
        for item in level:
            if not isinstance(item, list):
                raise StateFileError(f"{path} holds an array whose data does not match its shape")
            nxt.extend(item)
        level = nxt
    for item in level:
        if isinstance(item, (list, dict, str)) or item is None:
            raise StateFileError(f"{path} holds an array whose data is not numbers")
    return len(level)


def check_run_state(run_dir: Path) -> None:
    """Check the state files of the checkpoint ``--resume`` would load (StateFileError)."""
    from agentgym.grpo.checkpoint import latest_checkpoint

    ck = latest_checkpoint(Path(run_dir) / "checkpoints")
    if ck is None:
        return
    for name in ("state.json", "pending.json"):
        if (ck / name).exists():
            check_state_file(ck / name)
