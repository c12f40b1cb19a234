"""Calendar and date arithmetic: a generated calendar of events and date tools.

A chain of depth d: look up an event's date, then shift it by some days, then ask its
weekday. Extra calls: days between two given dates, or the weekday of a given date.
Dates are ISO strings (YYYY-MM-DD).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np

from agentgym_tools.calls import Tool
from agentgym_tools.worlds.base import Step, ToolError, World, offer, pick, schema, text

_EVENTS = (
    "team offsite",
    "board meeting",
    "product launch",
    "dentist appointment",
    "book club",
    "quarterly review",
    "hackathon",
    "school play",
    "marathon",
    "wedding anniversary",
)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _date(s: str) -> dt.date:
    try:
        return dt.date.fromisoformat(s.strip())
    except ValueError:
        raise ToolError(f"{s!r} is not a date in the form YYYY-MM-DD") from None


def add_days(date: str, days: int) -> str:
    if abs(days) > 100_000:
        raise ToolError("days must be between -100000 and 100000")
    try:
        return (_date(date) + dt.timedelta(days=int(days))).isoformat()
    except OverflowError:
        raise ToolError("the resulting date is out of range") from None


def days_between(start: str, end: str) -> int:
    return (_date(end) - _date(start)).days


def weekday(date: str) -> str:
    return WEEKDAYS[_date(date).weekday()]


DATE_TOOLS = {
    "add_days": Tool(
        "add_days",
        "The date a number of days after (or, if negative, before) a date.",
        schema({"date": text("YYYY-MM-DD"), "days": {"type": "integer", "description": "days to add"}}),
        add_days,
    ),
    "days_between": Tool(
        "days_between",
        "Number of days from start to end (negative if end is earlier).",
        schema({"start": text("YYYY-MM-DD"), "end": text("YYYY-MM-DD")}),
        days_between,
    ),
    "weekday": Tool("weekday", "The day of the week of a date.", schema({"date": text("YYYY-MM-DD")}), weekday),
}


def _event_tool(events: dict[str, str]) -> Tool:
    lookup = {k.lower(): v for k, v in events.items()}

    def get_event_date(event: str) -> str:
        date = lookup.get(" ".join(event.split()).lower())
        if date is None:
            raise ToolError(f"no event named {event!r} in the calendar")
        return date

    return Tool(
        "get_event_date",
        "The date of an event in the user's calendar.",
        schema({"event": text("event name")}),
        get_event_date,
    )


def _random_date(rng: np.random.Generator) -> str:
    return (dt.date(2026, 1, 1) + dt.timedelta(days=int(rng.integers(0, 730)))).isoformat()


def generate(params: dict[str, Any], rng: np.random.Generator) -> World:
    names = [_EVENTS[i] for i in rng.permutation(len(_EVENTS))[:6]]
    events = {n: _random_date(rng) for n in names}
    get_event = _event_tool(events)
    event = names[0]
    depth = int(params["depth"])
    steps = [Step("get_event_date", {"event": event}, {"event": [event]}, 0)]
    needed = {"get_event_date": get_event}
    value: Any = events[event]
    if depth == 1:
        question = f"On what date is my {event}?"
    else:
        days = int(rng.integers(1, 60)) * int(pick(rng, (1, 1, -1)))
        shifted = add_days(value, days)
        when = f"{days} days after" if days > 0 else f"{-days} days before"
        steps.append(Step("add_days", {"date": value, "days": days}, {"date": [value], "days": [days]}, 1))
        needed["add_days"] = DATE_TOOLS["add_days"]
        value = shifted
        if depth == 2:
            question = f"What is the date {when} my {event}?"
        else:
            steps.append(Step("weekday", {"date": shifted}, {"date": [shifted]}, 2))
            needed["weekday"] = DATE_TOOLS["weekday"]
            value = weekday(shifted)
            question = f"What day of the week is it {when} my {event}?"
    answer = [value]
    extra = []
    for _ in range(int(params["extra_calls"])):
        if rng.random() < 0.5:
            a, b = sorted((_random_date(rng), _random_date(rng)))
            extra.append(f"how many days are there from {a} to {b}")
            steps.append(Step("days_between", {"start": a, "end": b}, {"start": [a], "end": [b]}, 0))
            needed["days_between"] = DATE_TOOLS["days_between"]
            answer.append(days_between(a, b))
        else:
            d = _random_date(rng)
            extra.append(f"what day of the week is {d}")
            steps.append(Step("weekday", {"date": d}, {"date": [d]}, 0))
            needed["weekday"] = DATE_TOOLS["weekday"]
            answer.append(weekday(d))
    if extra:
        question += " Also: " + "; and ".join(extra) + "?"
    fmt = "Dates as YYYY-MM-DD. " + (
        "Give the answers in the order asked, separated by commas." if extra else "Give just the answer."
    )
    near = [t for n, t in DATE_TOOLS.items() if n not in needed]
    tools = offer([needed[n] for n in sorted(needed)], near, int(params["distractors"]), rng)
    return World(question, tools, steps, answer, fmt)
