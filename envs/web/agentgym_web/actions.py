"""Browser actions: parsed from the model's text, done through Playwright like a person would.

One action per reply, written as a call::

    click(12)                 type(7, "Ana Lima")        select(4, "Peru")
    press("Enter")            scroll("down")             scroll(9, "down")
    hover(3)                  go_back()                  wait()
    answer("1,204")

Parsing is forgiving about how a model writes it: case, quotes or none (``type(7, Ana
Lima)``), keyword arguments (``click(id=12)``), ids written ``[12]`` or ``#12``, the
bracket style of WebArena (``click [12]``, ``type [7] [Ana]``, ``press [Enter]``, ``stop
[42]`` for an answer), surrounding prose and code fences. When the reply holds several
calls, a line starting with ``Action:`` wins, then calls inside code fences, then any;
among those the first is taken (``pick="last"`` takes the last). Text with no usable
call raises :class:`ActionError`, whose message lists the actions: the env turns it into
an error observation, never an exception.

:func:`execute` does an action on a page: element clicks, hovers, typing and choices
go through Playwright's element actions (real mouse and keyboard events after its
visibility, stability and enabled checks); keys through the keyboard; scrolling moves
the page or an element by most of its height.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any

from agentgym_web.page import MATCH_OPTIONS_JS, RESOLVE_JS, SCROLL_JS

ACTION_HELP = (
    'click(id), type(id, "text"), select(id, "option"), press("Enter"), scroll("down"), '
    'scroll(id, "down"), hover(id), go_back(), wait(), answer("text")'
)

#: name -> canonical name (aliases a model may write).
NAMES = {
    "click": "click",
    "type": "type",
    "fill": "type",
    "select": "select",
    "select_option": "select",
    "press": "press",
    "key": "press",
    "scroll": "scroll",
    "hover": "hover",
    "go_back": "go_back",
    "goback": "go_back",
    "back": "go_back",
    "wait": "wait",
    "answer": "answer",
    "stop": "answer",
}
DIRECTIONS = ("up", "down", "left", "right")

_NAMED_KEYS = {
    "enter": "Enter",
    "return": "Enter",
    "tab": "Tab",
    "escape": "Escape",
    "esc": "Escape",
    "backspace": "Backspace",
    "delete": "Delete",
    "del": "Delete",
    "space": "Space",
    " ": "Space",
    "arrowup": "ArrowUp",
    "up": "ArrowUp",
    "arrowdown": "ArrowDown",
    "down": "ArrowDown",
    "arrowleft": "ArrowLeft",
    "left": "ArrowLeft",
    "arrowright": "ArrowRight",
    "right": "ArrowRight",
    "home": "Home",
    "end": "End",
    "pageup": "PageUp",
    "pagedown": "PageDown",
    "insert": "Insert",
    **{f"f{i}": f"F{i}" for i in range(1, 13)},
}
_MODIFIERS = {
    "ctrl": "Control",
    "control": "Control",
    "alt": "Alt",
    "shift": "Shift",
    "meta": "Meta",
    "cmd": "Meta",
    "command": "Meta",
    "controlormeta": "ControlOrMeta",
}

_CALL = re.compile(r"(?<![A-Za-z0-9_])(" + "|".join(sorted(NAMES, key=len, reverse=True)) + r")\s*\(", re.I)
_BRACKET = re.compile(
    r"(?<![A-Za-z0-9_])(" + "|".join(sorted(NAMES, key=len, reverse=True)) + r")((?:[ \t]*\[[^\]\n]*\])+)", re.I
)
_BARE = re.compile(r"^\s*(?:action\s*:\s*)?`*(go_back|goback|back|wait)`*\s*$", re.I | re.M)
_ACTION_LINE = re.compile(r"^\s*(?:\*\*)?action(?:\*\*)?\s*:", re.I)
_FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.S)
_MAX_TEXT = 2000


class ActionError(ValueError):
    """The reply holds no usable action; the message says what is wrong."""


@dataclass(frozen=True)
class Action:
    """A parsed action: a canonical name and its arguments."""

    name: str
    args: tuple[Any, ...] = ()

    def __str__(self) -> str:
        return format_action(self.name, *self.args)


def format_action(name: str, *args: Any) -> str:
    """The canonical text of an action (what oracles emit): ``type(7, "Ana")``."""
    return f"{name}(" + ", ".join(str(a) if isinstance(a, int) else json.dumps(a) for a in args) + ")"


# ----- parsing ---------------------------------------------------------------------------
def _close(text: str, start: int) -> tuple[str, int]:
    """The argument text after an opening parenthesis at ``start`` and where it ends."""
    depth, i, quote = 0, start, None
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "\"'" and (c == '"' or i == start or not text[i - 1].isalnum()):
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            if depth == 0:
                return text[start:i], i + 1
            depth -= 1
        elif c == "\n" and depth == 0 and quote is None:
            break
        i += 1
    return text[start:i], i  # no closing parenthesis: up to the end of the line


def _split_args(s: str) -> list[str]:
    out, cur, quote, depth, i = [], [], None, 0, 0
    while i < len(s):
        c = s[i]
        if quote:
            cur.append(c)
            if c == "\\" and i + 1 < len(s):
                cur.append(s[i + 1])
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "\"'" and (not "".join(cur).strip() or c == '"'):
            quote = c
            cur.append(c)
        elif c in "([{":
            depth += 1
            cur.append(c)
        elif c in ")]}":
            depth -= 1
            cur.append(c)
        elif c == "," and depth <= 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    out.append("".join(cur))
    return [a.strip() for a in out]


_KWARG = re.compile(r"^([A-Za-z_]+)\s*=\s*(?!=)")


def _unquote(a: str) -> str:
    a = a.strip()
    m = _KWARG.match(a)
    if m:
        a = a[m.end() :].strip()
    if len(a) >= 2 and a[0] == a[-1] and a[0] in "\"'":
        if a[0] == '"':
            try:
                v = json.loads(a)
                if isinstance(v, str):
                    return v
            except ValueError:
                pass
        return a[1:-1].replace("\\" + a[0], a[0]).replace("\\\\", "\\")
    return a


def _element_id(a: str, action: str) -> int:
    s = _unquote(a).strip().strip("[]#").strip()
    if s.lower().startswith("element"):
        s = s[7:].strip().strip("[]#").strip()
    if not s.isdigit() or len(s) > 7 or int(s) == 0:
        raise ActionError(
            f"{action}() needs an element id (the number in brackets before an element), got {a.strip()[:40]!r}"
        )
    return int(s)


def _key(a: str) -> str:
    k = _unquote(a).strip()
    if not k:
        raise ActionError('press() needs a key, e.g. press("Enter")')
    if len(k) == 1:
        return "Space" if k == " " else k
    parts = [p.strip() for p in k.split("+")]
    if len(parts) > 1 and all(parts):
        mods = [_MODIFIERS.get(p.lower()) for p in parts[:-1]]
        if None in mods:
            raise ActionError(f"unknown modifier in key {k!r}; use Control, Alt, Shift or Meta")
        return "+".join([*mods, _key(parts[-1])])
    named = _NAMED_KEYS.get(k.lower().replace("_", "").replace(" ", ""))
    if named is None:
        raise ActionError(
            f"unknown key {k[:30]!r}; use a character or one of Enter, Tab, Escape, Backspace, Delete, "
            "Space, ArrowUp, ArrowDown, ArrowLeft, ArrowRight, Home, End, PageUp, PageDown (Control+a for combinations)"
        )
    return named


def _text(args: list[str], action: str, what: str) -> str:
    if not args or not "".join(args).strip():
        raise ActionError(f"{action}() needs {what}")
    if len(args) == 1:
        t = _unquote(args[0])
    else:  # unquoted text with commas in it
        t = _unquote(", ".join(args))
    if len(t) > _MAX_TEXT:
        raise ActionError(f"the text is too long ({len(t)} characters; at most {_MAX_TEXT})")
    return t


def build_action(name: str, args: list[str]) -> Action:
    """Check the arguments of one call and return the :class:`Action` (or raise ActionError)."""
    canon = NAMES[name.lower()]
    args = [a for a in args if a.strip()] if canon not in ("type", "answer") else args
    if canon in ("click", "hover"):
        if len(args) != 1:
            raise ActionError(f"{canon}() takes one element id, e.g. {canon}(12); got {len(args)} arguments")
        return Action(canon, (_element_id(args[0], canon),))
    if canon == "type":
        if len(args) < 2:
            raise ActionError('type() takes an element id and the text, e.g. type(7, "hello")')
        return Action(canon, (_element_id(args[0], canon), _text(args[1:], canon, "the text to type")))
    if canon == "select":
        if len(args) < 2:
            raise ActionError('select() takes a drop-down id and an option, e.g. select(4, "Blue")')
        options = [_unquote(a) for a in args[1:]]
        if not all(o.strip() for o in options):
            raise ActionError("select() got an empty option")
        return Action(canon, (_element_id(args[0], canon), *options))
    if canon == "press":
        if len(args) != 1:
            raise ActionError('press() takes one key, e.g. press("Enter")')
        return Action(canon, (_key(args[0]),))
    if canon == "scroll":
        if not args or len(args) > 2:
            raise ActionError(
                'scroll() takes a direction and optionally an element id first: scroll("down"), scroll(9, "up")'
            )
        if len(args) == 1 and _unquote(args[0]).strip().strip("[]#").isdigit():
            return Action(canon, (_element_id(args[0], canon), "down"))
        d = _unquote(args[-1]).strip().lower()
        if d not in DIRECTIONS:
            raise ActionError(f"scroll direction must be one of {', '.join(DIRECTIONS)}, got {d[:20]!r}")
        if len(args) == 2:
            return Action(canon, (_element_id(args[0], canon), d))
        return Action(canon, (d,))
    if canon in ("go_back", "wait"):
        if args:
            raise ActionError(f"{canon}() takes no arguments")
        return Action(canon, ())
    if canon == "answer":
        return Action(canon, (_text(args, canon, 'the answer text, e.g. answer("42")'),))
    raise ActionError(f"unknown action {name!r}")  # pragma: no cover - NAMES covers every key


def _calls(text: str) -> list[tuple[int, str, list[str]]]:
    """Every action-looking call in ``text``: (position, name, raw arguments)."""
    found = []
    for m in _CALL.finditer(text):
        inner, _ = _close(text, m.end())
        found.append((m.start(), m.group(1), _split_args(inner) if inner.strip() else []))
    taken = {pos for pos, _, _ in found}
    for m in _BRACKET.finditer(text):
        if m.start() in taken:
            continue
        found.append((m.start(), m.group(1), re.findall(r"\[([^\]\n]*)\]", m.group(2))))
    for m in _BARE.finditer(text):
        found.append((m.start(1), m.group(1), []))
    found.sort(key=lambda c: c[0])
    return found


def parse_action(text: str, pick: str = "first") -> Action:
    """The action in a model reply (see the module doc); raises :class:`ActionError`."""
    if not isinstance(text, str):
        raise ActionError(f"the reply must be text, got {type(text).__name__}")
    if pick not in ("first", "last"):
        raise ValueError(f"pick must be 'first' or 'last', got {pick!r}")
    calls = _calls(text)
    if not calls:
        hint = " (an empty reply)" if not text.strip() else ""
        raise ActionError(f"no action found{hint}. Reply with one action: {ACTION_HELP}")
    # Preference: calls on an "Action:" line, then inside code fences, then anywhere.
    line_starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]

    def line_of(pos: int) -> str:
        start = max(s for s in line_starts if s <= pos)
        end = text.find("\n", start)
        return text[start : end if end >= 0 else len(text)]

    fences = [(m.start(1), m.end(1)) for m in _FENCE.finditer(text)]
    tiers = [
        [c for c in calls if _ACTION_LINE.match(line_of(c[0]))],
        [c for c in calls if any(a <= c[0] < b for a, b in fences)],
        calls,
    ]
    for tier in tiers:
        if not tier:
            continue
        ordered = tier if pick == "first" else tier[::-1]
        first_error: ActionError | None = None
        for _, name, args in ordered:
            try:
                return build_action(name, args)
            except ActionError as exc:
                first_error = first_error or exc
        assert first_error is not None
        raise first_error
    raise ActionError(f"no action found. Reply with one action: {ACTION_HELP}")  # pragma: no cover


# ----- doing it ----------------------------------------------------------------------------
_FATAL = (
    "has been closed",
    "target crashed",
    "connection closed",
    "browser closed",
    "disconnected",
    "page crashed",
    "target closed",
    "crashed",
    "websocket error",
    "connection disposed",
)


def is_fatal(exc: BaseException) -> bool:
    """Whether a Playwright error means the page or browser is gone (not a bad action)."""
    msg = str(exc).lower()
    return any(k in msg for k in _FATAL)


#: Playwright's wording of why an action failed -> what the agent is told (first match).
_REASONS = (
    (("intercepts pointer events",), "another element covers it"),
    (("not enabled", "element is disabled"), "it is disabled"),
    (("not visible",), "it is not visible"),
    (("not stable",), "it keeps moving"),
    (("not attached", "detached"), "it left the page"),
    (("outside of the viewport",), "it is outside the visible page"),
    (("timeout",), "it did not become ready in time"),
)


def _explain(exc: BaseException, what: str) -> str:
    msg = str(exc)
    low = msg.lower()
    for needles, reason in _REASONS:
        if any(n in low for n in needles):
            return f"could not {what}: {reason}"
    first = msg.strip().splitlines()[0] if msg.strip() else type(exc).__name__
    first = re.sub(r"^\w+\.\w+: ", "", first)
    return f"could not {what}: {first[:160]}"


_US_DATE = re.compile(r"^\s*(\d{1,2})/(\d{1,2})/(\d{4})\s*$")
_TIME_12 = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*([AaPp])\.?[Mm]\.?\s*$")


def _alt_formats(text: str) -> dict[str, str]:
    """What a date or time field takes for a date or time as people write it."""
    out = {}
    m = _US_DATE.match(text)
    if m:
        out["date"] = f"{m.group(3)}-{int(m.group(1)):02d}-{int(m.group(2)):02d}"
    m = _TIME_12.match(text)
    if m:
        h = int(m.group(1)) % 12 + (12 if m.group(3).lower() == "p" else 0)
        out["time"] = f"{h:02d}:{m.group(2)}"
    return out


async def _resolve(page: Any, ident: int, op: str) -> tuple[Any, str | None]:
    handle = await page.evaluate_handle(RESOLVE_JS, [ident, op])
    el = handle.as_element()
    if el is None:
        msg = await handle.json_value()
        await handle.dispose()
        return None, str(msg)
    return el, None


async def execute(
    page: Any,
    action: Action,
    *,
    timeout_ms: float = 2000,
    typing: str = "fill",
    wait_s: float = 1.0,
    scroll_fraction: float = 0.8,
) -> str | None:
    """Do ``action`` on ``page``; return an error message for the agent, or None.

    Errors that mean the browser or page is gone are raised (the env recovers from them);
    anything the action itself did wrong comes back as a message.
    """
    name, args = action.name, action.args
    try:
        if name in ("click", "hover", "type", "select"):
            el, err = await _resolve(page, args[0], name)
            if err:
                return err
            try:
                what = f"{name} [{args[0]}]"
                # The page script already checked visibility, enabled state and what is on
                # top (without Playwright's waits for stability): act like a pointer at once.
                if name == "click":
                    await el.click(timeout=timeout_ms, force=True)
                elif name == "hover":
                    await el.hover(timeout=timeout_ms, force=True)
                elif name == "type":
                    text = args[1]
                    alts = _alt_formats(text)
                    if alts:  # a date or time as people write it, for a date/time field
                        itype = await el.evaluate("(e) => (e.type || '').toLowerCase()")
                        text = alts.get(itype, text)
                    if typing == "keys":
                        await el.fill("", timeout=timeout_ms, force=True)
                        await el.type(text, timeout=timeout_ms)
                    else:
                        await el.fill(text, timeout=timeout_ms, force=True)
                else:
                    picked = await el.evaluate(MATCH_OPTIONS_JS, list(args[1:]))
                    if isinstance(picked, str):
                        return picked
                    await el.select_option(index=picked, timeout=timeout_ms, force=True)
            except Exception as exc:
                if is_fatal(exc):
                    raise
                return _explain(exc, what)
            # Handles are not disposed one by one: they go with the episode's context.
            return None
        if name == "press":
            try:
                await page.keyboard.press(args[0])
            except Exception as exc:
                if is_fatal(exc):
                    raise
                return _explain(exc, f"press {args[0]}")
            return None
        if name == "scroll":
            ident, direction = (args[0], args[1]) if len(args) == 2 else (None, args[0])
            return await page.evaluate(SCROLL_JS, [ident, direction, scroll_fraction])
        if name == "go_back":
            before = page.url
            if not before.startswith("chrome-error:"):  # an error page cannot tell; just try
                can = await page.evaluate("() => window.navigation ? navigation.canGoBack : history.length > 1")
                if not can:
                    return "there is no previous page to go back to"
            try:
                resp = await page.go_back(wait_until="domcontentloaded", timeout=max(timeout_ms, 5000))
            except Exception as exc:
                if is_fatal(exc):
                    raise
                return _explain(exc, "go back")
            if resp is None and page.url == before:
                return "there is no previous page to go back to"
            return None
        if name == "wait":
            await asyncio.sleep(wait_s)
            return None
    except Exception as exc:
        if is_fatal(exc):
            raise
        return _explain(exc, name)
    return f"the action {name}() cannot be done on a page"
