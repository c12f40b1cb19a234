"""The text interface: the view in words, action words in, what each action did.

View (one block per observation)::

    You face east. You carry nothing. Steps left: 243.
    Ahead: a wall. Left: free. Right: a yellow key.
    You see: a yellow key at 1 right; a locked yellow door at 3 ahead, 2 left.
    Walls: row 4 ahead from 3 left to 3 right; column 3 left from 0 to 3 ahead; 1 ahead.

Positions are relative to the agent: ``N ahead`` is N cells in the direction it faces,
``N left`` / ``N right`` N cells to its side (``behind`` appears only in subgoals, for
targets the agent cannot see). The view is the agent's own partial observation
(minigrid's 7x7 square in front of it, the agent in the middle of the back row). Every
visible non-empty cell is listed; walls are merged into rows (same distance ahead) and
columns (same side offset); a cell that is not mentioned is empty floor or hidden
behind a wall or a closed door. That is enough to rebuild the exact observation:
:mod:`agentgym_minigrid.textbot` does it to drive minigrid's BabyAI bot from this text
alone.

Actions: ``turn left``, ``turn right``, ``go forward``, ``pick up``, ``drop``, ``toggle``,
``done`` (and synonyms, see :data:`PHRASES`), several per reply separated by commas,
semicolons, new lines, "then" or "and"; a count repeats one (``go forward 3 times``,
``forward x3``). When the reply has a line starting with ``Action:`` / ``Actions:``, only
what follows the last such marker is read, so a model may think first.
"""

from __future__ import annotations

import re
from typing import Any

from agentgym_minigrid.view import DIR_NAMES

# minigrid.core.actions.Actions values.
LEFT, RIGHT, FORWARD, PICKUP, DROP, TOGGLE, DONE = range(7)
#: The canonical word of each action (what the oracle and the bots say).
ACTION_WORDS = ("turn left", "turn right", "go forward", "pick up", "drop", "toggle", "done")
ALLOWED_TEXT = ", ".join(ACTION_WORDS)

#: Accepted phrases (lower case, single spaces) and the action each means.
PHRASES: dict[str, int] = {
    "turn left": LEFT,
    "rotate left": LEFT,
    "left": LEFT,
    "go left": LEFT,
    "turn right": RIGHT,
    "rotate right": RIGHT,
    "right": RIGHT,
    "go right": RIGHT,
    "go forward": FORWARD,
    "move forward": FORWARD,
    "step forward": FORWARD,
    "walk forward": FORWARD,
    "forward": FORWARD,
    "go ahead": FORWARD,
    "move ahead": FORWARD,
    "go straight": FORWARD,
    "move": FORWARD,
    "pick up": PICKUP,
    "pickup": PICKUP,
    "pick": PICKUP,
    "grab": PICKUP,
    "take": PICKUP,
    "drop": DROP,
    "put down": DROP,
    "release": DROP,
    "toggle": TOGGLE,
    "open": TOGGLE,
    "unlock": TOGGLE,
    "close": TOGGLE,
    "done": DONE,
    "finish": DONE,
    "stop": DONE,
    "wait": DONE,
}
_PHRASES_LONGEST_FIRST = sorted(PHRASES, key=len, reverse=True)
COLOR_WORDS = ("red", "green", "blue", "purple", "yellow", "grey", "gray")
#: Words allowed after an action phrase ("pick up the yellow key", "go forward 2 steps").
_FILLER = frozenset(
    {
        "the",
        "a",
        "an",
        "it",
        "this",
        "that",
        "up",
        "door",
        "key",
        "ball",
        "box",
        "goal",
        "object",
        "step",
        "steps",
        "cell",
        "cells",
        "square",
        "once",
        "one",
        "more",
        "again",
        "to",
        "of",
        "in",
        "front",
        "me",
        "you",
        "now",
        "down",
        *COLOR_WORDS,
    }
)
_LEAD_FILLER = frozenset(
    {
        "please",
        "i",
        "will",
        "i'll",
        "ill",
        "now",
        "next",
        "first",
        "finally",
        "lets",
        "let's",
        "we",
        "then",
        "and",
        "should",
        "to",
        "just",
        "action",
        "actions",
        "so",
    }
)
_NUMBER_WORDS = {
    "twice": 2,
    "thrice": 3,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}
_SPLIT = re.compile(r"[,;\n]+|\.(?=\s|$)|\bthen\b|\band\b", re.IGNORECASE)
_MARKER = re.compile(r"(?im)^\s*\**\s*actions?\s*\**\s*:")
_LIST_LINE = re.compile(r"(?m)^\s*(?:\d+\s*[.)]|[-*\u2022>])\s+")
_LIST_MARK = re.compile(r"^\s*(?:\d+\s*[.)]|[-*\u2022>])\s*")
_COUNT = re.compile(r"^(?:x\s*(\d+)|(\d+)\s*x|(\d+)\s*times?|(\d+))$")


class ActionError(ValueError):
    """A reply that holds no usable action, or words that are not actions."""


