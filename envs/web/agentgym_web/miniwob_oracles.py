"""Scripted solvers of the supported MiniWoB++ tasks, acting only through the text interface.

Each solver reads the goal and the page *as the agent sees them* (the observation's
element lines, through :func:`agentgym_web.page.parse_view`) and returns one action
string in the agent's syntax. Nothing here looks into the browser: a solver that
succeeds shows that the text view holds what the task needs and that the actions can
do it. ``state`` is a dict the env keeps for the episode (solvers that explore, such as
binary search or paging, remember what they saw).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from agentgym_web.actions import format_action
from agentgym_web.page import Node, OracleStuck, need, parse_view

Solver = Callable[[str, list[Node], dict[str, Any]], str]
SOLVERS: dict[str, Solver] = {}


def solver(*names: str) -> Callable[[Solver], Solver]:
    def deco(fn: Solver) -> Solver:
        for n in names:
            SOLVERS[n] = fn
        return fn

    return deco


def solve(task: str, goal: str, view: str, state: dict[str, Any]) -> str:
    """The next action for ``task`` given the goal and the page text."""
    fn = SOLVERS.get(task)
    if fn is None:
        raise KeyError(f"no oracle for MiniWoB task {task!r}")
    return fn(goal, parse_view(view), state)


# ----- helpers ---------------------------------------------------------------------------------
def click(n: Node) -> str:
    return format_action("click", n.id)


def type_(n: Node, text: str) -> str:
    return format_action("type", n.id, text)


def quoted(goal: str) -> list[str]:
    return re.findall(r'"([^"]*)"', goal)


def first(
    nodes: list[Node],
    kind: str | None = None,
    name: str | None = None,
    *,
    ci: bool = False,
    pred: Callable[[Node], bool] | None = None,
) -> Node | None:
    for n in nodes:
        if kind is not None and n.kind != kind:
            continue
        if name is not None:
            a, b = (n.name.lower(), name.lower()) if ci else (n.name, name)
            if a != b:
                continue
        if pred is not None and not pred(n):
            continue
        return n
    return None


def submit(nodes: list[Node], name: str = "Submit") -> str:
    return click(need(first(nodes, "button", name, ci=True), f"the {name} button"))


def textboxes(nodes: list[Node]) -> list[Node]:
    return [n for n in nodes if n.kind in ("textbox", "textarea")]


def fill_then(nodes: list[Node], pairs: list[tuple[Node, str]], then: Callable[[], str]) -> str:
    """Type each (field, text) whose value differs, then do ``then``."""
    for field, text in pairs:
        if field.value != text:
            return type_(field, text)
    return then()


ORDINALS = {"1st": 1, "2nd": 2, "3rd": 3}


def ordinal(s: str) -> int:
    s = s.strip().lower()
    if s in ORDINALS:
        return ORDINALS[s]
    m = re.match(r"(\d+)", s)
    if not m:
        raise OracleStuck(f"not an ordinal: {s!r}")
    return int(m.group(1))


# ----- the solvers -------------------------------------------------------------------------------
@solver("click-button", "unicode-test")
def _click_button(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    return click(need(first(nodes, "button", quoted(goal)[0]), "the button"))


@solver("click-test")
def _click_test(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    return click(need(first(nodes, "button"), "a button"))


@solver("click-test-2")
def _click_test_2(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    name = re.search(r"Click button (\S+?)\.?$", goal).group(1)
    return click(need(first(nodes, "button", name), name))


@solver("click-button-sequence")
def _click_button_sequence(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    names = re.findall(r"button (\w+)", goal)
    i = state.get("i", 0)
    state["i"] = i + 1
    return click(need(first(nodes, "button", names[min(i, len(names) - 1)]), "the next button"))


@solver("click-checkboxes", "click-checkboxes-large", "click-checkboxes-transfer")
def _click_checkboxes(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    m = re.match(r"Select (.*) and click Submit\.", goal)
    wanted = set() if m.group(1) == "nothing" else {w.strip() for w in m.group(1).split(",")}
    for n in nodes:
        if n.kind == "checkbox" and n.checked != (n.name in wanted):
            return click(n)
    return submit(nodes)


@solver("click-option")
def _click_option(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    name = re.match(r"Select (.*) and click Submit\.", goal).group(1)
    radio = need(first(nodes, "radio", name), f"radio {name}")
    return click(radio) if not radio.checked else submit(nodes)


@solver("click-collapsible")
def _click_collapsible(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    section = need(first(nodes, "tab", pred=lambda n: n.name.startswith("Section")), "the section")
    if "collapsed" in section.attrs:
        return click(section)
    return submit(nodes)


@solver("click-collapsible-2")
def _click_collapsible_2(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    word = quoted(goal)[0]
    hit = first(nodes, None, word, pred=lambda n: n.kind not in ("tab",))
    return click(hit) if hit is not None else _open_next(nodes, state, "tab", f"link {word!r} is in no section")


@solver("click-dialog")
def _click_dialog(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    return click(need(first(nodes, "button", "Close"), "the dialog's close button"))


@solver("click-dialog-2")
def _click_dialog_2(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    label = quoted(goal)[0]
    name = "Close" if label.lower() == "x" else label
    return click(need(first(nodes, "button", name, ci=True), f"button {label}"))


@solver("click-link")
def _click_link(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    return click(need(first(nodes, None, quoted(goal)[0]), "the link"))


@solver("click-tab")
def _click_tab(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    tab = re.search(r"Tab #(\d+)", goal).group(0)
    return click(need(first(nodes, "link", tab), tab))


@solver("click-tab-2", "click-tab-2-hard")
def _click_tab_2(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    word = quoted(goal)[0]
    hit = first(nodes, "span", word)
    return click(hit) if hit is not None else _open_next(nodes, state, "link", f"link {word!r} is on no tab")


def _open_next(nodes: list[Node], state: dict[str, Any], kind: str, stuck: str) -> str:
    """Click the next collapsed section header (of ``kind``) not opened yet."""
    opened = state.setdefault("opened", [])
    for n in nodes:
        if n.kind == kind and "collapsed" in n.attrs and n.name not in opened:
            opened.append(n.name)
            return click(n)
    raise OracleStuck(stuck)


@solver("click-widget")
def _click_widget(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    kind = quoted(goal)[0]
    want = {"text": "textbox"}.get(kind, kind)
    return click(need(first(nodes, want), f"a {kind} widget"))


@solver("choose-list")
def _choose_list(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    item = re.match(r"Select (.*) from the list and click Submit\.", goal).group(1)
    sel = need(first(nodes, "select"), "the list")
    if sel.value != item:
        return format_action("select", sel.id, item)
    return submit(nodes)


@solver("enter-password")
def _enter_password(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    pw = quoted(goal)[0]
    return fill_then(nodes, [(f, pw) for f in textboxes(nodes)], lambda: submit(nodes))


@solver("enter-text", "enter-text-dynamic")
def _enter_text(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    return fill_then(nodes, [(textboxes(nodes)[0], quoted(goal)[0])], lambda: submit(nodes))


@solver("enter-text-2")
def _enter_text_2(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    text = quoted(goal)[0]
    text = text.upper() if "upper case" in goal else text.lower()
    return fill_then(nodes, [(textboxes(nodes)[0], text)], lambda: submit(nodes))


@solver("enter-date")
def _enter_date(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    mm, dd, yyyy = re.search(r"(\d{2})/(\d{2})/(\d{4})", goal).groups()
    field = textboxes(nodes)[0]
    if field.value == f"{yyyy}-{mm}-{dd}":  # a date field shows its value as yyyy-mm-dd
        return submit(nodes)
    return type_(field, f"{mm}/{dd}/{yyyy}")


@solver("focus-text")
def _focus_text(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    return click(textboxes(nodes)[0])


@solver("focus-text-2")
def _focus_text_2(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    k = ordinal(re.search(r"the (\w+) input", goal).group(1))
    return click(textboxes(nodes)[k - 1])


@solver("login-user", "login-user-popup")
def _login_user(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    user, pw = quoted(goal)[:2]
    cancel = first(nodes, "button", "Cancel")
    if cancel is not None:  # the popup: stay on the page
        return click(cancel)
    boxes = textboxes(nodes)
    plain = [b for b in boxes if b.attrs.get("type") != "password"]
    secret = [b for b in boxes if b.attrs.get("type") == "password"]
    button = need(first(nodes, "button"), "the login button")
    return fill_then(nodes, [(plain[0], user), (secret[0], pw)], lambda: click(button))


@solver("read-table")
def _read_table(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    key = re.search(r"value of (.*) into the text", goal).group(1)
    cells = [n for n in nodes if n.kind in ("td", "th")]
    for a, b in zip(cells, cells[1:]):
        if a.name == key:
            return fill_then(nodes, [(textboxes(nodes)[0], b.name)], lambda: submit(nodes))
    raise OracleStuck(f"no row {key!r}")


@solver("search-engine")
def _search_engine(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    term = quoted(goal)[0]
    k = ordinal(re.search(r"click the (\w+) search result", goal).group(1))
    box = textboxes(nodes)[0]
    if box.value != term:
        return type_(box, term)
    if not state.get("searched"):
        state["searched"] = True
        return submit(nodes, "Search")
    page_wanted = (k - 1) // 3 + 1
    results = [n for n in nodes if n.kind == "link" and n.name not in ("<", ">") and not n.name.isdigit()]
    current = state.get("page", 1)
    if current == page_wanted and len(results) >= 3:
        return click(results[(k - 1) % 3])
    state["page"] = page_wanted
    return click(need(first(nodes, "link", str(page_wanted)), f"page link {page_wanted}"))


@solver("use-autocomplete")
def _use_autocomplete(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    parts = quoted(goal)
    start, end = parts[0], parts[1] if len(parts) > 1 else ""
    box = textboxes(nodes)[0]
    if state.get("picked") and box.value.startswith(start) and box.value.endswith(end):
        return submit(nodes)
    options = [
        n
        for n in nodes
        if n.depth > 0 and n.name.startswith(start) and n.name.endswith(end) and n.kind not in ("textbox", "button")
    ]
    if options and box.value == start:
        state["picked"] = True
        return click(options[0])
    if box.value == start and not state.get("waited"):
        state["waited"] = True  # the suggestions come a moment after typing
        return "wait()"
    state["waited"] = False
    return type_(box, start)


@solver("copy-paste")
def _copy_paste(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    source = need(first(nodes, "textarea"), "the text area")
    target = need(first(nodes, "textbox"), "the text box")
    return fill_then(nodes, [(target, source.value)], lambda: submit(nodes))


@solver("find-word")
def _find_word(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    k = ordinal(re.search(r"Find the (\w+) word", goal).group(1))
    para = need(first(nodes, "p"), "the paragraph")
    word = re.sub(r"[^a-zA-Z0-9]", "", para.name.split()[k - 1])
    return fill_then(nodes, [(textboxes(nodes)[0], word)], lambda: submit(nodes))


@solver("guess-number")
def _guess_number(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    lo, hi = state.setdefault("range", [0, 9])
    box = textboxes(nodes)[0]
    feedback = " ".join(n.name for n in nodes if n.kind == "div").lower()
    if state.get("pending") is not None:
        g = state.pop("pending")
        if "higher" in feedback:
            lo = g + 1
        elif "lower" in feedback:
            hi = g - 1
        state["range"] = [lo, hi]
    guess = (lo + hi) // 2
    if box.value != str(guess):
        return type_(box, str(guess))
    state["pending"] = guess
    return submit(nodes)


@solver("simple-arithmetic")
def _simple_arithmetic(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    prob = need(first(nodes, pred=lambda n: n.name.strip().endswith("=")), "the problem")
    a, op, b = re.match(r"\s*(-?\d+)\s*([-+x*])\s*(-?\d+)\s*=", prob.name).groups()
    x, y = int(a), int(b)
    val = x + y if op == "+" else x - y if op == "-" else x * y
    return fill_then(nodes, [(textboxes(nodes)[0], str(val))], lambda: submit(nodes))


@solver("odd-or-even")
def _odd_or_even(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    done = state.setdefault("done", [])
    for i, n in enumerate(nodes):
        if n.kind == "div" and re.fullmatch(r"-?\d+", n.name) and n.id not in done:
            word = "Even" if int(n.name) % 2 == 0 else "Odd"
            near = [m for m in nodes[max(0, i - 1) : i + 2] if m.kind == "button" and m.name == word]
            done.append(n.id)
            return click(need(near[0] if near else None, f"the {word} button"))
    return submit(nodes)


@solver("navigate-tree")
def _navigate_tree(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    name = quoted(goal)[0]
    hit = first(nodes, "span", name)
    if hit is not None:
        return click(hit)
    opened = state.setdefault("opened", [])
    for n in nodes:
        if n.kind == "div" and "expandable-hitarea" in str(n.attrs.get("class", "")) and n.id not in opened:
            opened.append(n.id)
            return click(n)
    raise OracleStuck(f"{name!r} is in no folder")


_SOCIAL_ICONS = {"Reply": "reply", "Retweet": "retweet", "Like": "like"}


@solver("social-media")
def _social_media(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    user = re.search(r"For the user (\S+),", goal).group(1)
    action = quoted(goal)[0]
    # The posts: a username line, then the post's text and controls until the next username.
    starts = [i for i, n in enumerate(nodes) if n.kind == "span" and n.name.startswith("@")]
    for k, i in enumerate(starts):
        if nodes[i].name != user:
            continue
        block = nodes[i : starts[k + 1] - 1 if k + 1 < len(starts) else len(nodes)]
        if action in _SOCIAL_ICONS:
            icon = first(block, pred=lambda n: n.attrs.get("class") == _SOCIAL_ICONS[action])
            return click(need(icon, f"the {action} icon"))
        item = first(block, "li", pred=lambda n: n.name.startswith(action))
        if item is not None:
            return click(item)
        return click(need(first(block, pred=lambda n: n.attrs.get("class") == "more"), "the more icon"))
    raise OracleStuck(f"no post by {user}")


@solver("email-inbox")
def _email_inbox(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    name = re.search(r"the email by (.+?) and ", goal).group(1)
    opened = (
        first(nodes, pred=lambda n: n.attrs.get("id") == "close-email") is not None
        or first(nodes, pred=lambda n: n.kind == "div" and n.name == "Forward") is not None
    )
    if "trash" in goal or "star icon" in goal:
        icon = "trash" if "trash" in goal else "star"
        for i, n in enumerate(nodes):
            if n.kind == "div" and n.name == name and n.depth > 0:
                for m in nodes[i + 1 : i + 6]:
                    if m.attrs.get("class", "").startswith(icon):
                        return click(m)
        raise OracleStuck(f"no {icon} icon for {name}")
    forward_to = re.search(r"forward that email to (.+?)\.$", goal)
    reply = quoted(goal)
    send = first(nodes, pred=lambda n: n.attrs.get("id") in ("send-forward", "send-reply"))
    if send is not None:
        boxes = textboxes(nodes)
        if forward_to:
            to = need(first(boxes, pred=lambda n: n.kind == "textbox"), "the forward address")
            return fill_then(nodes, [(to, forward_to.group(1))], lambda: click(send))
        body = need(first(boxes, "textarea"), "the reply text")
        return fill_then(nodes, [(body, reply[0])], lambda: click(send))
    if opened:
        label = "Forward" if forward_to else "Reply"
        return click(need(first(nodes, "div", label), label))
    sender = need(first(nodes, "div", name, pred=lambda n: n.depth > 0), f"the email by {name}")
    return click(sender)


_LAYOUT_KEYS = (("genre", 0), ("director", 1), ("name", 1), ("year", 2), ("date", 2))


@solver("multi-layouts")
def _multi_layouts(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    genre, director, year = re.findall(r"Search for (.+?) movies directed by (.+?) from year (\d+)\.", goal)[0]
    values = (genre, director, year)
    boxes = [i for i, n in enumerate(nodes) if n.kind == "textbox"]
    # Labels come before their fields, or (in one layout) after them.
    after = boxes[0] == 0 or not any(k in nodes[boxes[0] - 1].name.lower() for k, _ in _LAYOUT_KEYS)
    pairs = []
    for i in boxes:
        j = i + 1 if after else i - 1
        label = nodes[j].name.lower() if 0 <= j < len(nodes) else ""
        slot = next((v for k, v in _LAYOUT_KEYS if k in label), None)
        if slot is None:
            raise OracleStuck(f"no label for field [{nodes[i].id}]")
        pairs.append((nodes[i], values[slot]))
    go = first(nodes, pred=lambda n: n.kind in ("button", "div") and n.name in ("Submit", "Search", "Go!"))
    return fill_then(nodes, pairs, lambda: click(need(go, "the search button")))


@solver("phone-book")
def _phone_book(goal: str, nodes: list[Node], state: dict[str, Any]) -> str:
    m = re.search(r"Find (.+?) in the contact book and click on their (\w+)", goal)
    person, what = m.group(1), m.group(2).lower()
    label = {"phone": "Phone:", "email": "Email:", "address": "Address:"}[what]
    for i, n in enumerate(nodes):
        if n.kind == "h2" and n.name == person:
            for j in range(i + 1, min(i + 8, len(nodes))):
                if nodes[j].name == label and j + 1 < len(nodes):
                    return click(nodes[j + 1])
            raise OracleStuck(f"no {label} of {person}")
    return click(need(first(nodes, "link", ">"), "the next page link"))
