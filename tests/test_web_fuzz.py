"""Fuzzed actions on live pages (well over 1,000 cases): every reply gets an observation,
never an exception, whatever it holds.

Skipped without Playwright or a Chromium."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import agentgym
from agentgym import TaskSpec

pytestmark = pytest.mark.requires_browser

PAGES = {
    "/": """<html><head><title>Fuzz</title></head><body>
<h1>Everything</h1>
<label for="n">Name</label><input id="n"> <input type="date" id="d"> <input type="number" id="k">
<select id="c"><option>Red</option><option>Blue</option></select>
<select id="m" multiple><option>A</option><option>B</option><option>C</option></select>
<label><input type="checkbox">Gift</label> <input type="radio" name="r" id="r1"><label for="r1">One</label>
<textarea>text</textarea> <div contenteditable="true">edit me</div>
<button onclick="this.textContent += '!'">Grow</button> <button disabled>Off</button>
<button onclick="alert('hi'); confirm('sure?')">Dialogs</button>
<button onclick="document.body.insertAdjacentHTML('beforeend', '<p>more</p>')">Add</button>
<div style="overflow:auto;height:60px"><p>scroll box</p><p>line</p><p>line</p><p>line</p><p>end</p></div>
<form action="/two" method="post"><input name="q"><button>Post</button></form>
<a href="/two">Two</a> <a href="http://example.com/">Outside</a> <a href="#frag">Anchor</a>
<div style="position:fixed;top:0;left:0;width:40px;height:40px;background:#eee">cover</div>
<div style="height:900px"></div><p id="frag">bottom</p></body></html>""",
    "/two": "<html><body><p>Two</p><a href='/'>Home</a></body></html>",
}
KEYS = [
    "Enter",
    "Tab",
    "Escape",
    "Backspace",
    "ArrowDown",
    "PageDown",
    "End",
    "a",
    "Control+a",
    "Shift+Tab",
    "Alt+ArrowLeft",
    "F5",
    "Meta+z",
    "Bogus",
    "ctrl+",
    "+",
    "Space",
]

ids = st.integers(min_value=-2, max_value=80)
# Hypothesis leaves lone surrogates, NUL and very long strings out of st.text: add them.
odd = st.sampled_from(["\ud800", "a\x00b", "\u202eevil", "e\u0301\U0001d11e" * 600, "x" * 2001, "\\\"'", "${x}<b>"])
texts = st.text(max_size=30) | odd
calls = st.one_of(
    st.builds(lambda i: f"click({i})", ids),
    st.builds(lambda i, t: f"type({i}, {json.dumps(t)})", ids, texts | st.sampled_from(["03/04/2021", "12", "x"])),
    st.builds(lambda i, t: f"select({i}, {json.dumps(t)})", ids, texts | st.sampled_from(["Red", "blue", "A"])),
    st.builds(lambda i, a, b: f'select({i}, "{a}", "{b}")', ids, st.sampled_from("ABC"), st.sampled_from("ABC")),
    st.builds(lambda k: f"press({json.dumps(k)})", st.sampled_from(KEYS) | texts),
    st.builds(lambda d: f"scroll({json.dumps(d)})", st.sampled_from(["up", "down", "left", "right", "back"])),
    st.builds(lambda i, d: f"scroll({i}, {json.dumps(d)})", ids, st.sampled_from(["up", "down"])),
    st.builds(lambda i: f"hover({i})", ids),
    st.sampled_from(["go_back()", 'answer("x")', "wait()", "click [3]", "type [2] [hi]", "stop [x]"]),
)
garbage = st.one_of(
    st.text(max_size=200),
    st.builds(lambda a, b: a + b, texts, calls),
    st.binary(max_size=40),
    st.none(),
    st.integers(),
    st.just("x" * 20_000),
)


@pytest.fixture(scope="module")
def env():
    e = agentgym.make(
        "web/page-v0", html=PAGES, goal="Anything.", max_turns=100_000, wait_seconds=0.02, action_timeout=1.0
    )
    e.reset(options={"task": TaskSpec({}, 0)})
    yield e
    e.close()


def _check(env, action):
    obs, reward, term, trunc, info = env.step(action)
    assert isinstance(obs, list) and all(isinstance(m["content"], str) for m in obs)
    assert math.isfinite(reward) and (info["error"] is None or isinstance(info["error"], str))
    assert {"success", "reward_parts", "error", "turn"} <= set(info) and info["turn"] == env.turn
    assert reward == pytest.approx(sum(info["reward_parts"].values()))
    assert (info["error"] is None) == (info["reward_parts"]["invalid"] == 0.0)  # every error is penalised
    if term or trunc:
        env.reset(options={"task": TaskSpec({}, 0)})
    elif env.turn % 150 == 0:  # start afresh now and then, from the same page
        env.reset(options={"task": TaskSpec({}, 0)})


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(action=calls)
def test_fuzzed_calls_never_crash(env, action):
    _check(env, action)


@settings(max_examples=450, deadline=None, suppress_health_check=list(HealthCheck))
@given(action=garbage)
def test_fuzzed_garbage_never_crashes(env, action):
    _check(env, action)