#: Phrases a lenient reader pulls out of prose: those that rarely mean anything else
#: there (not "left", "right", "move", "open", "take", "stop", ...: a scene described in
#: words is full of them).
LENIENT_PHRASES: tuple[str, ...] = tuple(
    p for p in _PHRASES_LONGEST_FIRST if " " in p and p not in ("go ahead", "move ahead")
) + ("forward", "toggle", "pickup")
_LENIENT_SCAN = re.compile(r"\b(?:" + "|".join(re.escape(p) for p in LENIENT_PHRASES) + r")\b")
READERS = ("strict", "lenient")


def parse_actions(text: str, max_actions: int, reader: str = "strict") -> tuple[list[int], str | None]:
    """``(actions, warning)`` for a reply; raises :class:`ActionError` on unusable text.

    ``warning`` is set (and the list cut) when the reply has more than ``max_actions``.
    ``reader="lenient"`` reads a part that is not an action list by pulling the
    :data:`LENIENT_PHRASES` out of it in order ("I will turn left to face the key" is
    ``turn left``) and skips parts with none; only a reply with no action at all is an
    error. The strict reader (the default) refuses any part that is not an action.
    """
    if reader not in READERS:
        raise ValueError(f"reader must be one of {READERS}, got {reader!r}")
    markers = list(_MARKER.finditer(text))
    if markers:
        text = text[markers[-1].end() :]
    text = _LIST_LINE.sub("", text)
    actions: list[int] = []
    for raw in _SPLIT.split(text):
        chunk = _normalise(raw)
        if not chunk:
            continue
        try:
            action, count = _read_chunk(chunk)
        except ActionError:
            if reader == "strict":
                raise
            actions.extend(PHRASES[m.group(0)] for m in _LENIENT_SCAN.finditer(chunk))
            continue
        actions.extend([action] * count)
        if len(actions) > 4 * max_actions + 64:  # no need to read a runaway reply further
            break
    if not actions:
        raise ActionError(f"no action found in your reply. Use: {ALLOWED_TEXT}.")
    if len(actions) > max_actions:
        return actions[:max_actions], (
            f"you gave {len(actions)} actions; only the first {max_actions} were done (at most {max_actions} per turn)"
        )
    return actions, None


def _normalise(raw: str) -> str:
    s = _LIST_MARK.sub("", raw.strip().lower())
    s = re.sub(r"[^a-z0-9' ]+", " ", s)
    words = s.split()
    while words and words[0] in _LEAD_FILLER:
        words.pop(0)
    return " ".join(words)


def _read_chunk(chunk: str) -> tuple[int, int]:
    count = 1
    lead = re.match(r"^(\d+)\s*(?:x|times)?\s+(.*)$", chunk)
    if lead and not any(chunk.startswith(p) for p in _PHRASES_LONGEST_FIRST):
        count, chunk = int(lead.group(1)), lead.group(2)
    for phrase in _PHRASES_LONGEST_FIRST:
        if chunk == phrase or chunk.startswith(phrase + " "):
            rest = chunk[len(phrase) :].split()
            break
    else:
        raise ActionError(f"{_quote(chunk)} is not an action. Use: {ALLOWED_TEXT}.")
    for word in rest:
        if word in _FILLER:
            continue
        m = _COUNT.match(word)
        if m:
            count = int(next(g for g in m.groups() if g is not None))
        elif word in _NUMBER_WORDS:
            count = _NUMBER_WORDS[word]
        elif word in ("time", "times", "x"):
            continue
        else:
            raise ActionError(f"{_quote(chunk)} is not an action. Use: {ALLOWED_TEXT}.")
    if count < 1:
        raise ActionError(f"{_quote(chunk)} repeats an action {count} times. Use: {ALLOWED_TEXT}.")
    return PHRASES[phrase], min(count, 1000)


def _quote(s: str) -> str:
    return repr(s[:40] + ("..." if len(s) > 40 else ""))


# ----- describing things ---------------------------------------------------------------
def name(obj: Any, article: str = "a") -> str:
    """``a yellow key``, ``a locked red door``, ``the green goal`` (``article='the'``)."""
    t = obj.type
    if t == "wall":
        return f"{article} wall"
    if t == "lava":
        return "lava"
    if t == "door":
        state = "open" if obj.is_open else "locked" if obj.is_locked else "closed"
        art = "an" if article == "a" and state == "open" else article
        return f"{art} {state} {obj.color} door"
    if t == "goal":
        return f"{article} {obj.color} goal"
    return f"{article} {obj.color} {t}"


def plain_name(obj: Any) -> str:
    """``the yellow key``, ``the red door`` (no door state): how subgoals name objects."""
    if obj.type == "wall":
        return "the wall"
    return f"the {obj.color} {obj.type}"


def lateral_word(lat: int) -> str:
    if lat == 0:
        return "centre"
    return f"{abs(lat)} {'left' if lat < 0 else 'right'}"


def position(ahead: int, lat: int) -> str:
    """``2 ahead, 1 left``; ``3 behind`` for negative ``ahead``; ``here`` for (0, 0)."""
    parts = []
    if ahead > 0:
        parts.append(f"{ahead} ahead")
    elif ahead < 0:
        parts.append(f"{-ahead} behind")
    if lat:
        parts.append(lateral_word(lat))
    return ", ".join(parts) if parts else "here"


