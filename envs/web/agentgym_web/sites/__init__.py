"""Generated local websites (forms, a shop, an encyclopedia), served by the pool's local HTTP server."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import numpy as np

from agentgym import Categorical, HeldOut, Integer, ParamSpace, Region, TaskSpec
from agentgym_web.env import Outcome, WebEnv
from agentgym_web.page import parse_view
from agentgym_web.server import Response
from agentgym_web.sites.common import Site

HELD_OUT_SEEDS = range(1_000_000_000, 1_000_000_000 + 1_000_000)


class SiteEnv(WebEnv):
    """Base of the generated-site envs: builds a :class:`Site` per episode and serves it.

    ``max_turns`` defaults to 15 and ``partial_credit`` to 0.0 (the share of the task done
    is then paid that much when an episode ends unsolved). See
    :class:`~agentgym_web.env.WebEnv` for the other keyword arguments.
    """

    serves_pages: ClassVar[bool] = True

    def __init__(self, max_turns: int = 15, **kwargs: Any):
        super().__init__(max_turns=max_turns, **kwargs)
        self.site: Site | None = None
        self._oracle_state: dict[str, Any] = {}

    def build_site(self, params: dict[str, Any], rng: np.random.Generator) -> Site:
        raise NotImplementedError

    def _prepare(self, params: dict[str, Any], rng: np.random.Generator) -> None:
        self.site = self.build_site(params, rng)
        self.goal = self.site.goal
        self._oracle_state = {}

    def content_key(self, task: TaskSpec) -> str:
        """The site's goal and the page it opens on, as built for ``task`` (no browser needed).

        Sites that differ only on deeper pages share a key: coarser than the content, which
        can only hold out more, never leak a held-out site into training."""
        params = dict(self.param_space.validate(task.params))
        site = self.build_site(params, np.random.default_rng(int(task.seed)))
        page = site.handle("GET", site.start_path, {}, {})
        return json.dumps([type(self).__name__, site.goal, site.start_path, page.body])

    async def _open(self, page: Any) -> None:
        self.site.reset_state()
        await page.goto(self.site_origin + self.site.start_path, wait_until="domcontentloaded")

    def _serve(self, method: str, path: str, query: dict[str, list[str]], form: dict[str, list[str]]) -> Response:
        if self.site is None:
            return Response("<h1>Not found</h1>", status=404)
        return self.site.handle(method, path, query, form)

    def _outcome(self, snap: dict[str, Any]) -> Outcome | None:
        return self.site.outcome() if self.site is not None else None

    def _answer(self, text: str) -> Outcome | str:
        return self.site.answer(text)

    def oracle(self) -> str:
        url = self._display_url(self.last_snapshot.get("url", ""))
        return self.site.oracle(parse_view(self.last_view), url, self._oracle_state)


class FormEnv(SiteEnv):
    """Fill in a generated form (see :mod:`agentgym_web.sites.form`)."""

    param_space: ClassVar[ParamSpace] = ParamSpace(
        [
            Integer("n_fields", 1, 8, description="fields the goal asks to fill"),
            Integer("distractors", 0, 6, description="fields not asked for (to leave alone) and decoy buttons/links"),
            Integer("pages", 1, 3, description="pages the form is split over (Next buttons)"),
        ]
    )
    held_out: ClassVar[HeldOut] = HeldOut(
        seeds=HELD_OUT_SEEDS, region=Region({"n_fields": [7, 8], "pages": [3]}, name="long 3-page forms")
    )

    def build_site(self, params: dict[str, Any], rng: np.random.Generator) -> Site:
        from agentgym_web.sites.form import FormSite

        return FormSite(rng, params["n_fields"], params["distractors"], params["pages"])


class ShopEnv(SiteEnv):
    """Search a generated shop and buy the right product (see :mod:`agentgym_web.sites.shop`)."""

    param_space: ClassVar[ParamSpace] = ParamSpace(
        [
            Integer("pages", 1, 4, description="pages of results the product's kind fills (5 a page)"),
            Integer("distractors", 0, 6, description="near-miss products"),
            Integer("options", 0, 2, description="0: none; 1: a size; 2: a size and a quantity"),
            Categorical(
                "criterion",
                ("name", "cheapest"),
                description="the goal names the product, or asks for the cheapest of a kind",
            ),
        ]
    )
    held_out: ClassVar[HeldOut] = HeldOut(
        seeds=HELD_OUT_SEEDS, region=Region({"criterion": ["cheapest"], "pages": [4]}, name="cheapest over 4 pages")
    )

    def build_site(self, params: dict[str, Any], rng: np.random.Generator) -> Site:
        from agentgym_web.sites.shop import ShopSite

        return ShopSite(rng, params["pages"], params["distractors"], params["options"], params["criterion"])


class WikiEnv(SiteEnv):
    """Navigate a generated encyclopedia to a fact (see :mod:`agentgym_web.sites.wiki`)."""

    param_space: ClassVar[ParamSpace] = ParamSpace(
        [
            Integer("depth", 1, 4, description="links from the front page down to the town"),
            Integer("branching", 2, 5, description="links to places on each page"),
            Integer("distractors", 0, 6, description="unrelated links per page; 2+ adds a table of nearby towns"),
        ]
    )
    held_out: ClassVar[HeldOut] = HeldOut(
        seeds=HELD_OUT_SEEDS, region=Region({"depth": [4], "branching": [5]}, name="deepest, widest")
    )

    def build_site(self, params: dict[str, Any], rng: np.random.Generator) -> Site:
        from agentgym_web.sites.wiki import WikiSite

        return WikiSite(rng, params["depth"], params["branching"], params["distractors"])


#: How ``web/sites-v0``'s ``level`` maps to each kind's own parameters.
LEVELS: dict[str, dict[int, dict[str, Any]]] = {
    "form": {1: {"n_fields": 2, "pages": 1}, 2: {"n_fields": 4, "pages": 2}, 3: {"n_fields": 6, "pages": 3}},
    "shop": {
        1: {"pages": 1, "options": 0, "criterion": "name"},
        2: {"pages": 2, "options": 1, "criterion": "name"},
        3: {"pages": 3, "options": 2, "criterion": "cheapest"},
    },
    "wiki": {1: {"depth": 2, "branching": 3}, 2: {"depth": 3, "branching": 4}, 3: {"depth": 4, "branching": 5}},
}


class SitesEnv(SiteEnv):
    """All three kinds of generated site in one space, for a teacher: kind, level, distractors."""

    param_space: ClassVar[ParamSpace] = ParamSpace(
        [
            Categorical(
                "kind", ("form", "shop", "wiki"), description="form to fill, shop to buy from, wiki to find a fact in"
            ),
            Integer(
                "level",
                1,
                3,
                description="difficulty within the kind (fields and pages; result pages and options; depth and "
                "branching)",
            ),
            Integer("distractors", 0, 6, description="distractor fields, products or links"),
        ]
    )
    held_out: ClassVar[HeldOut] = HeldOut(
        seeds=HELD_OUT_SEEDS, region=Region({"kind": ["wiki"], "level": [3]}, name="wiki, level 3")
    )

    def build_site(self, params: dict[str, Any], rng: np.random.Generator) -> Site:
        kind = params["kind"]
        own = {**LEVELS[kind][params["level"]], "distractors": params["distractors"]}
        cls = {"form": FormEnv, "shop": ShopEnv, "wiki": WikiEnv}[kind]
        return cls.build_site(self, own, rng)
