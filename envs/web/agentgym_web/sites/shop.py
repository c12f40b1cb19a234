"""A shop: search a product list, pick the right product, set its options, check out.

Parameters: ``pages`` (pages of results the product's kind fills, 5 products a page),
``distractors`` (near misses: with ``criterion=name``, products that share all but one
word of the target's name; with ``cheapest``, products of the same kind only a few cents
dearer), ``options`` (0: none; 1: a size to choose; 2: a size and a quantity to set) and
``criterion``: ``name`` (the goal names the product) or ``cheapest`` (the goal asks for
the cheapest product of a kind: the agent must compare prices across the result pages).

Pages: ``/`` (search box and category links), ``/search?q=...&page=N`` (every product
whose name holds all the query's words), ``/category/<item>?page=N``, ``/product/<id>``
(options and "Add to cart"), ``/cart`` (items, Remove, Checkout). Checking out ends the
episode: solved when the cart holds exactly the target, with the asked options. Progress:
0.5 for the right product in the cart, plus 0.5 when nothing else is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, urlsplit

import numpy as np

from agentgym_web.actions import format_action
from agentgym_web.env import Outcome
from agentgym_web.page import Node
from agentgym_web.sites.common import OracleStuck, Response, Site, esc, find_node, need, page, pick

ITEMS = ("Scarf", "Hat", "Mug", "Lamp", "Backpack", "Notebook", "Jacket", "Kettle", "Blanket", "Umbrella")
PLURALS = {
    "Scarf": "Scarves",
    "Hat": "Hats",
    "Mug": "Mugs",
    "Lamp": "Lamps",
    "Backpack": "Backpacks",
    "Notebook": "Notebooks",
    "Jacket": "Jackets",
    "Kettle": "Kettles",
    "Blanket": "Blankets",
    "Umbrella": "Umbrellas",
}
COLORS = ("Red", "Blue", "Green", "Black", "White", "Grey", "Yellow", "Purple", "Orange", "Teal")
MATERIALS = ("Wool", "Cotton", "Leather", "Steel", "Ceramic", "Bamboo", "Linen", "Canvas")
SIZES = ("S", "M", "L", "XL")
PAGE_SIZE = 5


@dataclass
class Product:
    pid: int
    color: str
    material: str
    item: str
    price: int  # cents

    @property
    def name(self) -> str:
        return f"{self.color} {self.material} {self.item}"

    @property
    def price_text(self) -> str:
        return f"${self.price // 100}.{self.price % 100:02d}"


class ShopSite(Site):
    """A shop whose target product must be found and bought."""

    def __init__(self, rng: np.random.Generator, pages: int, distractors: int, options: int, criterion: str):
        self.options = options
        self.criterion = criterion
        item = pick(rng, ITEMS)
        material = pick(rng, MATERIALS)
        products: list[Product] = []
        used: set[tuple[str, str, str]] = set()

        def add(color: str, mat: str, it: str, price: int) -> Product | None:
            if (color, mat, it) in used:
                return None
            used.add((color, mat, it))
            p = Product(len(products) + 1, color, mat, it, price)
            products.append(p)
            return p

        def price(lo: int = 800, hi: int = 9000) -> int:
            return int(rng.integers(lo, hi)) // 10 * 10 + 9

        # The category listing: pages * PAGE_SIZE products of the item (one is the target).
        n_cat = pages * PAGE_SIZE
        if criterion == "cheapest":
            # The target is the cheapest of its kind; distractors cost a few cents more.
            base = price(1500, 4000)
            target = add(pick(rng, COLORS), material, item, base)
            for _ in range(max(0, distractors)):
                add(pick(rng, COLORS), pick(rng, MATERIALS), item, base + 10 * int(rng.integers(1, 30)))
        else:
            target = add(pick(rng, COLORS), material, item, price())
            for _ in range(max(0, distractors)):  # near misses: one word changed
                which = int(rng.integers(3))
                if which == 0:
                    add(pick(rng, [c for c in COLORS if c != target.color]), material, item, price())
                elif which == 1:
                    add(target.color, pick(rng, [m for m in MATERIALS if m != material]), item, price())
                else:
                    add(target.color, material, pick(rng, [i for i in ITEMS if i != item]), price())
        floor = target.price + 400 if criterion == "cheapest" else 800
        tries = 0
        while sum(p.item == item for p in products) < n_cat and tries < 500:
            tries += 1
            add(pick(rng, COLORS), pick(rng, MATERIALS), item, price(floor, 9900))
        for _ in range(12):  # other departments
            add(pick(rng, COLORS), pick(rng, MATERIALS), pick(rng, [i for i in ITEMS if i != item]), price(200, 9900))
        order = rng.permutation(len(products))
        self.products = [products[int(i)] for i in order]  # the shop's listing order
        self.by_id = {p.pid: p for p in self.products}
        self.target = target
        self.size = pick(rng, SIZES) if options >= 1 else None
        self.quantity = int(rng.integers(2, 5)) if options >= 2 else 1
        extra = ""
        if self.size:
            extra += f" in size {self.size}"
        if options >= 2:
            extra += f", quantity {self.quantity}"
        if criterion == "cheapest":
            what = f"the cheapest {item.lower()} in the shop"
        else:
            what = f'the "{target.name}"'
        self.goal = f"Buy {what}{extra}. Add it to the cart and check out; the cart must hold nothing else."
        self.reset_state()

    # ----- state -------------------------------------------------------------------------------
    def reset_state(self) -> None:
        self.cart: list[tuple[int, str | None, int]] = []
        self.ordered: list[tuple[int, str | None, int]] | None = None

    # ----- pages -------------------------------------------------------------------------------
    def _nav(self) -> str:
        return f"<a href='/'>Home</a><a href='/cart'>Cart ({len(self.cart)})</a>"

    def _search_box(self, q: str = "") -> str:
        return (
            "<form method='get' action='/search'><label for='q'>Search products</label>"
            f"<input id='q' name='q' type='search' value='{esc(q)}'> <button type='submit'>Search</button></form>"
        )

    def _listing(self, title: str, items: list[Product], pg: int, base: str) -> str:
        n_pages = max(1, -(-len(items) // PAGE_SIZE))
        pg = min(max(1, pg), n_pages)
        shown = items[(pg - 1) * PAGE_SIZE : pg * PAGE_SIZE]
        rows = (
            "".join(
                f"<li><a href='/product/{p.pid}'>{esc(p.name)}</a><span class='price'>{p.price_text}</span></li>"
                for p in shown
            )
            or "<li>No products found.</li>"
        )
        sep = "&" if "?" in base else "?"
        links = []
        if pg > 1:
            links.append(f"<a href='{base}{sep}page={pg - 1}'>Previous</a>")
        for k in range(1, n_pages + 1):
            links.append(f"<span>{k}</span>" if k == pg else f"<a href='{base}{sep}page={k}'>{k}</a>")
        if pg < n_pages:
            links.append(f"<a href='{base}{sep}page={pg + 1}'>Next</a>")
        pager = f"<p class='muted'>Page {pg} of {n_pages}</p><nav>{' '.join(links)}</nav>" if n_pages > 1 else ""
        body = f"{self._search_box()}<h1>{esc(title)}</h1><ul>{rows}</ul>{pager}"
        return page(title, body, self._nav())

    def _matches(self, q: str) -> list[Product]:
        words = [w for w in q.lower().split() if w]
        out = []
        for p in self.products:
            name = f"{p.name} {PLURALS[p.item]}".lower()
            if all(w in name for w in words):
                out.append(p)
        return out

    def handle(self, method: str, path: str, query: dict[str, list[str]], form: dict[str, list[str]]) -> Response:
        pg = _int(query.get("page", ["1"])[0], 1)
        if path == "/":
            cats = "".join(f"<li><a href='/category/{i.lower()}'>{PLURALS[i]}</a></li>" for i in ITEMS)
            body = f"<h1>Welcome to the shop</h1>{self._search_box()}<h2>Departments</h2><ul>{cats}</ul>"
            return Response(page("Shop", body, self._nav()))
        if path == "/search":
            q = query.get("q", [""])[0]
            return Response(
                self._listing(f"Results for \u201c{q}\u201d", self._matches(q), pg, f"/search?q={quote_plus(q)}")
            )
        if path.startswith("/category/"):
            item = path.split("/")[2].capitalize()
            if item not in ITEMS:
                return Response(page("Not found", "<h1>Not found</h1>", self._nav()), status=404)
            return Response(self._listing(PLURALS[item], [p for p in self.products if p.item == item], pg, path))
        if path.startswith("/product/"):
            p = self.by_id.get(_int(path.split("/")[2], -1))
            if p is None:
                return Response(page("Not found", "<h1>Not found</h1>", self._nav()), status=404)
            opts = ""
            if self.options >= 1:
                sizes = "".join(f"<option>{s}</option>" for s in ("Choose a size", *SIZES))
                opts += (
                    f"<div class='row'><label for='size'>Size</label>"
                    f"<select id='size' name='size'>{sizes}</select></div>"
                )
            if self.options >= 2:
                opts += (
                    "<div class='row'><label for='qty'>Quantity</label>"
                    "<input id='qty' name='qty' type='number' value='1' min='1' max='9'></div>"
                )
            body = (
                f"<h1>{esc(p.name)}</h1><p class='price'>{p.price_text}</p>"
                f"<p>A {p.color.lower()} {p.item.lower()} made of {p.material.lower()}.</p>"
                f"<form method='post' action='/cart/add'><input type='hidden' name='pid' value='{p.pid}'>"
                f"{opts}<button type='submit'>Add to cart</button></form>"
            )
            return Response(page(p.name, body, self._nav()))
        if path == "/cart/add" and method == "POST":
            pid = _int(form.get("pid", [""])[0], -1)
            if pid in self.by_id:
                size = form.get("size", [None])[0] if self.options >= 1 else None
                if size == "Choose a size":
                    return Response(
                        page(
                            "Choose a size",
                            f"<h1>Choose a size first</h1><a href='/product/{pid}'>Back to the product</a>",
                            self._nav(),
                        )
                    )
                qty = max(1, min(9, _int(form.get("qty", ["1"])[0], 1)))
                self.cart.append((pid, size, qty))
            return Response.redirect("/cart")
        if path == "/cart/remove" and method == "POST":
            i = _int(form.get("line", [""])[0], -1)
            if 0 <= i < len(self.cart):
                self.cart.pop(i)
            return Response.redirect("/cart")
        if path == "/cart":
            rows = ""
            for i, (pid, size, qty) in enumerate(self.cart):
                p = self.by_id[pid]
                desc = p.name + (f", size {size}" if size else "") + f", quantity {qty}"
                rows += (
                    f"<li><span>{esc(desc)}</span> <form method='post' action='/cart/remove' style='display:inline'>"
                    f"<input type='hidden' name='line' value='{i}'><button type='submit'>Remove</button></form></li>"
                )
            body = (
                "<h1>Your cart</h1>"
                + (f"<ul>{rows}</ul>" if rows else "<p>The cart is empty.</p>")
                + "<form method='post' action='/checkout'><button type='submit'>Checkout</button></form>"
                + "<a href='/'>Continue shopping</a>"
            )
            return Response(page("Cart", body, self._nav()))
        if path == "/checkout" and method == "POST":
            self.ordered = list(self.cart)
            return Response(page("Order placed", "<h1>Thank you for your order!</h1>"))
        return Response(page("Not found", "<h1>Not found</h1>", self._nav()), status=404)

    # ----- verdict ----------------------------------------------------------------------------------
    def outcome(self) -> Outcome | None:
        if self.ordered is None:
            return None
        want = (self.target.pid, self.size, self.quantity)
        has_target = any(pid == self.target.pid for pid, _, _ in self.ordered)
        ok = self.ordered == [want]
        progress = 1.0 if ok else 0.5 * has_target
        if ok:
            msg = ""
        elif not self.ordered:
            msg = "The cart was empty."
        else:
            msg = (
                "The order held: "
                + "; ".join(
                    self.by_id[pid].name + (f" (size {s})" if s else "") + f" x{q}" for pid, s, q in self.ordered
                )
                + "."
            )
        return Outcome(done=True, success=ok, reward=float(ok), progress=progress, message=msg)

    # ----- scripted solver ----------------------------------------------------------------------------
    def oracle(self, nodes: list[Node], url: str, state: dict[str, Any]) -> str:
        parts = urlsplit(url)
        path = parts.path
        t = self.target
        if path == "/cart":
            if self.cart == [(t.pid, self.size, self.quantity)]:
                return format_action("click", need(find_node(nodes, "button", "Checkout"), "Checkout").id)
            if self.cart:
                return format_action("click", need(find_node(nodes, "button", "Remove"), "Remove").id)
            return format_action("click", need(find_node(nodes, "link", "Home"), "Home").id)
        if path == f"/product/{t.pid}":
            if self.size:
                sel = need(find_node(nodes, "select", "Size"), "the size list")
                if sel.value != self.size:
                    return format_action("select", sel.id, self.size)
            if self.options >= 2:
                qty = need(find_node(nodes, "textbox", "Quantity"), "the quantity box")
                if qty.value != str(self.quantity):
                    return format_action("type", qty.id, str(self.quantity))
            return format_action("click", need(find_node(nodes, "button", "Add to cart"), "Add to cart").id)
        if path in ("/search",) or path.startswith("/category/"):
            if self.criterion == "name":
                link = find_node(nodes, "link", t.name)
                if link is not None:
                    return format_action("click", link.id)
                nxt = find_node(nodes, "link", "Next")
                if nxt is not None:
                    return format_action("click", nxt.id)
                raise OracleStuck(f"{t.name} is not in the results")
            # Cheapest: read every page of the results, then go to the best one.
            seen = state.setdefault("seen", {})
            current = next(
                (int(n.name.split()[1]) for n in nodes if n.name.startswith("Page ") and " of " in n.name), 1
            )
            for i, n in enumerate(nodes):
                if n.kind == "link" and i + 1 < len(nodes) and nodes[i + 1].name.startswith("$"):
                    cents = int(round(float(nodes[i + 1].name[1:]) * 100))
                    seen[n.name] = (cents, current)
            nxt = find_node(nodes, "link", "Next")
            if nxt is not None and not state.get("scanned"):
                return format_action("click", nxt.id)
            state["scanned"] = True
            wanted = f" {t.item}"
            best = min(((c, pg, name) for name, (c, pg) in seen.items() if name.endswith(wanted)), default=None)
            if best is None:
                raise OracleStuck(f"no {wanted} in the results")
            if best[1] == current:
                return format_action("click", need(find_node(nodes, "link", best[2]), best[2]).id)
            return format_action("click", need(find_node(nodes, "link", str(best[1])), f"page {best[1]}").id)
        # The home page (or anywhere else): search.
        box = need(find_node(nodes, "textbox", "Search products"), "the search box")
        query = t.name if self.criterion == "name" else t.item
        if box.value != query:
            return format_action("type", box.id, query)
        return format_action("click", need(find_node(nodes, "button", "Search"), "Search").id)


def _int(s: Any, default: int) -> int:
    try:
        return int(str(s).strip())
    except (TypeError, ValueError):
        return default
