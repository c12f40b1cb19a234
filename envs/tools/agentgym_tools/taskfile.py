"""Task files: a JSON or JSONL file of function-calling tasks becomes an environment.

One task (a JSONL line, or an element of a JSON list)::

    {
      "id": "weather-2",                                  # optional, defaults to the line number
      "question": "What's the weather in Oslo and Lima?", # or "messages": [{"role": "user", ...}]
      "tools": [ {"type": "function", "function": {"name": "get_weather",
                  "description": "...", "parameters": {...JSON schema...}}} ],
      "calls": [ {"name": "get_weather", "arguments": {"city": ["Oslo", "oslo"], "unit": ["celsius", null]}},
                 {"name": "get_weather", "arguments": {"city": ["Lima"], "unit": ["celsius", null]}} ],
      "answer": "..."                                     # optional
    }

``calls`` are the ground truth: per argument a list of acceptable values (``null`` in the
list: the argument may be left out). Nothing is executed: the agent's calls are
validated against the schemas and matched to the ground truth ignoring order. An empty
``calls`` list means the right move is to call no tool. With ``answer``, the reply's
``<answer>`` is checked too.

Splits: a task is held out when a hash of its id falls under ``held_out_fraction``.
Training seeds pick among training tasks, held-out seeds among held-out ones; the
``calls`` parameter (1..4, 4 meaning four or more; 0 for no-call tasks is folded into 1)
lets a teacher choose how many calls a task needs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agentgym import HeldOut, Integer, ParamSpace, TaskSpec
from agentgym.spaces import TRAIN_SEED_LIMIT
from agentgym_tools.calls import SchemaError, Tool, ToolCall
from agentgym_tools.env import ToolEnv
from agentgym_tools.scoring import ExpectedCall, args_score, name_score

SAMPLE_FILE = Path(__file__).parent / "data" / "sample_tasks.jsonl"


class TaskFileError(ValueError):
    """A task file that cannot be used; the message names the file, line and field."""


@dataclass(frozen=True)
class FileTask:
    id: str
    messages: list[dict[str, str]]
    tools: list[Tool]
    calls: list[ExpectedCall]
    answer: list[Any]

    @property
    def bucket(self) -> int:
        return min(max(len(self.calls), 1), 4)


def load_tasks(path: str | Path, format: str = "auto") -> list[FileTask]:
    """Read and check a task file; errors say where and what.

    ``format``: ``"agentgym"`` (this module's), ``"bfcl"`` (a BFCL question file, its answers
    in ``possible_answer/`` beside it; see :mod:`agentgym_tools.bfcl`) or ``"auto"``.
    """
    path = Path(path)
    if format not in ("auto", "agentgym", "bfcl"):
        raise TaskFileError(f"task file format must be auto, agentgym or bfcl, got {format!r}")
    if not path.is_file():
        raise TaskFileError(f"task file {str(path)!r} does not exist")
    text = path.read_text(encoding="utf-8")
    if format == "bfcl" or (format == "auto" and _looks_like_bfcl(text)):
        from agentgym_tools.bfcl import convert

        answers = path.parent / "possible_answer" / path.name
        if not answers.is_file():
            raise TaskFileError(f"{path} is a BFCL question file; its answers belong in {answers}")
        return [_task(f"{path} task {i}", i, rec) for i, rec in enumerate(convert(path, answers))]
    records: list[tuple[str, Any]] = []
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(text)
        except ValueError as e:
            raise TaskFileError(f"{path}: not valid JSON ({e})") from None
        records = [(f"{path} item {i}", item) for i, item in enumerate(items)]
    else:
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append((f"{path} line {n}", json.loads(line)))
            except ValueError as e:
                raise TaskFileError(f"{path} line {n}: not valid JSON ({e})") from None
    if not records:
        raise TaskFileError(f"{path}: no tasks")
    tasks = [_task(where, i, rec) for i, (where, rec) in enumerate(records)]
    ids = [t.id for t in tasks]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise TaskFileError(f"{path}: duplicate task ids {sorted(dup)}")
    return tasks


def _looks_like_bfcl(text: str) -> bool:
    first = next((line for line in text.splitlines() if line.strip()), "")
    try:
        rec = json.loads(first)
    except ValueError:
        return False
    return isinstance(rec, dict) and "function" in rec and isinstance(rec.get("question"), list)


def _task(where: str, index: int, rec: Any) -> FileTask:
    def fail(msg: str) -> TaskFileError:
        return TaskFileError(f"{where}: {msg}")

    if not isinstance(rec, Mapping):
        raise fail("a task must be a JSON object")
    unknown = set(rec) - {"id", "question", "messages", "tools", "calls", "ground_truth", "answer"}
    if unknown:
        raise fail(f"unknown keys {sorted(unknown)}")
    if "messages" in rec:
        msgs = rec["messages"]
        if (
            not isinstance(msgs, list)
            or not msgs
            or not all(
                isinstance(m, Mapping)
                and m.get("role") in ("system", "user", "assistant")
                and isinstance(m.get("content"), str)
                for m in msgs
            )
        ):
            raise fail("'messages' must be a non-empty list of {role: system|user|assistant, content: string}")
        messages = [{"role": m["role"], "content": m["content"]} for m in msgs]
    elif isinstance(rec.get("question"), str):
        messages = [{"role": "user", "content": rec["question"]}]
    else:
        raise fail("needs 'question' (a string) or 'messages'")
    raw_tools = rec.get("tools")
    if not isinstance(raw_tools, list):
        raise fail("'tools' must be a list of function schemas")
    try:
        tools = [Tool.from_schema(t) for t in raw_tools]
    except SchemaError as e:
        raise fail(str(e)) from None
    tools_by_name = {t.name: t for t in tools}
    names = set(tools_by_name)
    raw_calls = rec.get("calls", rec.get("ground_truth"))
    if not isinstance(raw_calls, list):
        raise fail("'calls' must be a list of ground-truth calls (empty: no tool should be called)")
    calls = []
    for j, c in enumerate(raw_calls):
        if not isinstance(c, Mapping) or not isinstance(c.get("name"), str):
            raise fail(f"calls[{j}] must be an object with 'name' and 'arguments'")
        if c["name"] not in names:
            raise fail(f"calls[{j}] names {c['name']!r}, which is not among the task's tools")
        args = c.get("arguments", {})
        if not isinstance(args, Mapping) or not all(isinstance(v, list) and v for v in args.values()):
            raise fail(f"calls[{j}].arguments must map each argument to a non-empty list of acceptable values")
        known = tools_by_name[c["name"]].parameters.get("properties", {})
        unknown_args = sorted(set(args) - set(known))
        if unknown_args:
            raise fail(f"calls[{j}] has arguments {unknown_args} that tool {c['name']!r} does not take")
        calls.append(ExpectedCall(c["name"], {k: list(v) for k, v in args.items()}))
    answer = rec.get("answer")
    answers = [] if answer is None else (list(answer) if isinstance(answer, list) else [answer])
    return FileTask(str(rec.get("id", index)), messages, tools, calls, answers)


def _held_out(task_id: str, fraction: float) -> bool:
    h = int.from_bytes(hashlib.sha256(task_id.encode()).digest()[:8], "big")
    return h / 2**64 < fraction


class TaskFileEnv(ToolEnv):
    """Tasks from a file, scored by call matching; see the module docstring for the format."""

    param_space = ParamSpace([Integer("calls", 1, 4, description="ground-truth calls in the task (4: four or more)")])
    held_out = HeldOut()
    executes = False

    def __init__(
        self,
        path: str | Path = SAMPLE_FILE,
        held_out_fraction: float = 0.25,
        max_turns: int = 1,
        format: str = "auto",
        **kwargs: Any,
    ):
        super().__init__(max_turns=max_turns, **kwargs)
        if not 0.0 <= float(held_out_fraction) < 1.0:
            raise ValueError(f"held_out_fraction must be in [0, 1), got {held_out_fraction!r}")
        self.held_out_fraction = float(held_out_fraction)
        self.tasks = load_tasks(path, format)
        self.path = Path(path)
        self.splits: dict[bool, dict[int, list[FileTask]]] = {False: {}, True: {}}
        for t in self.tasks:
            self.splits[_held_out(t.id, float(held_out_fraction))].setdefault(t.bucket, []).append(t)
        if not self.splits[False]:
            raise TaskFileError(f"{path}: every task is held out; lower held_out_fraction")
        self.current: FileTask | None = None

    def pick(self, params: Mapping[str, Any], seed: int) -> FileTask:
        """The task for ``params`` and ``seed``: the split by seed, the nearest non-empty ``calls`` bucket."""
        split = self.splits[seed >= TRAIN_SEED_LIMIT and bool(self.splits[True])]
        want = int(params["calls"])
        bucket = min(split, key=lambda b: (abs(b - want), b))
        group = split[bucket]
        return group[int(np.random.default_rng(seed).integers(len(group)))]

    def content_key(self, task: TaskSpec) -> str:
        """The id of the file task ``task`` picks (ids name contents in a task file)."""
        return self.pick(self.param_space.validate(task.params), int(task.seed)).id

    def is_held_out_content(self, key: str) -> bool:
        """The file's own split by id hash (training seeds never pick held-out ids)."""
        return _held_out(key, self.held_out_fraction)

    def _reset(self, params: dict[str, Any], rng: np.random.Generator) -> list[dict[str, str]]:
        assert self.task is not None
        self.current = self.pick(params, self.task.seed)
        return self._begin(self.current.tools, self.current.calls, self.current.answer, self.current.messages)

    def _run_tool(self, tool: Tool, call: ToolCall) -> tuple[dict[str, Any], Any, bool]:
        raise AssertionError("task-file calls are scored, never executed")

    def _success(self, answer_ok: bool) -> bool:
        calls_ok = name_score(self.made, self.expected) == 1.0 and args_score(self.made, self.expected) == 1.0
        return calls_ok and all(r == 1.0 for r in self.replies_ok) and (answer_ok or not self.answer)

    def oracle(self) -> str:
        if self.current is None:
            raise RuntimeError("call reset() before oracle()")
        parts = []
        for c in self.current.calls:
            args = {
                k: next(v for v in vals if v is not None)
                for k, vals in c.arguments.items()
                if any(v is not None for v in vals)
            }
            parts.append(f"<tool_call>{ToolCall(c.name, args).to_json()}</tool_call>")
        if self.current.answer:
            parts.append(f"<answer>{', '.join(str(a) for a in self.current.answer)}</answer>")
        return "\n".join(parts) if parts else "<answer>No tool is needed for this.</answer>"
