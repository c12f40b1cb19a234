"""Multi-step word problems from templates.

A story starts from one amount (``a``) and applies ``steps`` changes to it, each told
by one sentence: add an amount, take one away, multiply by a small count ("three times
as many"), and, as the last step only, share equally ("among 4 friends"). Subtractions
never take away everything and divisions are exact, so the answer is a whole number
of at least 1. ``distractors`` irrelevant sentences with numbers are mixed in.

Every problem carries ``formula`` over ``quantities`` (``"(a + b) * c - d"``), the
arithmetic the story asks for, so the answer can be recomputed independently.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from agentgym_math.problem import Problem, Rand

THEMES = ("shopping", "travel", "cooking", "school")
#: Multipliers and divisors ("3 times as many", "among 4 plates") are this small.
SMALL = (2, 9)


@dataclass(frozen=True)
class Template:
    """One story: how it starts, how each kind of step is told, what it asks."""

    theme: str
    start: str
    add: tuple[str, ...]
    sub: tuple[str, ...]
    mul: tuple[str, ...]
    #: (sentence, question) pairs: sharing equally changes what the question asks.
    div: tuple[tuple[str, str], ...]
    question: str


TEMPLATES: tuple[Template, ...] = (
    Template(
        "shopping",
        "{name} has {n} dollars.",
        ("{He} earns {n} dollars washing cars.", "{His} grandmother gives {him} {n} dollars."),
        ("{He} spends {n} dollars on a new game.", "{He} pays {n} dollars for lunch."),
        (
            "After a good month, {he} has {n} times as much money as before.",
            "A lucky bet leaves {him} with {n} times as much money.",
        ),
        (
            (
                "{He} splits the money equally among {n} gift cards.",
                "How many dollars go on each gift card?",
            ),
        ),
        "How many dollars does {name} have now?",
    ),
    Template(
        "shopping",
        "A store has {n} T-shirts in stock.",
        (
            "A delivery brings {n} more T-shirts.",
            "The staff find {n} more T-shirts in the back room.",
        ),
        ("Customers buy {n} T-shirts.", "{n} T-shirts are sent back to the factory."),
        (
            "The manager restocks until there are {n} times as many T-shirts as before.",
            "A big order arrives, and now there are {n} times as many T-shirts.",
        ),
        (("The T-shirts are packed equally into {n} boxes.", "How many T-shirts go in each box?"),),
        "How many T-shirts does the store have now?",
    ),
    Template(
        "shopping",
        "At the market, {name} buys {n} apples.",
        ("{He} buys {n} more apples at another stall.",),
        (
            "{He} gives {n} apples to a neighbour.",
            "{n} of the apples are bruised, so {he} throws them away.",
        ),
        (
            "{He} goes back and buys more until {he} has {n} times as many apples.",
            "{His} aunt brings so many apples that {he} ends up with {n} times as many.",
        ),
        (
            (
                "{He} shares the apples equally among {n} friends.",
                "How many apples does each friend get?",
            ),
        ),
        "How many apples does {name} have now?",
    ),
    Template(
        "travel",
        "A train leaves the station with {n} passengers.",
        (
            "At the next stop, {n} people get on.",
            "A school group of {n} children boards the train.",
        ),
        ("At the following stop, {n} people get off.",),
        (
            "At the big city so many people board that there are {n} times as many passengers as before.",
            "For the holiday rush, the train fills up to {n} times as many passengers.",
        ),
        (
            (
                "The passengers spread out equally over {n} carriages.",
                "How many passengers are in each carriage?",
            ),
        ),
        "How many passengers are on the train now?",
    ),
    Template(
        "travel",
        "A road trip is planned to be {n} kilometers long.",
        ("A detour adds {n} kilometers.", "A visit to a lake adds another {n} kilometers."),
        (
            "A shortcut saves {n} kilometers.",
            "A closed road means they skip a stretch of {n} kilometers.",
        ),
        (
            "They decide to drive the whole route {n} times over the summer.",
            "They like it so much that they plan {n} times that distance in total.",
        ),
        (
            (
                "They split the driving equally over {n} days.",
                "How many kilometers do they drive each day?",
            ),
        ),
        "How many kilometers will they drive in total?",
    ),
    Template(
        "travel",
        "A hotel has {n} guests.",
        ("In the afternoon, {n} more guests check in.",),
        ("In the evening, {n} guests check out.", "{n} guests leave early to catch a flight."),
        (
            "During the festival the hotel fills up with {n} times as many guests.",
            "A conference brings {n} times as many guests.",
        ),
        (
            (
                "The guests are split equally into {n} tour groups.",
                "How many guests are in each tour group?",
            ),
        ),
        "How many guests are at the hotel now?",
    ),
    Template(
        "cooking",
        "{name} bakes {n} cookies.",
        ("{He} bakes another {n} cookies.", "A friend brings {n} cookies."),
        ("{He} eats {n} of the cookies.", "{n} cookies burn and are thrown away."),
        (
            "For a party, {he} keeps baking until there are {n} times as many cookies.",
            "{He} bakes more batches, ending with {n} times as many cookies.",
        ),
        (("{He} puts the cookies equally on {n} plates.", "How many cookies are on each plate?"),),
        "How many cookies does {name} have now?",
    ),
    Template(
        "cooking",
        "A bread recipe uses {n} grams of flour.",
        ("The cook adds {n} more grams for a thicker dough.",),
        ("The cook leaves out {n} grams for a lighter crust.",),
        (
            "For a big dinner, the cook makes {n} times that amount.",
            "A catering order needs {n} times as much flour.",
        ),
        (
            (
                "The dough is divided equally into {n} loaves.",
                "How many grams of flour are in each loaf?",
            ),
        ),
        "How many grams of flour are used in total?",
    ),
    Template(
        "school",
        "{name}'s class has {n} pencils.",
        ("The school sends {n} more pencils.", "Parents donate {n} pencils."),
        ("{n} pencils are lent out during a test and never come back.", "{n} pencils break."),
        (
            "A big donation leaves the class with {n} times as many pencils.",
            "After a school fair the class has {n} times as many pencils.",
        ),
        (
            (
                "The pencils are shared equally among {n} tables.",
                "How many pencils does each table get?",
            ),
        ),
        "How many pencils does the class have now?",
    ),
    Template(
        "school",
        "The school choir has {n} students.",
        ("{n} new students join.",),
        ("{n} students leave the choir.",),
        (
            "After a great concert the choir grows to {n} times its size.",
            "A music festival inspires so many students that the choir becomes {n} times as big.",
        ),
        (
            (
                "The choir is split equally into {n} sections.",
                "How many students are in each section?",
            ),
        ),
        "How many students are in the choir now?",
    ),
)

DISTRACTORS: dict[str, tuple[str, ...]] = {
    "shopping": (
        "The store opened {n} years ago.",
        "{friend} has {n} stickers at home.",
        "The parking lot has {n} spaces.",
    ),
    "travel": (
        "The station was built {n} years ago.",
        "The driver has {n} songs on a playlist.",
        "{friend} has visited {n} towns.",
    ),
    "cooking": (
        "The kitchen drawer holds {n} spoons.",
        "The oven is {n} years old.",
        "{friend} owns {n} cookbooks.",
    ),
    "school": (
        "The school has {n} windows.",
        "The library got {n} new books last year.",
        "{friend} lives {n} meters from the school.",
    ),
}

#: (name, He, he, His, his, him)
PEOPLE = (
    ("Maya", "She", "she", "Her", "her", "her"),
    ("Leo", "He", "he", "His", "his", "him"),
    ("Priya", "She", "she", "Her", "her", "her"),
    ("Omar", "He", "he", "His", "his", "him"),
    ("Sofia", "She", "she", "Her", "her", "her"),
    ("Kenji", "He", "he", "His", "his", "him"),
    ("Amara", "She", "she", "Her", "her", "her"),
    ("Lucas", "He", "he", "His", "his", "him"),
)
_BY_THEME = {t: tuple(x for x in TEMPLATES if x.theme == t) for t in THEMES}
_NAMES = "abcde"


def generate(params: dict[str, Any], rnd: Rand) -> Problem:
    """A word problem for ``params`` drawn from ``rnd``."""
    steps: int = params["steps"]
    n_distractors: int = params["distractors"]
    magnitude: int = params["magnitude"]
    theme: str = params["theme"]

    randint, random_ = rnd.randint, rnd.random
    # Amounts start at 2 so that no sentence says "1 pencils".
    lo = 2 if magnitude == 1 else 10 ** (magnitude - 1)
    hi = 10**magnitude - 1
    templates = _BY_THEME[theme]
    tpl = templates[int(random_() * len(templates))]
    i = int(random_() * len(PEOPLE))
    person = PEOPLE[i]
    friend = PEOPLE[(i + 1 + int(random_() * (len(PEOPLE) - 1))) % len(PEOPLE)][0]
    ctx = dict(zip(("name", "He", "he", "His", "his", "him"), person), friend=friend)

    total = randint(lo, hi)
    ctx["n"] = total
    sentences = [tpl.start.format_map(ctx)]
    quantities = {"a": total}
    formula = "a"
    question = tpl.question
    for step in range(steps):
        last = step == steps - 1
        op = ("add", "sub", "mul", "div")[int(random_() * (4 if last else 3))]
        if op == "div":
            divisors = [k for k in range(SMALL[0], SMALL[1] + 1) if total % k == 0]
            if not divisors:
                op = "mul"
        if op == "sub" and total < 3:
            op = "add"

        if op == "add":
            n = randint(lo, hi)
            total += n
            sentence, formula = _pick(rnd, tpl.add), f"{formula} + {{q}}"
        elif op == "sub":
            top = min(hi, total - 1)
            n = randint(min(lo, top), top)
            total -= n
            sentence, formula = _pick(rnd, tpl.sub), f"{formula} - {{q}}"
        elif op == "mul":
            n = randint(*SMALL)
            total *= n
            sentence, formula = _pick(rnd, tpl.mul), f"{_grouped(formula)} * {{q}}"
        else:
            n = divisors[int(random_() * len(divisors))]
            total //= n
            sentence, question = _pick(rnd, tpl.div)
            formula = f"{_grouped(formula)} / {{q}}"
        name = _NAMES[step + 1]
        quantities[name] = n
        formula = formula.replace("{q}", name)
        ctx["n"] = n
        sentences.append(sentence.format_map(ctx))

    for distractor in rnd.sample(DISTRACTORS[theme], n_distractors):
        ctx["n"] = randint(lo, hi)
        sentences.insert(randint(1, len(sentences)), distractor.format_map(ctx))
    sentences.append(question.format_map(ctx))
    return Problem(
        text=" ".join(sentences),
        answer=Fraction(total),
        answer_text=str(total),
        formula=formula,
        quantities=quantities,
    )


def _pick(rnd: Rand, options: tuple[Any, ...]) -> Any:
    return options[int(rnd.random() * len(options))]


def _grouped(formula: str) -> str:
    return f"({formula})" if (" + " in formula or " - " in formula) else formula