def wall_segments(walls: set[tuple[int, int]]) -> list[str]:
    """Wall cells ``(ahead, lateral)`` merged into rows, then columns, then single cells."""
    left = set(walls)
    out: list[tuple[tuple[int, int], str]] = []
    for a in sorted({a for a, _ in left}):
        lats = sorted(lat for aa, lat in left if aa == a)
        for lo, hi in _runs(lats):
            if hi > lo:
                out.append(((a, lo), f"row {a} ahead from {lateral_word(lo)} to {lateral_word(hi)}"))
                left -= {(a, lat) for lat in range(lo, hi + 1)}
    for lat in sorted({lat for _, lat in left}):
        aheads = sorted(a for a, ll in left if ll == lat)
        for lo, hi in _runs(aheads):
            if hi > lo:
                out.append(((lo, lat), f"column {lateral_word(lat)} from {lo} to {hi} ahead"))
            else:
                out.append(((lo, lat), position(lo, lat)))
    out.sort(key=lambda x: x[0])
    return [s for _, s in out]


def _runs(values: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for v in values:
        if runs and v == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], v)
        else:
            runs.append((v, v))
    return runs


def render_view(
    cells: list[Any], visible: list[bool], size: int, direction: int, carrying: Any, steps_left: int | None = None
) -> str:
    """The observation block for one view (see the module docstring)."""
    half = size // 2
    agent_k = (size - 1) * size + half
    header = f"You face {DIR_NAMES[direction]}. You carry {name(carrying) if carrying is not None else 'nothing'}."
    if steps_left is not None:
        header += f" Steps left: {steps_left}."

    def near(k: int) -> str:
        c = cells[k]
        return "free" if c is None else name(c)

    around = f"Ahead: {near(agent_k - size)}. Left: {near(agent_k - 1)}. Right: {near(agent_k + 1)}."
    seen: list[tuple[int, int, int, str]] = []
    walls: set[tuple[int, int]] = set()
    for k in range(size * size):
        c = cells[k]
        if c is None or k == agent_k or not visible[k]:
            continue
        vj, vi = divmod(k, size)
        ahead, lat = size - 1 - vj, vi - half
        if c.type == "wall":
            walls.add((ahead, lat))
        else:
            seen.append((ahead + abs(lat), ahead, lat, name(c)))
    seen.sort()
    objects = (
        "You see: " + "; ".join(f"{n} at {position(a, lat)}" for _, a, lat, n in seen) + "."
        if seen
        else "You see no objects."
    )
    wall_text = "Walls: " + "; ".join(wall_segments(walls)) + "." if walls else "No walls in view."
    return "\n".join((header, around, objects, wall_text))


# ----- what an action did ----------------------------------------------------------------
def outcome(action: int, before: dict[str, Any], env: Any) -> str:
    """One sentence on what ``action`` did, from the state ``before`` it and ``env`` after."""
    front = before["front"]
    if action == LEFT:
        return "You turned left."
    if action == RIGHT:
        return "You turned right."
    if action == FORWARD:
        if tuple(env.agent_pos) != before["pos"]:
            if front is not None and front.type == "goal":
                return "You went forward onto the goal."
            if front is not None and front.type == "lava":
                return "You went forward into lava."
            return "You went forward."
        return f"You could not go forward: {name(front, 'the') if front is not None else 'something'} is in the way."
    if action == PICKUP:
        if env.carrying is not None and before["carrying"] is None:
            return f"You picked up {name(env.carrying, 'the')}."
        if before["carrying"] is not None:
            return f"You could not pick up: you already carry {name(before['carrying'], 'the')}."
        if front is None:
            return "You could not pick up: there is nothing in front of you."
        return f"You could not pick up {name(front, 'the')}."
    if action == DROP:
        if before["carrying"] is not None and env.carrying is None:
            return f"You dropped {name(before['carrying'], 'the')}."
        if before["carrying"] is None:
            return "You could not drop: you carry nothing."
        return f"You could not drop: {name(front, 'the')} is in the way."
    if action == TOGGLE:
        if front is None:
            return "You could not toggle: there is nothing in front of you."
        if front.type == "door":
            was_open, was_locked = before["door"]
            if front.is_open and not was_open:
                return f"You {'unlocked and ' if was_locked else ''}opened the {front.color} door."
            if was_open and not front.is_open:
                return f"You closed the {front.color} door."
            return f"The {front.color} door is locked; you need to carry the {front.color} key."
        if front.type == "box":
            return f"You opened the {front.color} box."
        return f"You could not toggle {name(front, 'the')}."
    return "You said done."


def snapshot(env: Any) -> dict[str, Any]:
    """What :func:`outcome` needs to know about the state before an action."""
    fx, fy = env.front_pos
    grid = env.grid
    front = grid.grid[fy * grid.width + fx] if 0 <= fx < grid.width and 0 <= fy < grid.height else None
    door = (front.is_open, front.is_locked) if front is not None and front.type == "door" else None
    return {"pos": tuple(env.agent_pos), "front": front, "carrying": env.carrying, "door": door}
