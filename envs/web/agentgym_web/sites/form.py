"""Forms to fill: text boxes, drop-downs, radio groups and check boxes over one or more pages.

Parameters: ``n_fields`` fields to fill (their values are in the goal), ``distractors``
extra things on the form (fields the goal does not mention, which must be left as they
are, and decoy controls: a Reset button, a "Save draft" button, a Cancel link), and
``pages`` (the fields are split over that many pages joined by Next buttons; answers are
kept when the agent goes back). Submitting the last page ends the episode: it is solved
when every field asked for holds its value and every other field is untouched.
Progress (for partial credit) is the share of the asked fields that were right.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agentgym_web.actions import format_action
from agentgym_web.env import Outcome
from agentgym_web.page import Node
from agentgym_web.sites.common import (
    FIRST_NAMES,
    LAST_NAMES,
    OracleStuck,
    Response,
    Site,
    esc,
    find_node,
    need,
    page,
    pick,
    place_names,
)

COUNTRIES = (
    "Argentina",
    "Canada",
    "Estonia",
    "Ghana",
    "India",
    "Japan",
    "Kenya",
    "Mexico",
    "Norway",
    "Peru",
    "Portugal",
    "Vietnam",
)


@dataclass
class Field:
    name: str  # form key
    label: str
    kind: str  # text, email, tel, number, textarea, select, radio, checkbox
    options: tuple[str, ...] = ()
    default: str = ""  # "" or an option; for checkboxes "on" or ""
    target: str | None = None  # None: a distractor field, to be left as it is
    page: int = 0

    def describe(self) -> str:
        if self.kind == "checkbox":
            return f"{self.label}: {'checked' if self.target == 'on' else 'unchecked'}"
        return f'{self.label}: "{self.target}"'


def _field_pool(rng: np.random.Generator) -> list[Field]:
    first, last = pick(rng, FIRST_NAMES), pick(rng, LAST_NAMES)
    city = place_names(rng, 1)[0]
    pool = [
        Field("first_name", "First name", "text", target=first),
        Field("last_name", "Last name", "text", target=last),
        Field("email", "Email", "email", target=f"{first.lower()}.{last.lower()}@example.org"),
        Field("phone", "Phone", "tel", target=f"555-{int(rng.integers(1000, 10000))}"),
        Field("city", "City", "text", target=city),
        Field("postal_code", "Postal code", "text", target=str(int(rng.integers(10000, 99999)))),
        Field("age", "Age", "number", target=str(int(rng.integers(18, 80)))),
        Field(
            "company",
            "Company",
            "text",
            target=f"{place_names(rng, 1)[0]} {pick(rng, ('Labs', 'Works', 'Group', 'Trading'))}",
        ),
        Field(
            "comments",
            "Comments",
            "textarea",
            target=pick(
                rng,
                (
                    "Please call after noon.",
                    "Deliver to the back door.",
                    "No rush on this one.",
                    "Thanks for the quick help.",
                ),
            ),
        ),
        Field("country", "Country", "select", options=("Choose...", *COUNTRIES), default="Choose..."),
        Field(
            "department",
            "Department",
            "select",
            options=("Choose...", "Sales", "Support", "Research", "Legal", "Finance"),
            default="Choose...",
        ),
        Field(
            "language",
            "Language",
            "select",
            options=("English", "Spanish", "French", "German", "Swahili"),
            default="English",
        ),
        Field("size", "Shirt size", "select", options=("S", "M", "L", "XL"), default="M"),
        Field("plan", "Plan", "radio", options=("Basic", "Standard", "Premium")),
        Field("contact_time", "Contact time", "radio", options=("Morning", "Afternoon", "Evening")),
        Field("priority", "Priority", "radio", options=("Low", "Normal", "High")),
        Field("newsletter", "Newsletter", "checkbox"),
        Field("gift_wrap", "Gift wrap", "checkbox"),
    ]
    for f in pool:
        if f.kind in ("select", "radio"):
            choices = [o for o in f.options if o != f.default]
            f.target = pick(rng, choices)
        elif f.kind == "checkbox":
            f.default = pick(rng, ("", "on"))
            f.target = "" if f.default == "on" else "on"
    return pool


class FormSite(Site):
    """A form of ``n_fields`` asked fields (and distractors) over ``pages`` pages."""

    start_path = "/form/1"

    def __init__(self, rng: np.random.Generator, n_fields: int, distractors: int, pages: int):
        pool = _field_pool(rng)
        order = [int(i) for i in rng.permutation(len(pool))]
        n_extra = 0
        self.decoys: list[str] = []
        for _ in range(distractors):
            if rng.random() < 0.6 and n_fields + n_extra < len(pool):
                n_extra += 1
            else:
                self.decoys.append(pick(rng, ("reset", "draft", "cancel")))
        chosen = [pool[i] for i in order[: n_fields + n_extra]]
        for f in chosen[n_fields:]:
            f.target = None  # distractor field: keep the default
        # Keep the pool's order on the page (names first, then contact...), split over pages.
        self.fields = sorted(chosen, key=lambda f: [x.name for x in pool].index(f.name))
        self.pages = pages
        per = [list(a) for a in np.array_split(np.arange(len(self.fields)), pages)]
        for p, idx in enumerate(per):
            for i in idx:
                self.fields[int(i)].page = p
        asked = [f for f in self.fields if f.target is not None]
        # The goal lists the fields in a shuffled order (not simply top to bottom).
        asked_order = [asked[int(i)] for i in rng.permutation(len(asked))]
        multi = f" The form has {pages} pages." if pages > 1 else ""
        self.goal = (
            "Fill in the form and submit it."
            + multi
            + " "
            + "; ".join(f.describe() for f in asked_order)
            + ". Leave the other fields as they are."
        )
        self.title = pick(
            rng, ("Registration", "Contact us", "Order details", "Membership application", "Support request")
        )
        self.reset_state()

    # ----- state ---------------------------------------------------------------------------------
    def reset_state(self) -> None:
        self.values = {f.name: f.default for f in self.fields}
        self.submitted = False
        self.cancelled = 0
        self.drafts = 0

    # ----- pages ----------------------------------------------------------------------------------
    def _control(self, f: Field) -> str:
        v = self.values[f.name]
        fid = f"f_{f.name}"
        if f.kind in ("text", "email", "tel", "number"):
            return (
                f"<div class='row'><label for='{fid}'>{esc(f.label)}</label>"
                f"<input id='{fid}' name='{f.name}' type='{f.kind}' value='{esc(v)}'></div>"
            )
        if f.kind == "textarea":
            return (
                f"<div class='row'><label for='{fid}'>{esc(f.label)}</label>"
                f"<textarea id='{fid}' name='{f.name}' rows='2'>{esc(v)}</textarea></div>"
            )
        if f.kind == "select":
            opts = "".join(f"<option{' selected' if o == v else ''}>{esc(o)}</option>" for o in f.options)
            return (
                f"<div class='row'><label for='{fid}'>{esc(f.label)}</label>"
                f"<select id='{fid}' name='{f.name}'>{opts}</select></div>"
            )
        if f.kind == "radio":
            items = "".join(
                f"<label><input type='radio' name='{f.name}' "
                f"value='{esc(o)}'{' checked' if o == v else ''}>{esc(o)}</label> "
                for o in f.options
            )
            return f"<fieldset><legend>{esc(f.label)}</legend>{items}</fieldset>"
        return (
            f"<div class='row'><label><input type='checkbox' name='{f.name}'{' checked' if v == 'on' else ''}>"
            f"{esc(f.label)}</label></div>"
        )

    def _form_page(self, p: int, note: str = "") -> str:
        fields = "".join(self._control(f) for f in self.fields if f.page == p)
        last = p == self.pages - 1
        buttons = f"<button type='submit'>{'Submit' if last else 'Next'}</button>"
        if "reset" in self.decoys:
            buttons += " <button type='reset'>Reset</button>"
        if "draft" in self.decoys:
            buttons += " <button type='submit' name='_draft' value='1'>Save draft</button>"
        if "cancel" in self.decoys:
            buttons += " <a href='/cancel'>Cancel</a>"
        step = f"<p class='muted'>Page {p + 1} of {self.pages}</p>" if self.pages > 1 else ""
        body = (
            f"<h1>{esc(self.title)}</h1>{step}"
            + (f"<p>{esc(note)}</p>" if note else "")
            + f"<form method='post' action='/form/{p + 1}'>{fields}<div class='row'>{buttons}</div></form>"
        )
        return page(self.title, body)

    def handle(self, method: str, path: str, query: dict[str, list[str]], form: dict[str, list[str]]) -> Response:
        if path == "/cancel":
            self.cancelled += 1
            return Response(
                page(
                    "Cancelled", "<h1>Form cancelled</h1><p>Nothing was sent.</p><a href='/form/1'>Back to the form</a>"
                )
            )
        if path.startswith("/form/"):
            try:
                p = int(path.split("/")[2]) - 1
            except ValueError:
                p = -1
            if not 0 <= p < self.pages:
                return Response(page("Not found", "<h1>Not found</h1>"), status=404)
            if method == "POST":
                for f in self.fields:
                    if f.page != p:
                        continue
                    got = form.get(f.name, [""])
                    self.values[f.name] = got[0] if got else ""
                    if f.kind == "checkbox":
                        self.values[f.name] = "on" if got and got[0] else ""
                if form.get("_draft"):
                    self.drafts += 1
                    return Response(self._form_page(p, "Draft saved."))
                if p == self.pages - 1:
                    self.submitted = True
                    return Response.redirect("/done")
                return Response.redirect(f"/form/{p + 2}")
            return Response(self._form_page(p))
        if path == "/done":
            return Response(page("Thank you", "<h1>Thank you!</h1><p>Your form was sent.</p>"))
        if path == "/":
            return Response.redirect("/form/1")
        return Response(page("Not found", "<h1>Not found</h1>"), status=404)

    # ----- verdict ----------------------------------------------------------------------------------
    def _right(self, f: Field) -> bool:
        want = f.default if f.target is None else f.target
        return self.values[f.name].strip() == want.strip()

    def outcome(self) -> Outcome | None:
        if not self.submitted:
            return None
        asked = [f for f in self.fields if f.target is not None]
        right = sum(self._right(f) for f in asked)
        extras_ok = all(self._right(f) for f in self.fields if f.target is None)
        ok = right == len(asked) and extras_ok
        wrong = [f.label for f in self.fields if not self._right(f)]
        msg = "" if ok else "Wrong or changed fields: " + ", ".join(wrong) + "."
        return Outcome(done=True, success=ok, reward=float(ok), progress=right / max(1, len(asked)), message=msg)

    # ----- scripted solver ----------------------------------------------------------------------------
    def oracle(self, nodes: list[Node], url: str, state: dict[str, Any]) -> str:
        if "/cancel" in url:
            return format_action("click", need(find_node(nodes, "link", "Back to the form"), "the way back").id)
        page_no = next(
            (int(n.name.split()[1]) - 1 for n in nodes if n.name.startswith("Page ") and " of " in n.name), 0
        )
        for f in self.fields:
            if f.page != page_no or f.target is None:
                continue
            if f.kind == "radio":
                legend = need(find_node(nodes, None, f.label), f"the {f.label} group")
                radio = need(find_node(nodes, "radio", f.target, after=nodes.index(legend)), f"option {f.target}")
                if not radio.checked:
                    return format_action("click", radio.id)
                continue
            kind = {"select": "select", "checkbox": "checkbox", "textarea": "textarea"}.get(f.kind, "textbox")
            node = need(find_node(nodes, kind, f.label), f"the {f.label} field")
            if kind == "checkbox":
                if node.checked != (f.target == "on"):
                    return format_action("click", node.id)
            elif kind == "select":
                if node.value != f.target:
                    return format_action("select", node.id, f.target)
            elif node.value != f.target:
                return format_action("type", node.id, f.target)
        label = "Submit" if page_no == self.pages - 1 else "Next"
        button = find_node(nodes, "button", label)
        if button is None:
            raise OracleStuck(f"no {label} button on page {page_no + 1}")
        return format_action("click", button.id)
