"""Tools, tool calls, and reading calls out of a model's text.

The agent calls tools the way Hermes-style chat templates do: each call is a JSON object
``{"name": ..., "arguments": {...}}`` between ``<tool_call>`` and ``</tool_call>``, several
per reply allowed. A reply's final answer goes between ``<answer>`` and ``</answer>``.

Everything here treats the model's text as untrusted: :func:`parse_reply` never raises,
and every problem becomes a short message the agent can read and act on.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
_CALL_RE = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
_JSON_TYPES = ("string", "number", "integer", "boolean", "array", "object", "null")


class SchemaError(ValueError):
    """A tool's JSON schema is not one this module can check calls against."""


@dataclass(frozen=True)
class Tool:
    """A callable the agent may use, described by an OpenAI-style JSON schema.

    ``parameters`` is a JSON schema of type ``object`` (``properties``, ``required``).
    ``fn`` receives the validated arguments as keyword arguments and returns anything
    JSON-serializable; it is ``None`` for tools that are only described (task files).
    """

    name: str
    description: str
    parameters: Mapping[str, Any]
    fn: Callable[..., Any] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        check_schema(self.name, self.parameters)

    def schema(self) -> dict[str, Any]:
        """The OpenAI ``{"type": "function", "function": {...}}`` form."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.parameters),
            },
        }

    @classmethod
    def from_schema(cls, schema: Mapping[str, Any], fn: Callable[..., Any] | None = None) -> Tool:
        """Build from the OpenAI form or a bare ``{"name", "description", "parameters"}``."""
        if not isinstance(schema, Mapping):
            raise SchemaError(f"a tool schema must be an object, got {type(schema).__name__}")
        body = schema.get("function", schema) if schema.get("type") == "function" else schema
        if not isinstance(body, Mapping) or not isinstance(body.get("name"), str) or not body["name"]:
            raise SchemaError("a tool schema needs a non-empty string 'name'")
        params = body.get("parameters", {"type": "object", "properties": {}})
        return cls(body["name"], str(body.get("description", "")), params, fn)


def check_schema(name: str, schema: Any) -> None:
    """Raise :class:`SchemaError` unless ``schema`` is an object schema we can validate."""
    if not isinstance(schema, Mapping) or schema.get("type", "object") != "object":
        raise SchemaError(f"tool {name!r}: 'parameters' must be a JSON schema of type 'object'")
    props = schema.get("properties", {})
    if not isinstance(props, Mapping):
        raise SchemaError(f"tool {name!r}: 'properties' must be an object")
    for arg, sub in props.items():
        _check_subschema(f"tool {name!r} argument {arg!r}", sub)
    required = schema.get("required", [])
    if not isinstance(required, list) or any(r not in props for r in required):
        raise SchemaError(f"tool {name!r}: 'required' must list names from 'properties'")


def _check_subschema(where: str, sub: Any) -> None:
    if not isinstance(sub, Mapping):
        raise SchemaError(f"{where}: schema must be an object")
    t = sub.get("type")
    types = t if isinstance(t, list) else [t]
    if isinstance(t, list) and not t:
        raise SchemaError(f"{where}: 'type' must not be an empty list")
    if t is not None and any(x not in _JSON_TYPES for x in types):
        raise SchemaError(f"{where}: unknown type {t!r} (known: {', '.join(_JSON_TYPES)})")
    if "enum" in sub and not isinstance(sub["enum"], list):
        raise SchemaError(f"{where}: 'enum' must be a list")
    if "items" in sub:
        _check_subschema(f"{where} items", sub["items"])


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "arguments": self.arguments}, ensure_ascii=False)


@dataclass
class ParsedReply:
    """What one reply contains.

    ``calls`` are the blocks that parsed as ``{"name": str, "arguments": object}``;
    ``errors`` has one message per block (or reply-level problem) that did not.
    ``answer`` is the text of the last ``<answer>`` block, if any.
    """

    calls: list[ToolCall]
    errors: list[str]
    answer: str | None
    n_blocks: int

    @property
    def well_formed(self) -> bool:
        return not self.errors and (self.n_blocks > 0 or self.answer is not None)


def parse_reply(text: str, max_calls: int) -> ParsedReply:
    """Read the tool calls and the answer out of a reply. Never raises."""
    answer = _last_answer(text)
    n_open = text.count(CALL_OPEN)
    if n_open > max_calls:
        return ParsedReply(
            [],
            [f"too many tool calls in one reply ({n_open}); at most {max_calls} are allowed, none was run"],
            answer,
            n_open,
        )
    blocks = _CALL_RE.findall(text)
    errors: list[str] = []
    calls: list[ToolCall] = []
    if n_open > len(blocks):
        errors.append(f"a {CALL_OPEN} was not closed with {CALL_CLOSE}")
    for i, body in enumerate(blocks, 1):
        call, error = _parse_call(body)
        if error is not None:
            errors.append(f"tool call {i}: {error}")
        else:
            calls.append(call)
    return ParsedReply(calls, errors, answer, max(n_open, len(blocks)))


def _last_answer(text: str) -> str | None:
    """The text of the last complete ``<answer>...</answer>`` (a linear scan: no regex backtracking)."""
    end = text.rfind(ANSWER_CLOSE)
    if end < 0:
        return None
    start = text.rfind(ANSWER_OPEN, 0, end)
    return None if start < 0 else text[start + len(ANSWER_OPEN) : end].strip()


def _parse_call(body: str) -> tuple[ToolCall | None, str | None]:
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError) as e:
        msg = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        return None, f"not valid JSON ({msg})"
    if not isinstance(obj, dict):
        return None, f"expected a JSON object with 'name' and 'arguments', got {type(obj).__name__}"
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        return None, "missing 'name' (a string)"
    args = obj.get("arguments", {})
    if isinstance(args, str):  # some templates encode arguments as a JSON string
        try:
            args = json.loads(args) if args.strip() else {}
        except (ValueError, RecursionError):
            return None, f"'arguments' of {name!r} is a string that is not valid JSON"
    if not isinstance(args, dict):
        return None, f"'arguments' of {name!r} must be a JSON object, got {type(args).__name__}"
    return ToolCall(name, args), None


def validate_arguments(tool: Tool, args: Mapping[str, Any]) -> list[str]:
    """Problems with ``args`` for ``tool``: missing, unknown or mistyped arguments."""
    props = tool.parameters.get("properties", {})
    problems = [f"missing required argument {r!r}" for r in tool.parameters.get("required", []) if r not in args]
    for key, value in args.items():
        if key not in props:
            known = ", ".join(repr(p) for p in props) or "none"
            problems.append(f"unknown argument {key!r} (arguments: {known})")
            continue
        problem = _type_problem(props[key], value)
        if problem:
            problems.append(f"argument {key!r} {problem}")
    return problems


def _type_problem(schema: Mapping[str, Any], value: Any) -> str | None:
    t = schema.get("type")
    types = t if isinstance(t, list) else ([t] if t else [])
    if types and not any(_is_type(x, value) for x in types):
        return f"must be of type {' or '.join(types)}, got {_json_type(value)}"
    if "enum" in schema and value not in schema["enum"]:
        options = ", ".join(json.dumps(v) for v in schema["enum"][:20])
        return f"must be one of {options}, got {json.dumps(value)[:60]}"
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problem = _type_problem(schema["items"], item)
            if problem:
                return f"item {i} {problem}"
    return None


def _is_type(t: str, v: Any) -> bool:
    if t == "string":
        return isinstance(v, str)
    if t == "integer":
        return (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float) and v.is_integer())
    if t == "number":
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            return False
        try:
            return math.isfinite(v)
        except OverflowError:  # a JSON integer too large for a float
            return False
    if t == "boolean":
        return isinstance(v, bool)
    if t == "array":
        return isinstance(v, list)
    if t == "object":
        return isinstance(v, dict)
    return v is None  # "null"


def _json_type(v: Any) -> str:
    for t in ("boolean", "integer", "number", "string", "array", "object"):
        if _is_type(t, v):
            return t
    return "null" if v is None else type(v).__name__


def example_arguments(tool: Tool) -> dict[str, Any]:
    """Placeholder arguments of the right types for ``tool`` (for a format example)."""
    filler = {
        "string": "text",
        "number": 2.5,
        "integer": 3,
        "boolean": True,
        "array": [],
        "object": {},
        "null": None,
    }
    out: dict[str, Any] = {}
    for name, sub in tool.parameters.get("properties", {}).items():
        if "enum" in sub and sub["enum"]:
            out[name] = sub["enum"][0]
        else:
            t = sub.get("type", "string")
            out[name] = filler.get(t[0] if isinstance(t, list) else t, "text")
    return out


def signature(tool: Tool) -> str:
    """``name(arg: type, ...): description`` (enums listed, optional arguments marked)."""
    required = set(tool.parameters.get("required", []))
    args = []
    for name, sub in tool.parameters.get("properties", {}).items():
        t = sub.get("type", "any")
        kind = " or ".join(t) if isinstance(t, list) else t
        if sub.get("enum"):
            kind = "one of " + "|".join(str(v) for v in sub["enum"])
        args.append(f"{name}: {kind}" + ("" if name in required else " (optional)"))
    return f"{tool.name}({', '.join(args)}): {tool.description}"


LISTINGS = ("json", "compact")


def tools_prompt(tools: list[Tool], instructions: str, example: bool = False, listing: str = "json") -> str:
    """A system prompt listing ``tools``, after ``instructions``.

    ``listing="json"`` is the Hermes form (each tool's OpenAI schema inside
    ``<tools></tools>``); ``"compact"`` lists one signature per line, a much shorter
    prompt that small models follow better. With ``example``, the prompt also shows
    one call of the first tool with placeholder arguments. Either way calls are
    written ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``.
    """
    if listing not in LISTINGS:
        raise ValueError(f"listing must be one of {LISTINGS}, got {listing!r}")
    shown = ""
    if example and tools:
        call = ToolCall(tools[0].name, example_arguments(tools[0])).to_json()
        shown = f"For example (placeholder values): <tool_call>{call}</tool_call>\n"
    if listing == "compact":
        lines = "\n".join(f"- {signature(t)}" for t in tools)
        return (
            f"{instructions}\n"
            'To use a tool, reply with a line like <tool_call>{"name": "<tool name>", "arguments": {<arguments as '
            "JSON>}}</tool_call>\n"
            f"{shown}"
            f"Tools:\n{lines}\n"
            "You may call several tools in one reply; results come back in <tool_response></tool_response>. "
            "When you know the final answer, reply <answer>the final answer</answer>."
        )
    lines = "\n".join(json.dumps(t.schema(), ensure_ascii=False) for t in tools)
    return (
        f"{instructions}\n\n"
        "You may call tools. They are described as JSON inside <tools></tools>:\n"
        f"<tools>\n{lines}\n</tools>\n\n"
        "To call a tool, write\n"
        '<tool_call>{"name": "<tool name>", "arguments": {<arguments as JSON>}}</tool_call>\n'
        f"{shown}"
        "You may make several calls in one reply. Results come back inside "
        "<tool_response></tool_response>. When you know the final answer, reply with "
        "<answer>your answer</answer>."
    )
