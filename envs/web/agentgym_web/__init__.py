"""agentgym web environments: real pages in Chromium through Playwright.

Importing this package is cheap: the browser machinery loads on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BrowserPool", "get_pool", "find_browser", "PageEnv", "WebEnv", "step_many", "reset_many", "parse_view"]

_LAZY = {
    "BrowserPool": "agentgym_web.browser",
    "get_pool": "agentgym_web.browser",
    "find_browser": "agentgym_web.browser",
    "PageEnv": "agentgym_web.env",
    "WebEnv": "agentgym_web.env",
    "step_many": "agentgym_web.batch",
    "reset_many": "agentgym_web.batch",
    "parse_view": "agentgym_web.page",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'agentgym_web' has no attribute {name!r}")
