"""A small encyclopedia of made-up places: follow links down to the page with the fact.

The site is a tree: the front page links to regions, regions to provinces, provinces to
districts, down to towns (``depth`` levels of links), each page linking to
``branching`` children. A town's page has an infobox (population, founding year, mayor,
river, elevation). The goal names the town and the chain of places it lies in, and asks
for one fact, given with ``answer("...")``; the answer is checked ignoring case,
thousands separators and a trailing unit.

``distractors`` adds that many unrelated links to every page (articles on climate,
history, sister towns, leading to pages with text but no way down) and, on town pages,
a "Nearby towns" table of other towns' figures for the same facts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agentgym_web.actions import format_action
from agentgym_web.env import Outcome
from agentgym_web.page import Node
from agentgym_web.sites.common import (
    OracleStuck,
    Response,
    Site,
    esc,
    find_node,
    need,
    page,
    person,
    pick,
    place_names,
)

LEVELS = ("region", "province", "district", "town")
FACTS = ("population", "founded", "mayor", "river", "elevation")
_FACT_LABEL = {
    "population": "Population",
    "founded": "Founded",
    "mayor": "Mayor",
    "river": "River",
    "elevation": "Elevation",
}
_QUESTION = {
    "population": "What is the population of {town}?",
    "founded": "In which year was {town} founded?",
    "mayor": "Who is the mayor of {town}?",
    "river": "Which river flows through {town}?",
    "elevation": "What is the elevation of {town}?",
}
_LEADS = (
    "lies in the hills above the coast",
    "is known for its markets and old bridges",
    "grew around a crossing of two trade roads",
    "has a mild climate and long summers",
    "is home to a small university",
    "was rebuilt after a great flood",
)
_TOPICS = ("Climate", "History", "Economy", "Transport", "Culture", "Sport", "Cuisine", "Geology")


@dataclass
class Place:
    slug: str
    name: str
    level: int  # 0: the front page; depth: a town
    parent: Place | None = None
    children: list[Place] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)
    lead: str = ""

    def chain(self) -> list[Place]:
        out, p = [], self
        while p is not None and p.level > 0:
            out.append(p)
            p = p.parent
        return out[::-1]


def _facts(rng: np.random.Generator, rivers: list[str]) -> dict[str, str]:
    return {
        "population": f"{int(rng.integers(800, 250_000)):,}",
        "founded": str(int(rng.integers(900, 1950))),
        "mayor": person(rng),
        "river": pick(rng, rivers),
        "elevation": f"{int(rng.integers(2, 2400))} m",
    }


def _norm(s: str) -> str:
    s = s.strip().strip(".").strip().lower()
    s = re.sub(r"(?<=\d)[,\s](?=\d{3}\b)", "", s)
    s = re.sub(r"\s*(m|metres|meters)$", "", s)
    return re.sub(r"\s+", " ", s)


class WikiSite(Site):
    """Find one fact about a town ``depth`` links below the front page."""

    def __init__(self, rng: np.random.Generator, depth: int, branching: int, distractors: int):
        self.depth, self.branching, self.distractors = depth, branching, distractors
        taken: set[str] = set()
        rivers = [n + " River" for n in place_names(rng, 6, taken)]
        self.root = Place("index", "Atlas of Varnland", 0)
        self.pages: dict[str, Place] = {"index": self.root}
        # Only the path to the target is built all the way down; other branches stop one
        # level lower (their pages exist and link on, to keep the site small).
        self.path: list[Place] = []
        node = self.root
        for level in range(1, depth + 1):
            kind = LEVELS[len(LEVELS) - depth + level - 1]
            names = place_names(rng, branching, taken)
            kids = []
            for name in names:
                slug = f"{kind}-{name.lower()}"
                child = Place(slug, name, level, node, lead=f"{name} {pick(rng, _LEADS)}.")
                if level == depth:
                    child.facts = _facts(rng, rivers)
                self.pages[slug] = child
                kids.append(child)
            node.children = kids
            nxt = kids[int(rng.integers(len(kids)))]
            # Siblings off the path get children of their own (dead ends a level down).
            if level < depth:
                next_kind = LEVELS[len(LEVELS) - depth + level]
                for sib in kids:
                    if sib is nxt:
                        continue
                    for name in place_names(rng, min(branching, 3), taken):
                        slug = f"{next_kind}-{name.lower()}"
                        leaf = Place(slug, name, level + 1, sib, lead=f"{name} {pick(rng, _LEADS)}.")
                        if level + 1 == depth:
                            leaf.facts = _facts(rng, rivers)
                        self.pages[slug] = leaf
                        sib.children.append(leaf)
            self.path.append(nxt)
            node = nxt
        self.target = node
        self.fact = pick(rng, FACTS)
        self.value = self.target.facts[self.fact]
        self.topics = [pick(rng, _TOPICS) for _ in range(distractors)]
        self.nearby = (
            [(n, _facts(rng, rivers)) for n in place_names(rng, min(distractors, 4), taken)] if distractors >= 2 else []
        )
        where = ""
        chain = [p.name for p in self.path[:-1]]
        if chain:
            kinds = [LEVELS[len(LEVELS) - depth + i] for i in range(len(chain))]
            where = " It lies in " + ", in ".join(f"the {k} of {n}" for k, n in zip(kinds[::-1], chain[::-1])) + "."
        self.goal = (
            _QUESTION[self.fact].format(town=self.target.name)
            + where
            + ' Find it on the site and reply with answer("...").'
        )

    # ----- pages -----------------------------------------------------------------------------------
    def _nav(self) -> str:
        return "<a href='/wiki/index'>Front page</a><a href='/wiki/random'>Random article</a>"

    def _article(self, p: Place) -> str:
        crumbs = " &rsaquo; ".join(f"<a href='/wiki/{c.slug}'>{esc(c.name)}</a>" for c in p.chain()[:-1])
        body = f"<p class='muted'>{crumbs}</p>" if crumbs else ""
        body += f"<h1>{esc(p.name)}</h1>"
        if p.level == 0:
            body += "<p>The atlas of Varnland: its regions, and the places in them.</p>"
        else:
            body += f"<p>{esc(p.lead)}</p>"
        if p.facts:
            rows = "".join(f"<tr><th>{_FACT_LABEL[k]}</th><td>{esc(v)}</td></tr>" for k, v in p.facts.items())
            body += f"<table class='info'>{rows}</table>"
            if self.nearby:
                head = "".join(f"<th>{_FACT_LABEL[k]}</th>" for k in ("population", "founded", "elevation"))
                rows = "".join(
                    f"<tr><td>{esc(n)}</td>"
                    + "".join(f"<td>{esc(f[k])}</td>" for k in ("population", "founded", "elevation"))
                    + "</tr>"
                    for n, f in self.nearby
                )
                body += f"<h2>Nearby towns</h2><table class='info'><tr><th>Town</th>{head}</tr>{rows}</table>"
        if p.children:
            kind = LEVELS[len(LEVELS) - self.depth + p.level] if p.level < self.depth else "place"
            items = "".join(f"<li><a href='/wiki/{c.slug}'>{esc(c.name)}</a></li>" for c in p.children)
            body += f"<h2>{kind.capitalize()}s</h2><ul>{items}</ul>"
        if self.topics:
            links = "".join(
                f"<li><a href='/wiki/topic-{t.lower()}-{p.slug}'>{t} of {esc(p.name)}</a></li>"
                for t in dict.fromkeys(self.topics)
            )
            body += f"<h2>See also</h2><ul>{links}</ul>"
        return page(p.name, body, self._nav())

    def handle(self, method: str, path: str, query: dict[str, list[str]], form: dict[str, list[str]]) -> Response:
        if path in ("/", "/wiki", "/wiki/"):
            return Response.redirect("/wiki/index")
        if path == "/wiki/random":
            return Response(page("Random article", "<h1>Random article</h1><p>This page is a stub.</p>", self._nav()))
        if path.startswith("/wiki/topic-"):
            _, topic, slug = path[len("/wiki/") :].split("-", 2)
            p = self.pages.get(slug)
            if p is None:
                return Response(page("Not found", "<h1>Not found</h1>", self._nav()), status=404)
            text = f"The {topic} of {esc(p.name)} is described in many old books. This article is a stub."
            return Response(
                page(
                    f"{topic.capitalize()} of {p.name}",
                    f"<h1>{topic.capitalize()} of {esc(p.name)}</h1><p>{text}</p>",
                    self._nav(),
                )
            )
        if path.startswith("/wiki/"):
            p = self.pages.get(path[len("/wiki/") :])
            if p is None:
                return Response(page("Not found", "<h1>Not found</h1>", self._nav()), status=404)
            return Response(self._article(p))
        return Response(page("Not found", "<h1>Not found</h1>", self._nav()), status=404)

    start_path = "/wiki/index"

    # ----- verdict -----------------------------------------------------------------------------------
    def answer(self, text: str) -> Outcome | str:
        if not text.strip():
            return 'the answer is empty; write it inside answer("...")'
        ok = _norm(text) == _norm(self.value)
        return Outcome(
            done=True,
            success=ok,
            reward=float(ok),
            progress=float(ok),
            message="" if ok else f"The answer was {self.value}.",
        )

    # ----- scripted solver ---------------------------------------------------------------------------
    def oracle(self, nodes: list[Node], url: str, state: dict[str, Any]) -> str:
        slug = url.rstrip("/").rsplit("/", 1)[-1]
        if slug == self.target.slug:
            label = need(find_node(nodes, "th", _FACT_LABEL[self.fact]), "the fact's row")
            value = need(find_node(nodes, "td", after=nodes.index(label)), "the fact's value")
            return format_action("answer", value.name)
        here = self.pages.get(slug)
        on_path = here is self.root or here in self.path
        if not on_path:
            return "go_back()"
        nxt = self.path[0] if here is self.root else self.path[self.path.index(here) + 1]
        link = find_node(nodes, "link", nxt.name)
        if link is None:
            raise OracleStuck(f"no link to {nxt.name}")
        return format_action("click", link.id)
