"""The browser pool: outside addresses blocked and counted, contexts isolated and closed,
a killed or frozen browser relaunched with its episodes replayed (or dropped, counted).

Skipped without Playwright or a Chromium."""

from __future__ import annotations

import signal

import numpy as np
import pytest

pytest.importorskip("playwright")
pytest.importorskip("agentgym_web")

from agentgym_web.browser import browser_available  # noqa: E402

if not browser_available():
    pytest.skip("no Chromium for Playwright (python -m playwright install chromium, or apt-get install chromium)",
                allow_module_level=True)

from agentgym_web.batch import play, reset_many, step_many  # noqa: E402
from agentgym_web.browser import get_pool  # noqa: E402
from agentgym_web.env import EpisodeDropped  # noqa: E402
from agentgym_web.page import parse_view  # noqa: E402

import agentgym  # noqa: E402
from agentgym import TaskSpec  # noqa: E402

LEAKY_HTML = """<html><head><title>Leaky</title>
<link rel="prefetch" href="http://example.org/next.html">
<script src="https://cdn.example.net/lib.js"></script></head>
<body><p id="r">waiting</p>
<img src="http://example.com/pixel.png">
<iframe src="https://93.184.216.34/"></iframe>
<a href="http://example.com/away">Leave</a>
<button onclick="window.done = true">Done</button>
<script>
fetch('http://example.com/data').then(() => { r.textContent = 'fetched'; })
  .catch(() => { r.textContent = 'fetch failed'; });
try { new WebSocket('ws://example.com/socket'); } catch (e) {}
navigator.sendBeacon && navigator.sendBeacon('http://example.com/beacon', 'x');
</script></body></html>"""

STORAGE_HTML = """<html><body><p id="v"></p><button onclick="window.done = true">Ok</button><script>
localStorage.visits = String(Number(localStorage.visits || 0) + 1);
document.cookie = 'seen=' + (document.cookie.includes('seen=') ? 'again' : 'first');
document.getElementById('v').textContent = 'visits ' + localStorage.visits + ', cookie ' + document.cookie;
</script></body></html>"""


def _button(env, name):
    return next(n for n in parse_view(env.last_view) if n.kind == "button" and n.name == name)


def test_outside_requests_are_blocked_and_counted():
    pool = get_pool()
    before = pool.stats.blocked_requests
    env = agentgym.make("web/page-v0", html=LEAKY_HTML, goal="Press Done.", success_js="window.done === true")
    env.reset(seed=0)
    env.step("wait()")  # let the page's fetch settle
    assert 'p "fetch failed"' in env.last_view
    assert env.episode_stats["blocked_requests"] >= 4
    assert pool.stats.blocked_requests - before == env.episode_stats["blocked_requests"]
    blocked = " ".join(pool.stats.blocked_urls)
    for url in ("http://example.com/pixel.png", "http://example.com/data", "https://93.184.216.34/",
                "https://cdn.example.net/lib.js"):
        assert url in blocked
    # Following a link out is blocked too; the episode goes on.
    n = env.episode_stats["blocked_requests"]
    leave = next(x for x in parse_view(env.last_view) if x.kind == "link" and x.name == "Leave")
    obs = env.step(f"click({leave.id})")[0][0]["content"]
    assert env.episode_stats["blocked_requests"] > n
    assert "URL: http://example.com/away (blocked: only local pages can be opened" in obs
    env.step("go_back()")
    _, reward, term, _, info = env.step(f"click({_button(env, 'Done').id})")
    assert term and info["success"] and reward == 1.0
    env.close()


def test_episodes_never_share_a_context():
    pool = get_pool()
    open_before = pool.stats.contexts_open
    envs = [agentgym.make("web/page-v0", html=STORAGE_HTML, success_js="window.done === true") for _ in range(3)]
    for _ in range(3):
        outs = reset_many(envs, [TaskSpec({}, 0)] * 3)
        for obs, _ in outs:
            assert 'p "visits 1, cookie seen=first"' in obs[1]["content"]
        assert pool.stats.contexts_open == open_before + 3  # one per env: the old one is closed
    results = step_many(envs, [f"click({_button(e, 'Ok').id})" for e in envs])
    assert all(r[4]["success"] for r in results)
    for e in envs:
        e.close()
    assert pool.stats.contexts_open == open_before


def test_killed_browser_mid_batch_recovers():
    pool = get_pool()
    pool.ensure_started()
    s0 = pool.stats.as_dict()
    envs = [agentgym.make("web/sites-v0") for _ in range(6)]
    rng = np.random.default_rng(11)
    tasks = [envs[0].sample_train_task(rng) for _ in range(10)]
    killed = []

    def on_round(r: int) -> None:
        if r == 2:
            killed.append(pool.kill_browser(signal.SIGKILL))

    stats = play(envs, tasks, on_round=on_round)
    assert killed and killed[0] is not None
    assert len(stats.results) == 10 and all(r.success and not r.dropped for r in stats.results)
    s1 = pool.stats.as_dict()
    assert s1["relaunches"] >= s0["relaunches"] + 1 and s1["crashes"] >= s0["crashes"] + 1
    assert s1["retried_episodes"] >= s0["retried_episodes"] + 1 and s1["dropped_episodes"] == s0["dropped_episodes"]
    assert pool.browser_pid != killed[0]
    for e in envs:
        e.close()


def test_episode_dropped_when_replays_are_not_allowed():
    pool = get_pool()
    env = agentgym.make("web/wiki-v0", max_retries=0)
    env.reset(options={"task": TaskSpec({"depth": 2, "branching": 2, "distractors": 0}, 0)})
    dropped = pool.stats.dropped_episodes
    pool.kill_browser(signal.SIGKILL)
    with pytest.raises(EpisodeDropped):
        env.step(env.oracle())
    assert pool.stats.dropped_episodes == dropped + 1
    env.reset(options={"task": TaskSpec({"depth": 2, "branching": 2, "distractors": 0}, 0)})  # usable again
    assert env.step(env.oracle())[4]["error"] is None
    env.close()


def test_frozen_browser_is_detected_and_replaced():
    pool = get_pool()
    env = agentgym.make("web/wiki-v0", call_timeout=4.0)
    task = TaskSpec({"depth": 3, "branching": 2, "distractors": 1}, 4)
    env.reset(options={"task": task})
    env.step(env.oracle())
    hangs, relaunches = pool.stats.hangs, pool.stats.relaunches
    frozen = pool.kill_browser(signal.SIGSTOP)
    try:
        _, _, term, trunc, info = env.step(env.oracle())  # times out, relaunches, replays, then acts
    finally:
        pool.kill_browser(signal.SIGKILL) if pool.browser_pid == frozen else None
    assert pool.stats.hangs == hangs + 1 and pool.stats.relaunches == relaunches + 1 and pool.browser_pid != frozen
    assert info["error"] is None and env.episode_stats["retries"] == 1
    done = term or trunc
    while not done:
        _, _, term, trunc, info = env.step(env.oracle())
        done = term or trunc
    assert info["success"]
    env.close()
