"""The Berkeley Function Calling Leaderboard's files, read as they are shipped.

BFCL (PyPI package ``bfcl-eval``) keeps each category as two JSONL files: the questions
(``data/BFCL_v4_<category>.json``: an ``id``, ``question`` as a list of turns, each a list
of messages, and ``function``, the tool schemas) and the answers
(``data/possible_answer/BFCL_v4_<category>.json``: ``ground_truth``, a list of
``{function name: {argument: [acceptable values]}}``). Its schemas use Python's type names
(``dict``, ``float``, ``tuple``, ``any``) and an acceptable value ``""`` means the argument
may be left out. :func:`convert` turns one such pair into this package's task records
(see :mod:`agentgym_tools.taskfile`): ``dict`` -> ``object``, ``float`` -> ``number``,
``tuple`` -> ``array``, ``any`` -> no type; ``""`` -> ``null`` (may be left out).

:class:`BFCLEnv` (``tools/bfcl-v0``) serves the four single-turn sets the leaderboard calls
AST categories, with ``category`` as a parameter, so one command gives per-category scores::

    agentgym eval tools/bfcl-v0 --policy smollm2-135m --tasks 200 --by category
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from agentgym import Categorical, HeldOut, Integer, ParamSpace
from agentgym.spaces import TRAIN_SEED_LIMIT
from agentgym_tools.taskfile import FileTask, TaskFileEnv, TaskFileError, _held_out, _task

#: Category -> the file stem BFCL ships it under (the Python flavour of "simple").
CATEGORIES = {
    "simple": "simple_python",
    "multiple": "multiple",
    "parallel": "parallel",
    "parallel_multiple": "parallel_multiple",
}
_TYPE_NAMES = {"dict": "object", "float": "number", "tuple": "array", "list": "array", "int": "integer",
               "str": "string", "bool": "boolean"}  # fmt: skip


def bfcl_data_dir() -> Path:
    """The ``data`` folder of the installed ``bfcl-eval`` package (found without importing it)."""
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or spec.origin is None:
        raise TaskFileError(
            "BFCL's data comes with the PyPI package bfcl-eval: pip install --no-deps bfcl-eval "
            "(its data files are all this needs)"
        )
    return Path(spec.origin).parent / "data"


def category_files(category: str, data_dir: str | Path | None = None) -> tuple[Path, Path]:
    if category not in CATEGORIES:
        raise TaskFileError(f"unknown BFCL category {category!r}; the categories are {', '.join(CATEGORIES)}")
    root = Path(data_dir) if data_dir is not None else bfcl_data_dir()
    name = f"BFCL_v4_{CATEGORIES[category]}.json"
    return root / name, root / "possible_answer" / name


def convert_schema(schema: Any) -> Any:
    """A BFCL parameter schema in JSON Schema's words (recursively)."""
    if isinstance(schema, list):
        return [convert_schema(s) for s in schema]
    if not isinstance(schema, Mapping):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            if value == "any":
                continue  # any type: no constraint
            out[key] = _TYPE_NAMES.get(value, value)
        elif key == "properties" and isinstance(value, Mapping):
            out[key] = {name: convert_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "anyOf", "oneOf"):
            out[key] = convert_schema(value)
        else:
            out[key] = value
    return out


def convert_record(question: Mapping[str, Any], answer: Mapping[str, Any]) -> dict[str, Any]:
    """One BFCL question and its possible answer as a task record (TaskFileError when malformed)."""
    qid = question.get("id")
    if question.get("id") != answer.get("id"):
        raise TaskFileError(f"BFCL question {question.get('id')!r} is paired with answer {answer.get('id')!r}")
    turns = question.get("question")
    if not isinstance(turns, list) or not turns:
        raise TaskFileError(f"BFCL task {qid!r}: 'question' must be a non-empty list of turns")
    if len(turns) > 1:
        raise TaskFileError(f"BFCL task {qid!r} has {len(turns)} turns; only single-turn sets are read")
    if not isinstance(turns[0], list) or not all(
        isinstance(m, Mapping) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
        for m in turns[0]
    ):
        raise TaskFileError(f"BFCL task {qid!r}: a turn must be a list of {{'role': str, 'content': str}} messages")
    functions = question.get("function", [])
    if not isinstance(functions, list) or not all(
        isinstance(f, Mapping) and isinstance(f.get("name"), str) and isinstance(f.get("parameters", {}), Mapping)
        for f in functions
    ):
        raise TaskFileError(
            f"BFCL task {qid!r}: 'function' must be a list of {{'name': str, 'parameters': {{...}}}} schemas"
        )
    tools = [
        {"type": "function", "function": {**f, "parameters": convert_schema(f.get("parameters", {}))}}
        for f in functions
    ]
    takes = {}
    for f in functions:
        props = f.get("parameters", {}).get("properties", {})
        if not isinstance(props, Mapping):
            raise TaskFileError(f"BFCL task {qid!r}: {f['name']}'s 'properties' must be an object")
        takes[f["name"]] = set(props)
    truth = answer.get("ground_truth", [])
    if not isinstance(truth, list):
        raise TaskFileError(f"BFCL task {qid!r}: 'ground_truth' must be a list of {{function: {{arg: [values]}}}}")
    calls = []
    for call in truth:
        if not isinstance(call, Mapping) or len(call) != 1:
            raise TaskFileError(
                f"BFCL task {qid!r}: each ground-truth call must be one {{function: {{arg: [values]}}}}"
            )
        ((name, args),) = call.items()
        if not isinstance(args, Mapping) or not all(isinstance(v, list) for v in args.values()):
            raise TaskFileError(f"BFCL task {qid!r}: {name}'s arguments must map each name to a list of values")
        kept = {}
        for arg, vals in args.items():
            if arg not in takes.get(name, set()):
                if "" in vals:
                    continue  # BFCL's key names an optional argument the schema lacks: nobody can pass it
                raise TaskFileError(f"BFCL task {qid!r}: {name} needs {arg!r}, which its schema lacks")
            kept[arg] = [None if v == "" else v for v in vals]
        calls.append({"name": name, "arguments": kept})
    return {"id": qid, "messages": turns[0], "tools": tools, "calls": calls}


