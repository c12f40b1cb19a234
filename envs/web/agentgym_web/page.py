"""The text view of a page: one line per element, each with an id stable across steps.

A script run in the page walks the DOM from ``<body>`` and writes one line per visible
element that has something to say: a control (link, button, text box, check box, radio
button, drop-down, text area, slider, an ARIA widget), or text of its own. Containers
with no text of their own are left out and their children lifted, so the view stays
compact. A line reads::

    [12] textbox "First name" value="Ana" focused
    [13] checkbox "Subscribe" checked
    [14] select "Country" value="Peru" options=["Chile", "Peru", "Spain"]
    [15] button "Submit"
    [16] span "Some text of its own"

Leading spaces give the nesting (one per level of listed ancestors). Before reading, the
script lets the page finish what the last action started (jQuery animations, a page the
generated sites are fetching), for up to 1.5 s. Ids are kept in a
``WeakMap`` inside the page, not in the DOM, so the page's own DOM code never meets them;
an element keeps its id for as long as it lives, new elements get new numbers, and
after a navigation numbering continues from the highest id of the episode, so an id
from an old page never names an element of the new one.

:func:`parse_view` turns the text back into :class:`Node` records (oracles and tests read
the observation through it, never the DOM).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

SNAPSHOT_JS = r"""
async (opts) => {
  // First let the page finish what the last action started: jQuery animations, and pages
  // the generated sites are fetching (window.__agentgymBusy), for up to ~1.5 s.
  for (let i = 0; i < 75; i++) {
    const busy = window.__agentgymBusy || (window.jQuery && jQuery.timers && jQuery.timers.length);
    if (!busy) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const maxText = opts.maxText || 120;
  const maxValue = opts.maxValue || 200;
  const maxNodes = opts.maxNodes || 300;
  const skipIds = new Set(opts.skipIds || []);
  const W = window;
  if (!W.__agentgymIds) {
    W.__agentgymIds = new WeakMap();
    W.__agentgymEls = new Map();
    W.__agentgymNext = Math.max(1, opts.start || 1);
  }
  const ids = W.__agentgymIds, els = W.__agentgymEls;
  const idOf = (el) => {
    let v = ids.get(el);
    if (v === undefined) {
      v = W.__agentgymNext++;
      ids.set(el, v);
      els.set(String(v), new WeakRef(el));
    }
    return v;
  };
  const clean = (s) => (s || '').replace(/\s+/g, ' ').trim();
  const cut = (s, n) => (s.length > n ? s.slice(0, n - 1) + '\u2026' : s);
  const q = (s, n) => JSON.stringify(cut(clean(s), n));
  const SKIP_TAGS = new Set(['SCRIPT', 'STYLE', 'NOSCRIPT', 'TEMPLATE', 'HEAD', 'META', 'LINK', 'OPTION', 'OPTGROUP', 'BR', 'CANVAS']);
  const ROLES = new Set(['button', 'link', 'checkbox', 'radio', 'tab', 'menuitem', 'option', 'combobox',
                         'textbox', 'switch', 'treeitem', 'listbox', 'slider', 'spinbutton', 'searchbox']);
  const TEXT_INPUTS = new Set(['text', 'password', 'email', 'search', 'tel', 'url', 'number', 'date',
                               'time', 'datetime-local', 'month', 'week', '']);
  const kindOf = (el, tag) => {
    if (tag === 'A') return el.hasAttribute('href') ? 'link' : null;
    if (tag === 'BUTTON') return 'button';
    if (tag === 'INPUT') {
      const t = (el.getAttribute('type') || 'text').toLowerCase();
      if (t === 'hidden') return 'hidden';
      if (['button', 'submit', 'reset', 'image'].includes(t)) return 'button';
      if (t === 'checkbox' || t === 'radio') return t;
      if (t === 'range') return 'slider';
      if (t === 'file') return 'file';
      if (t === 'color') return 'color';
      return 'textbox';
    }
    if (tag === 'SELECT') return 'select';
    if (tag === 'TEXTAREA') return 'textarea';
    const role = (el.getAttribute('role') || '').toLowerCase();
    if (ROLES.has(role)) return role === 'searchbox' ? 'textbox' : role;
    if (el.isContentEditable && !(el.parentElement && el.parentElement.isContentEditable)) return 'textbox';
    return null;
  };
  const ownText = (el) => {
    let s = '';
    for (const c of el.childNodes) if (c.nodeType === 3) s += ' ' + c.data;
    return clean(s);
  };
  const labelText = (label) => {
    let s = '';
    const walk = (n) => {
      for (const c of n.childNodes) {
        if (c.nodeType === 3) s += ' ' + c.data;
        else if (c.nodeType === 1 && !['INPUT', 'SELECT', 'TEXTAREA', 'BUTTON', 'SCRIPT', 'STYLE'].includes(c.tagName)) walk(c);
      }
    };
    walk(label);
    return clean(s);
  };
  const nameOf = (el, tag, kind) => {
    const aria = el.getAttribute('aria-label');
    if (aria) return clean(aria);
    const by = el.getAttribute('aria-labelledby');
    if (by) {
      const t = by.split(/\s+/).map((i) => document.getElementById(i)).filter(Boolean).map((n) => n.textContent).join(' ');
      if (clean(t)) return clean(t);
    }
    if (el.labels && el.labels.length) {
      const t = Array.from(el.labels).map(labelText).join(' ');
      if (clean(t)) return clean(t);
    }
    if (tag === 'INPUT' && kind === 'button') return clean(el.value || el.alt || el.title || '');
    if (kind === 'button' || kind === 'link' || (kind && !['textbox', 'select', 'textarea', 'slider', 'file', 'color'].includes(kind))) {
      let t = clean(el.innerText || el.textContent || '');
      if (!t) { const img = el.querySelector('img[alt]'); if (img) t = clean(img.alt); }
      if (!t) t = clean(el.title || '');
      return t;
    }
    return clean(el.title || '');
  };
  const lines = [];
  let count = 0;
  const vw = W.innerWidth, vh = W.innerHeight;
  const active = document.activeElement;
  const NATIVE = new Set(['A', 'BUTTON', 'INPUT', 'SELECT', 'TEXTAREA']);
  const walk = (el, depth, carry) => {
    if (skipIds.has(el.id)) return;
    const tag = el.tagName;
    if (SKIP_TAGS.has(tag)) return;
    const st = W.getComputedStyle(el);
    if (st.display === 'none') return;
    const r = el.getBoundingClientRect();
    if (r.width <= 1 && r.height <= 1 && (st.overflow === 'hidden' || st.position === 'absolute')) return;
    const shown = r.width > 0 && r.height > 0 && st.visibility === 'visible';
    const inView = r.bottom > 0 && r.right > 0 && r.top < vh && r.left < vw;
    let kind = kindOf(el, tag);
    if (kind === 'hidden') return;
    let line = null;
    let leaf = false;
    if (shown && (!opts.viewportOnly || inView)) {
      if (kind) {
        const name = nameOf(el, tag, kind);
        const parts = [kind, q(name, maxText)];
        if (kind === 'textbox' || kind === 'textarea') {
          const t = tag === 'INPUT' ? (el.type || 'text').toLowerCase() : '';
          if (t && t !== 'text') parts.push('type=' + t);
          const val = el.isContentEditable ? el.innerText : el.value;
          parts.push('value=' + JSON.stringify(cut(val || '', maxValue)));
          if (el.placeholder) parts.push('placeholder=' + q(el.placeholder, 60));
          leaf = true;
        } else if (kind === 'checkbox' || kind === 'radio' || kind === 'switch') {
          const on = tag === 'INPUT' ? el.checked : el.getAttribute('aria-checked') === 'true';
          parts.push(on ? 'checked' : 'unchecked');
          leaf = tag === 'INPUT';
        } else if (kind === 'select') {
          const opts2 = Array.from(el.options);
          const sel = opts2.filter((o) => o.selected).map((o) => clean(o.label || o.text));
          if (el.multiple) parts.push('selected=' + JSON.stringify(sel));
          else parts.push('value=' + JSON.stringify(sel[0] || ''));
          const labels = opts2.slice(0, 40).map((o) => cut(clean(o.label || o.text), 60));
          parts.push('options=' + JSON.stringify(labels));
          if (opts2.length > 40) parts.push('more_options=' + (opts2.length - 40));
          leaf = true;
        } else if (kind === 'slider') {
          parts.push('value=' + JSON.stringify(el.value), 'min=' + JSON.stringify(el.min), 'max=' + JSON.stringify(el.max));
          leaf = true;
        } else if (kind === 'button' || kind === 'link') {
          leaf = !el.querySelector('input,select,textarea,button');
          if (kind === 'link' && !name) parts.push('href=' + q(el.getAttribute('href') || '', 80));
        }
        const state = [];
        if (el.getAttribute('aria-selected') === 'true') state.push('selected');
        const ex = el.getAttribute('aria-expanded');
        if (ex === 'true') state.push('expanded');
        else if (ex === 'false') state.push('collapsed');
        if (carry && carry.el === el) state.push(...carry.attrs);
        if (!NATIVE.has(tag)) {
          // A widget wrapping one control of the same name (a tab around its link): list
          // the control only, with the widget's state.
          const inner = el.querySelectorAll('a[href],button,input:not([type=hidden]),select,textarea');
          if (inner.length === 1 && clean(inner[0].innerText || inner[0].value || '') === name) {
            for (const c of el.children) walk(c, depth, {el: inner[0], attrs: state});
            return;
          }
        }
        parts.push(...state);
        if (el.disabled) parts.push('disabled');
        if (el.readOnly && (kind === 'textbox' || kind === 'textarea')) parts.push('readonly');
        if (active === el && el !== document.body) parts.push('focused');
        line = parts.join(' ');
      } else {
        const text = (tag === 'LABEL' && el.control) ? '' : ownText(el);
        if (text) {
          line = tag.toLowerCase() + ' ' + q(text, maxText);
        } else if (tag === 'IMG' && el.alt) {
          line = 'img ' + q(el.alt, maxText);
        } else if (!el.firstElementChild && typeof el.className === 'string' && el.className.trim() &&
                   r.width >= 4 && r.height >= 4 && tag !== 'TD') {
          // An icon (a picture from CSS): its class is all a text reader can go by.
          line = tag.toLowerCase() + ' "" class=' + JSON.stringify(clean(el.className).split(' ').slice(0, 2).join(' '));
        } else if (!el.firstElementChild && el.id && r.width >= 4 && r.height >= 4 && st.cursor === 'pointer') {
          line = tag.toLowerCase() + ' "" id=' + JSON.stringify(el.id);
        } else if (el.hasAttribute('onclick') || (el.tabIndex >= 0 && el.hasAttribute('tabindex')) ||
                   (st.cursor === 'pointer' && el.parentElement && W.getComputedStyle(el.parentElement).cursor !== 'pointer')) {
          const cls = clean(typeof el.className === 'string' ? el.className : '').split(' ').slice(0, 2).join(' ');
          line = tag.toLowerCase() + ' ""' + (cls ? ' class=' + JSON.stringify(cls) : el.id ? ' id=' + JSON.stringify(el.id) : '') +
                 (el.title ? ' title=' + q(el.title, 60) : '');
        }
      }
    }
    let next = depth;
    if (line !== null) {
      count += 1;
      if (count <= maxNodes) {
        lines.push(' '.repeat(Math.min(depth, 8)) + '[' + idOf(el) + '] ' + line);
      }
      next = depth + 1;
    }
    if (leaf) return;
    for (const c of el.children) walk(c, next, carry);
    if (el.shadowRoot) for (const c of el.shadowRoot.children) walk(c, next, carry);
  };
  const root = document.body || document.documentElement;
  if (root) walk(root, 0, null);
  const se = document.scrollingElement || document.documentElement;
  const out = {
    url: location.href, title: document.title, lines: lines, count: count,
    truncated: Math.max(0, count - maxNodes), nextId: W.__agentgymNext,
    scrollY: Math.round(se ? se.scrollTop : 0), scrollHeight: Math.round(se ? se.scrollHeight : 0),
    viewHeight: vh, ready: document.readyState,
  };
  if (opts.extra) {
    try { out.extra = (new Function(opts.extra))(); } catch (e) { out.extra = {error: String(e)}; }
  }
  return out;
}
"""

#: Finds the element of an id and checks it suits the operation; returns the element, or
#: a string saying why not (no element, hidden, not a text box...).
RESOLVE_JS = r"""
([id, op]) => {
  const m = window.__agentgymEls;
  const ref = m && m.get(String(id));
  const el = ref && ref.deref();
  if (!el || !el.isConnected) return 'there is no element [' + id + '] on the page now';
  const st = window.getComputedStyle(el);
  const r = el.getBoundingClientRect();
  if (st.visibility !== 'visible' || r.width <= 0 || r.height <= 0 || !el.getClientRects().length)
    return 'element [' + id + '] is not visible now';
  const tag = el.tagName;
  const t = (el.getAttribute('type') || 'text').toLowerCase();
  const textInput = (tag === 'INPUT' && !['button', 'submit', 'reset', 'image', 'checkbox', 'radio',
                     'range', 'file', 'color', 'hidden'].includes(t)) || tag === 'TEXTAREA' || el.isContentEditable;
  const what = tag === 'INPUT' ? 'an input of type ' + t : 'a <' + tag.toLowerCase() + '>';
  if (op === 'type') {
    if (!textInput) return 'element [' + id + '] is ' + what + ', not a text field: type() needs a text box or text area';
    if (el.disabled || el.readOnly) return 'text field [' + id + '] is ' + (el.disabled ? 'disabled' : 'read-only');
  }
  if (op === 'select') {
    if (tag !== 'SELECT') return 'element [' + id + '] is ' + what + ', not a drop-down list: select() needs a <select>; click() other elements';
    if (el.disabled) return 'drop-down [' + id + '] is disabled';
  }
  if (op === 'click' || op === 'hover') {
    if (op === 'click' && el.disabled) return 'element [' + id + '] is disabled';
    // Bring it into view (scrolling its containers too), then check that a pointer at
    // its centre would reach it, as Playwright's own hit test would.
    const vw = window.innerWidth, vh = window.innerHeight;
    const probe = () => {
      let blocker = null;
      for (const q of Array.from(el.getClientRects())) {
        if (q.width <= 0 || q.height <= 0) continue;
        const x = q.left + q.width / 2, y = q.top + q.height / 2;
        if (x < 0 || y < 0 || x >= vw || y >= vh) continue;
        const hit = document.elementFromPoint(x, y);
        if (!hit || hit === el || el.contains(hit)) return null;
        if ((el.tagName === 'LABEL' && el.control === hit) || (hit.tagName === 'LABEL' && hit.control === el)) return null;
        blocker = blocker || hit;
      }
      return blocker || 'out of view';
    };
    let blocker = probe();
    if (blocker) {
      el.scrollIntoView({block: 'center', inline: 'center'});
      blocker = probe();
    }
    if (blocker === 'out of view' || blocker === document.documentElement || blocker === document.body)
      return 'element [' + id + '] cannot be reached: it is outside the visible part of the page or of its scrolled box';
    if (blocker) {
      const t = (blocker.innerText || blocker.value || '').replace(/\s+/g, ' ').trim().slice(0, 40);
      return 'element [' + id + '] is covered by another element (a <' + blocker.tagName.toLowerCase() + '>' +
             (t ? ' showing ' + JSON.stringify(t) : '') + ')';
    }
  }
  return el;
}
"""

#: Indices of the options of a <select> matching the wanted labels (or an error string).
MATCH_OPTIONS_JS = r"""
(el, wanted) => {
  const clean = (s) => (s || '').replace(/\s+/g, ' ').trim();
  const opts = Array.from(el.options);
  const out = [];
  for (const w of wanted) {
    const c = clean(w);
    let i = opts.findIndex((o) => clean(o.label || o.text) === c);
    if (i < 0) i = opts.findIndex((o) => clean(o.label || o.text).toLowerCase() === c.toLowerCase());
    if (i < 0) i = opts.findIndex((o) => o.value === w);
    if (i < 0) {
      const names = opts.slice(0, 30).map((o) => JSON.stringify(clean(o.label || o.text))).join(', ');
      return 'the drop-down has no option ' + JSON.stringify(w) + '; its options: ' + names;
    }
    if (opts[i].disabled) return 'option ' + JSON.stringify(w) + ' is disabled';
    out.push(i);
  }
  if (out.length > 1 && !el.multiple) return 'this drop-down takes one option, not ' + out.length;
  return out;
}
"""

SCROLL_JS = r"""
([id, dir, frac]) => {
  let el = null;
  if (id !== null) {
    const ref = window.__agentgymEls && window.__agentgymEls.get(String(id));
    el = ref && ref.deref();
    if (!el || !el.isConnected) return 'there is no element [' + id + '] on the page now';
  }
  const target = el || document.scrollingElement || document.documentElement;
  const h = el ? el.clientHeight : window.innerHeight;
  const w = el ? el.clientWidth : window.innerWidth;
  const dx = dir === 'left' ? -w * frac : dir === 'right' ? w * frac : 0;
  const dy = dir === 'up' ? -h * frac : dir === 'down' ? h * frac : 0;
  const before = [target.scrollLeft, target.scrollTop];
  if (el) el.scrollBy(dx, dy); else window.scrollBy(dx, dy);
  const moved = target.scrollLeft !== before[0] || target.scrollTop !== before[1];
  return moved ? null : 'the ' + (el ? 'element' : 'page') + ' cannot scroll further ' + dir;
}
"""


@dataclass
class Node:
    """One line of the text view."""

    id: int
    kind: str
    name: str
    depth: int
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def checked(self) -> bool | None:
        if "checked" in self.attrs:
            return True
        if "unchecked" in self.attrs:
            return False
        return None

    @property
    def value(self) -> Any:
        return self.attrs.get("value")


_LINE = re.compile(r'^( *)\[(\d+)\] (\S+) ("(?:[^"\\]|\\.)*")(.*)$')
_KEY = re.compile(r"[a-z_-]+")
_DECODER = json.JSONDecoder()


def _parse_attrs(rest: str) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    pos, n = 0, len(rest)
    while pos < n:
        while pos < n and rest[pos] == " ":
            pos += 1
        m = _KEY.match(rest, pos)
        if not m:
            break
        key, pos = m.group(), m.end()
        if pos < n and rest[pos] == "=":
            pos += 1
            if pos < n and rest[pos] in '"[':
                try:
                    val, pos = _DECODER.raw_decode(rest, pos)
                except ValueError:
                    break
            else:
                end = rest.find(" ", pos)
                end = n if end < 0 else end
                val, pos = rest[pos:end], end
            attrs[key] = val
        else:
            attrs[key] = True
    return attrs


def parse_view(text: str) -> list[Node]:
    """The element lines of an observation (or of a view's ``lines``) as :class:`Node` s."""
    nodes = []
    for raw in text.splitlines():
        m = _LINE.match(raw)
        if not m:
            continue
        indent, ident, kind, name, rest = m.groups()
        try:
            name = json.loads(name)
        except ValueError:  # not a line the view wrote (text that only looks like one)
            continue
        nodes.append(Node(int(ident), kind, name, len(indent), _parse_attrs(rest)))
    return nodes


class OracleStuck(RuntimeError):
    """A scripted solver (an env's ``oracle()``) does not know what to do on this page."""


def need(n: Node | None, what: str) -> Node:
    """``n``, or :class:`OracleStuck` naming ``what`` the solver looked for in the view."""
    if n is None:
        raise OracleStuck(f"cannot find {what} on the page")
    return n


def render_view(snap: dict[str, Any], max_chars: int) -> str:
    """The page part of an observation from a snapshot: element lines, then scroll state."""
    lines = list(snap.get("lines", []))
    if snap.get("truncated"):
        lines.append(f"... {snap['truncated']} more elements not shown")
    if not lines:
        lines.append("(the page shows nothing)")
    body = "\n".join(lines)
    if len(body) > max_chars:
        cut = body.rfind("\n", 0, max_chars)
        body = body[: cut if cut > 0 else max_chars] + "\n... (the rest of the page is cut)"
    height, view, y = snap.get("scrollHeight", 0), snap.get("viewHeight", 0), snap.get("scrollY", 0)
    if height > view + 4 and view > 0:
        below = max(0, height - view - y)
        body += f"\n(scrolled {y}px from the top; {below}px more below)"
    return body
