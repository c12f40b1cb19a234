"""A small generated knowledge base of people, companies and cities, queried by name.

Relations: a person works for a company, a company is based in a city, a city lies in
a country. Names are made up, so the model cannot answer from memory. A chain of depth
d follows d lookups (person -> company -> city); extra calls ask single facts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agentgym_tools.calls import Tool
from agentgym_tools.worlds.base import (
    Step,
    ToolError,
    World,
    made_up_name,
    offer,
    pick,
    schema,
    text,
)

_FIRST = (
    "Ada",
    "Bruno",
    "Chen",
    "Dara",
    "Emil",
    "Farah",
    "Goran",
    "Hana",
    "Ivo",
    "Juno",
    "Kemal",
    "Lena",
    "Mika",
    "Nadia",
    "Omar",
    "Pia",
)
_SUFFIX = ("Labs", "Works", "Systems", "Foods", "Motors", "Textiles", "Robotics", "Media")
_COUNTRIES = ("Veloria", "Narsk", "Pontavia", "Quessa", "Ombria")


def _kb(rng: np.random.Generator) -> dict[str, dict[str, dict[str, Any]]]:
    cities: dict[str, dict[str, Any]] = {}
    while len(cities) < 6:
        name = made_up_name(rng, 2) + pick(rng, ("ville", "burg", "port", "a", "holm"))
        cities[name] = {
            "name": name,
            "country": pick(rng, _COUNTRIES),
            "population": int(rng.integers(20, 2000)) * 1000,
        }
    city_names = list(cities)
    companies: dict[str, dict[str, Any]] = {}
    while len(companies) < 6:
        name = f"{made_up_name(rng, 2)} {pick(rng, _SUFFIX)}"
        companies[name] = {
            "name": name,
            "city": pick(rng, city_names),
            "founded": int(rng.integers(1900, 2020)),
            "employees": int(rng.integers(5, 5000)),
        }
    company_names = list(companies)
    people: dict[str, dict[str, Any]] = {}
    while len(people) < 8:
        name = f"{pick(rng, _FIRST)} {made_up_name(rng, 2)}"
        people[name] = {
            "name": name,
            "age": int(rng.integers(21, 70)),
            "employer": pick(rng, company_names),
            "city": pick(rng, city_names),
        }
    return {"person": people, "company": companies, "city": cities}


def _getter(kind: str, table: dict[str, dict[str, Any]]) -> Tool:
    lookup = {k.lower(): v for k, v in table.items()}

    def fn(name: str) -> dict[str, Any]:
        row = lookup.get(" ".join(name.split()).lower())
        if row is None:
            raise ToolError(f"no {kind} named {name!r}")
        return dict(row)

    return Tool(
        f"get_{kind}",
        f"Look up a {kind} by exact name; returns its record.",
        schema({"name": text(f"the {kind}'s name")}),
        fn,
    )


def generate(params: dict[str, Any], rng: np.random.Generator) -> World:
    kb = _kb(rng)
    tools = {kind: _getter(kind, table) for kind, table in kb.items()}
    depth, steps, needed = int(params["depth"]), [], set()
    person = pick(rng, list(kb["person"]))
    p = kb["person"][person]
    company = kb["company"][p["employer"]]
    city = kb["city"][company["city"]]
    # Each chain: (lookups in order, question, answer).
    if depth == 1:
        field = pick(rng, ("age", "employer"))
        chain = [("person", person)]
        question = f"What is the {'age' if field == 'age' else 'employer'} of {person}?"
        value: Any = p[field]
    elif depth == 2:
        field = pick(rng, ("city", "founded"))
        chain = [("person", person), ("company", company["name"])]
        question = (
            f"In which city is the company that {person} works for based?"
            if field == "city"
            else f"In what year was the company that {person} works for founded?"
        )
        value = company[field]
    else:
        field = pick(rng, ("population", "country"))
        chain = [("person", person), ("company", company["name"]), ("city", city["name"])]
        question = (
            f"What is the population of the city where the company that {person} works for is based?"
            if field == "population"
            else f"In which country is the company that {person} works for based?"
        )
        value = city[field]
    for level, (kind, name) in enumerate(chain):
        steps.append(Step(f"get_{kind}", {"name": name}, {"name": [name]}, level))
        needed.add(kind)
    answer = [value]
    extra_questions = []
    others = [n for n in kb["person"] if n != person]
    for i in range(int(params["extra_calls"])):
        kind = pick(rng, ("person", "company", "city"))
        if kind == "person":
            name = others[i % len(others)]
            extra_questions.append(f"how old is {name}")
            answer.append(kb["person"][name]["age"])
        elif kind == "company":
            name = pick(rng, list(kb["company"]))
            extra_questions.append(f"how many employees does {name} have")
            answer.append(kb["company"][name]["employees"])
        else:
            name = pick(rng, list(kb["city"]))
            extra_questions.append(f"in which country is {name}")
            answer.append(kb["city"][name]["country"])
        steps.append(Step(f"get_{kind}", {"name": name}, {"name": [name]}, 0))
        needed.add(kind)
    if extra_questions:
        question += " Also: " + "; and ".join(extra_questions) + "?"
    fmt = "Give the answers in the order asked, separated by commas." if extra_questions else "Give just the answer."
    near = [tools[k] for k in ("person", "company", "city") if k not in needed]
    offered = offer([tools[k] for k in sorted(needed)], near, int(params["distractors"]), rng)
    return World(question, offered, steps, answer, fmt)