def _records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, record) of a JSON-lines file; TaskFileError naming the line of a bad one."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskFileError(f"{path}: cannot read it as UTF-8 text ({exc})") from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise TaskFileError(f"{path} line {n}: not JSON ({str(exc)[:120]})") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("id"), str):
            raise TaskFileError(f"{path} line {n}: a BFCL record is a JSON object with a string 'id'")
        out.append((n, rec))
    return out


def convert(question_file: str | Path, answer_file: str | Path) -> list[dict[str, Any]]:
    """A BFCL question file and its answer file as task records, in file order."""
    qs = _records(Path(question_file))
    ans = {rec["id"]: rec for _, rec in _records(Path(answer_file))}
    missing = [q["id"] for _, q in qs if q["id"] not in ans]
    if missing:
        raise TaskFileError(f"{answer_file}: no answers for {missing[:5]}")
    out = []
    for n, q in qs:
        try:
            out.append(convert_record(q, ans[q["id"]]))
        except TaskFileError as exc:
            raise TaskFileError(f"{question_file} line {n}: {exc}") from None
    return out


def load_category(category: str, data_dir: str | Path | None = None) -> list[FileTask]:
    qfile, afile = category_files(category, data_dir)
    return [_task(f"{qfile.name} task {i}", i, rec) for i, rec in enumerate(convert(qfile, afile))]


class BFCLEnv(TaskFileEnv):
    """BFCL's simple, multiple, parallel and parallel-multiple sets, scored by call matching.

    ``category`` picks the set; ``calls`` the number of ground-truth calls (as for any
    task file). A quarter of each set (by a hash of the task id) is held out.
    """

    param_space = ParamSpace(
        [
            Categorical("category", tuple(CATEGORIES), description="BFCL's AST category"),
            Integer("calls", 1, 4, description="ground-truth calls in the task (4: four or more)"),
        ]
    )
    held_out = HeldOut()

    def __init__(
        self,
        data_dir: str | Path | None = None,
        held_out_fraction: float = 0.25,
        max_turns: int = 1,
        **kwargs: Any,
    ):
        super(TaskFileEnv, self).__init__(max_turns=max_turns, **kwargs)
        if not 0.0 <= float(held_out_fraction) < 1.0:
            raise ValueError(f"held_out_fraction must be in [0, 1), got {held_out_fraction!r}")
        self.held_out_fraction = float(held_out_fraction)
        self.by_category = {c: load_category(c, data_dir) for c in CATEGORIES}
        self.tasks = [t for ts in self.by_category.values() for t in ts]
        self.category_splits: dict[str, dict[bool, dict[int, list[FileTask]]]] = {}
        for c, ts in self.by_category.items():
            splits: dict[bool, dict[int, list[FileTask]]] = {False: {}, True: {}}
            for t in ts:
                splits[_held_out(t.id, float(held_out_fraction))].setdefault(t.bucket, []).append(t)
            self.category_splits[c] = splits
        self.current = None

    def pick(self, params: Mapping[str, Any], seed: int) -> FileTask:
        splits = self.category_splits[str(params["category"])]
        split = splits[seed >= TRAIN_SEED_LIMIT and bool(splits[True])]
        want = int(params["calls"])
        bucket = min(split, key=lambda b: (abs(b - want), b))
        group = split[bucket]
        return group[int(np.random.default_rng(seed).integers(len(group)))]
