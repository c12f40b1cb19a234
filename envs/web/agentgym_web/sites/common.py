"""Shared pieces of the generated sites: the site protocol, page chrome and made-up names.

A generated site is plain Python: :meth:`Site.handle` answers each request the browser
makes to ``http://site.localhost`` (the env's route handler calls it), keeping whatever
state the site has (a form's answers, a cart) in the object, so the verdict is computed
here and never trusted to page scripts. Everything is drawn from the episode's seeded
``numpy`` generator: the same task spec gives the same site, page for page.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from agentgym_web.env import Outcome
from agentgym_web.page import Node, OracleStuck, need  # noqa: F401 (re-exported for the sites)
from agentgym_web.server import Response


class Site:
    """A generated website: pages, a goal, a verdict and a scripted solver."""

    #: The page the episode starts on.
    start_path = "/"
    goal = ""

    def reset_state(self) -> None:
        """Forget what the agent did (a new episode on the same site, or a replay)."""

    def handle(self, method: str, path: str, query: dict[str, list[str]], form: dict[str, list[str]]) -> Response:
        raise NotImplementedError

    def outcome(self) -> Outcome | None:
        """The verdict once the task is over (after a final submit), else None."""
        return None

    def answer(self, text: str) -> Outcome | str:
        return "this task takes no answer(): act on the page instead"

    def oracle(self, nodes: list[Node], url: str, state: dict[str, Any]) -> str:
        raise NotImplementedError


def esc(s: Any) -> str:
    return html.escape(str(s), quote=True)


STYLE = """
body { font-family: sans-serif; font-size: 14px; margin: 0; }
header { background: #234; color: #fff; padding: 6px 12px; }
header a { color: #fff; margin-right: 12px; }
main { padding: 8px 14px; max-width: 720px; }
label { display: inline-block; min-width: 120px; }
.row { margin: 6px 0; }
.muted { color: #666; font-size: 12px; }
.price { font-weight: bold; margin-left: 8px; }
table.info td, table.info th { border: 1px solid #ccc; padding: 2px 6px; text-align: left; }
fieldset { margin: 6px 0; }
"""


#: The sites load like a single-page app, as many real ones do: same-site links and form
#: submissions are fetched and swapped into the page (with history entries, so the
#: back button works), which costs the browser far less than a new document each time.
#: ``window.__agentgymBusy`` is true while a page is on its way; the env waits for it.
ROUTER_JS = """
(() => {
  if (window.__agentgymRouter) return;
  window.__agentgymRouter = true;
  window.__agentgymBusy = false;
  async function load(url, init, push) {
    window.__agentgymBusy = true;
    try {
      const r = await fetch(url, init);
      const doc = new DOMParser().parseFromString(await r.text(), 'text/html');
      document.title = doc.title;
      document.body.replaceWith(document.adoptNode(doc.body));
      if (push) history.pushState({}, '', r.url);
      window.scrollTo(0, 0);
    } catch (e) {
      location.href = url;
    } finally {
      window.__agentgymBusy = false;
    }
  }
  document.addEventListener('click', (ev) => {
    const a = ev.target.closest ? ev.target.closest('a[href]') : null;
    if (!a || ev.defaultPrevented || a.target || ev.button !== 0 || ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin) return;
    if (url.hash && url.pathname === location.pathname && url.search === location.search) return;
    ev.preventDefault();
    load(url.href, {}, true);
  });
  document.addEventListener('submit', (ev) => {
    const form = ev.target;
    ev.preventDefault();
    const data = new URLSearchParams(new FormData(form, ev.submitter || null));
    const url = new URL(form.getAttribute('action') || location.href, location.href);
    if ((form.getAttribute('method') || 'get').toLowerCase() === 'post') {
      load(url.href, {method: 'POST', body: data}, true);
    } else {
      url.search = data.toString();
      load(url.href, {}, true);
    }
  });
  window.addEventListener('popstate', () => load(location.href, {}, false));
})();
"""


def page(title: str, body: str, nav: str = "") -> str:
    """A complete HTML page with the shared style (and the page-swapping router)."""
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{esc(title)}</title><style>{STYLE}</style><script>{ROUTER_JS}</script></head><body>"
        + (f"<header>{nav}</header>" if nav else "")
        + f"<main>{body}</main></body></html>"
    )


# ----- made-up words -----------------------------------------------------------------------------
FIRST_NAMES = (
    "Ana",
    "Bruno",
    "Chiara",
    "Dmitri",
    "Elif",
    "Farid",
    "Greta",
    "Hugo",
    "Ines",
    "Jonas",
    "Kaia",
    "Lior",
    "Mara",
    "Niko",
    "Oona",
    "Pavel",
    "Quinn",
    "Rosa",
    "Soren",
    "Talia",
    "Umar",
    "Vera",
    "Wim",
    "Xenia",
    "Yusuf",
    "Zora",
)
LAST_NAMES = (
    "Abara",
    "Brandt",
    "Castell",
    "Duval",
    "Eriksen",
    "Fonseca",
    "Galvin",
    "Horvat",
    "Ibsen",
    "Jaramillo",
    "Kovacs",
    "Lindqvist",
    "Moreau",
    "Novak",
    "Okafor",
    "Petrov",
    "Quispe",
    "Rinaldi",
    "Sato",
    "Toivonen",
    "Urbina",
    "Varga",
    "Weller",
    "Yilmaz",
    "Zielinski",
)
_SYL_A = (
    "Val",
    "Kor",
    "Bel",
    "Tam",
    "Ris",
    "Ost",
    "Mer",
    "Dun",
    "Fal",
    "Gor",
    "Hal",
    "Lun",
    "Nor",
    "Pel",
    "Sar",
    "Tor",
    "Ves",
    "Wen",
    "Yar",
    "Zel",
    "Ald",
    "Bren",
    "Cal",
    "Eld",
)
_SYL_B = (
    "mora",
    "dell",
    "avia",
    "ston",
    "ria",
    "heim",
    "mar",
    "wick",
    "ora",
    "vik",
    "gard",
    "enza",
    "ford",
    "ima",
    "burg",
    "lund",
    "aro",
    "esse",
    "ton",
    "ova",
)


def place_names(rng: np.random.Generator, n: int, taken: set[str] | None = None) -> list[str]:
    """``n`` distinct made-up place names (none in ``taken``, which is updated)."""
    taken = taken if taken is not None else set()
    out = []
    while len(out) < n:
        name = _SYL_A[int(rng.integers(len(_SYL_A)))] + _SYL_B[int(rng.integers(len(_SYL_B)))]
        if name not in taken:
            taken.add(name)
            out.append(name)
    return out


def person(rng: np.random.Generator) -> str:
    return f"{FIRST_NAMES[int(rng.integers(len(FIRST_NAMES)))]} {LAST_NAMES[int(rng.integers(len(LAST_NAMES)))]}"


def pick(rng: np.random.Generator, seq: Any) -> Any:
    return seq[int(rng.integers(len(seq)))]


def find_node(
    nodes: list[Node], kind: str | tuple[str, ...] | None = None, name: str | None = None, after: int = -1
) -> Node | None:
    """The first node (of a kind, with a name) listed after index ``after``."""
    kinds = (kind,) if isinstance(kind, str) else kind
    for i, n in enumerate(nodes):
        if i <= after:
            continue
        if kinds is not None and n.kind not in kinds:
            continue
        if name is not None and n.name != name:
            continue
        return n
    return None
