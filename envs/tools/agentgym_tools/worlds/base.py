"""What a generated tool world is, and the distractor tools shared by all worlds.

A world generator turns ``(params, rng)`` into a :class:`World`: the question, the
tools offered (the needed ones plus distractors, shuffled), the ground-truth calls as
:class:`Step` records grouped into dependency levels, and the expected answer. Tools
are deterministic functions of their arguments and the world's data, so the ground
truth (and an oracle that replays it) is known when the task is made.

Shape parameters common to all worlds:

- ``depth``: length of the chain of dependent calls (each needs the previous result);
- ``extra_calls``: independent calls beyond the chain (their answers are asked too);
- ``distractors``: tools offered that the task does not need.

So a task needs ``depth + extra_calls`` calls, in ``depth`` rounds at best.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from agentgym_tools.calls import Tool


class ToolError(Exception):
    """A tool refusing its input (a clear message for the agent, not a crash)."""


@dataclass(frozen=True)
class Step:
    """One ground-truth call: the arguments the oracle uses, what scoring accepts, its round."""

    name: str
    args: dict[str, Any]
    accept: dict[str, list[Any]]
    level: int


@dataclass
class World:
    question: str
    tools: list[Tool]
    steps: list[Step]
    answer: list[Any]
    #: How the answer should be written, appended to the question.
    answer_format: str


def schema(props: dict[str, dict[str, Any]], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": list(props) if required is None else required,
    }


def num(desc: str) -> dict[str, Any]:
    return {"type": "number", "description": desc}


def text(desc: str, enum: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "string", "description": desc}
    if enum is not None:
        out["enum"] = enum
    return out


def _digest(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "big")


def _fake(fn_name: str, **kwargs: Any) -> Any:
    """Plausible, deterministic output for a distractor tool."""
    h = _digest(fn_name, sorted(kwargs.items()))
    if fn_name == "get_weather":
        return {
            "city": kwargs["city"],
            "temperature_c": h % 35 - 5,
            "sky": ["clear", "cloudy", "rain", "snow"][h % 4],
        }
    if fn_name == "get_stock_price":
        return {"symbol": kwargs["symbol"].upper(), "price": round(10 + (h % 50000) / 100, 2)}
    if fn_name == "translate":
        return {"translation": kwargs["text"][::-1], "language": kwargs["target_language"]}
    if fn_name == "get_exchange_rate":
        return {"rate": round(0.5 + (h % 1000) / 1000, 4)}
    if fn_name == "search_web":
        return {"results": [f"result {h % 97} about {kwargs['query'][:40]}"]}
    return {"status": "ok", "id": h % 100000}


def _distractor(name: str, description: str, props: dict[str, dict[str, Any]]) -> Tool:
    def fn(**kwargs: Any) -> Any:
        return _fake(name, **kwargs)

    return Tool(name, description, schema(props), fn)


DISTRACTORS: tuple[Tool, ...] = (
    _distractor("get_weather", "Current weather in a city.", {"city": text("city name")}),
    _distractor(
        "translate",
        "Translate text into another language.",
        {"text": text("text"), "target_language": text("language code")},
    ),
    _distractor(
        "send_email",
        "Send an email.",
        {"to": text("recipient address"), "subject": text("subject line"), "body": text("message")},
    ),
    _distractor("get_stock_price", "Latest price of a stock.", {"symbol": text("ticker symbol")}),
    _distractor("search_web", "Search the web.", {"query": text("search terms")}),
    _distractor(
        "set_reminder",
        "Set a reminder.",
        {"message": text("reminder text"), "minutes": num("minutes from now")},
    ),
    _distractor(
        "get_exchange_rate",
        "Exchange rate between two currencies.",
        {"from_currency": text("currency code"), "to_currency": text("currency code")},
    ),
    _distractor("play_music", "Play a song.", {"song": text("song title")}),
)


def offer(needed: list[Tool], near_misses: list[Tool], n_distractors: int, rng: np.random.Generator) -> list[Tool]:
    """The needed tools plus ``n_distractors`` others (world-specific near misses first), shuffled."""
    pool = list(near_misses) + [DISTRACTORS[i] for i in rng.permutation(len(DISTRACTORS))]
    names = {t.name for t in needed}
    extra = [t for t in pool if t.name not in names][:n_distractors]
    tools = list(needed) + extra
    return [tools[i] for i in rng.permutation(len(tools))]


def pick(rng: np.random.Generator, seq: Any) -> Any:
    return seq[int(rng.integers(len(seq)))]


_SYLLABLES = (
    "ka",
    "lo",
    "mer",
    "vin",
    "ta",
    "ros",
    "bel",
    "dun",
    "shi",
    "pra",
    "gel",
    "no",
    "vek",
    "ama",
    "tor",
    "lis",
)


def made_up_name(rng: np.random.Generator, syllables: int = 2) -> str:
    """A pronounceable name no model knows facts about."""
    return "".join(pick(rng, _SYLLABLES) for _ in range(syllables)).capitalize()
