"""Entry point of the ``agentgym.envs`` group: registers the web ids with agentgym.

agentgym imports this at start-up, so it imports nothing heavy: Playwright and the env
classes are named by string and load on the first ``make``.
"""

from __future__ import annotations

import agentgym


def register() -> None:
    agentgym.register(
        "web/page-v0",
        "agentgym_web.env:PageEnv",
        description="your own HTML page as a task (html=, goal=, success_js= or answer=)",
    )
    agentgym.register(
        "web/miniwob-v0",
        "agentgym_web.miniwob:MiniWobEnv",
        description="MiniWoB++ tasks in Chromium through a text view (parameter: task)",
    )
    for name, cls, what in (
        ("form", "FormEnv", "fill in a generated form (fields, distractors, pages)"),
        (
            "shop",
            "ShopEnv",
            "search a generated shop and buy the right product (pages, distractors, options, criterion)",
        ),
        ("wiki", "WikiEnv", "follow links in a generated encyclopedia to a fact (depth, branching, distractors)"),
        ("sites", "SitesEnv", "generated sites of every kind in one space for a teacher (kind, level, distractors)"),
    ):
        agentgym.register(f"web/{name}-v0", f"agentgym_web.sites:{cls}", description=f"Web: {what}.")
