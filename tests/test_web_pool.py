"""The browser pool: outside addresses blocked and counted, contexts isolated and closed,
a killed or frozen browser relaunched with its episodes replayed (or dropped, counted).

Skipped without Playwright or a Chromium."""

from __future__ import annotations

import signal
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlencode

import numpy as np
import pytest
from agentgym_web.batch import play, reset_many, step_many
from agentgym_web.browser import BrowserPool, classify_url, get_pool
from agentgym_web.env import EpisodeDropped
from agentgym_web.page import parse_view

import agentgym
from agentgym import TaskSpec

pytestmark = pytest.mark.requires_browser

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


def _browser_counts(pool):
    """(contexts, pages) the browser itself has open: the pool's count must match it."""

    async def count():
        contexts = pool._browser.contexts
        return len(contexts), sum(len(c.pages) for c in contexts)

    return pool.run(count())


def test_outside_requests_are_blocked_and_counted():
    pool = get_pool()
    before = pool.stats.blocked_requests
    env = agentgym.make(
        "web/page-v0", html=LEAKY_HTML, goal="Press Done.", success_js="window.done === true", max_turns=30
    )
    env.reset(seed=0)
    for _ in range(10):  # let the page's fetch settle (no fixed time: a loaded machine is slow)
        if 'p "fetch failed"' in env.last_view:
            break
        env.step("wait()")
    assert 'p "fetch failed"' in env.last_view
    assert env.episode_stats["blocked_requests"] >= 4
    assert pool.stats.blocked_requests - before == env.episode_stats["blocked_requests"]
    blocked = " ".join(pool.stats.blocked_urls)
    for url in (
        "http://example.com/pixel.png",
        "http://example.com/data",
        "https://93.184.216.34/",
        "https://cdn.example.net/lib.js",
    ):
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


class _Listener:
    """An HTTP server on every interface (and on [::1] when it can) that records the paths it is asked for."""

    def __init__(self):
        self.paths: list[str] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                listener.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.servers = [ThreadingHTTPServer(("0.0.0.0", 0), Handler)]
        self.port = self.servers[0].server_address[1]

        class V6(ThreadingHTTPServer):
            address_family = socket.AF_INET6

        try:
            self.servers.append(V6(("::1", self.port), Handler))
        except OSError:
            pass
        for srv in self.servers:
            threading.Thread(target=srv.serve_forever, daemon=True).start()

    def close(self):
        for srv in self.servers:
            srv.shutdown()
            srv.server_close()


def _visit(pool, urls, via_redirect, **context_kwargs):
    """Open each URL in a fresh page (directly, or as the second leg of a redirect from the site
    server, which Playwright does not route); return the URLs that were blocked and counted."""
    from agentgym_web.server import Response

    token = pool.site_server.register(lambda method, path, query, form: Response.redirect(query["to"][0]))
    blocked: list[str] = []

    async def go():
        ctx, _ = await pool.new_context(
            site_token=token if via_redirect else None, on_blocked=blocked.append, **context_kwargs
        )
        try:
            for url in urls:
                page = await ctx.new_page()
                target = f"{pool.site_server.origin}/go?{urlencode({'to': url})}" if via_redirect else url
                try:
                    await page.goto(target, timeout=5000)
                except Exception:  # a refused or blocked load: what matters is who was reached
                    pass
                await page.close()
        finally:
            await pool.close_context(ctx)

    pool.run(go(), timeout=120)
    pool.site_server.unregister(token)
    return blocked


def test_local_means_the_same_to_the_rule_and_to_the_browser():
    """Every loopback form reaches a server on this machine; 0.0.0.0 (the same machine by
    another name), a user name of localhost in front of another host, and this machine's
    other interfaces do not, whether the page asks directly or a redirect takes it there.

    This is the browser's own layer (its flags and the router), so it runs on the host's
    network; by default the browser has none but its own loopback (tests/security)."""
    import psutil

    pool = BrowserPool(network="host")
    srv = _Listener()
    p = srv.port
    local = {
        "loop": f"http://127.0.0.1:{p}/loop",
        "name": f"http://localhost:{p}/name",
        "sub": f"http://shop.localhost:{p}/sub",
    }
    if len(srv.servers) == 2:
        local["v6"] = f"http://[::1]:{p}/v6"
    outside = {
        "loop2": f"http://127.0.0.2:{p}/loop2",
        "zero": f"http://0.0.0.0:{p}/zero",
        "userinfo": f"http://localhost:{p}@0.0.0.0:{p}/userinfo",
    }
    lan = [
        a.address
        for addrs in psutil.net_if_addrs().values()
        for a in addrs
        if a.family == socket.AF_INET and not a.address.startswith("127.")
    ]
    if lan:
        outside["lan"] = f"http://{lan[0]}:{p}/lan"
    try:
        for via_redirect in (False, True):
            srv.paths.clear()
            blocked = _visit(pool, [*local.values(), *outside.values()], via_redirect)
            reached = {name for name in [*local, *outside] if f"/{name}" in srv.paths}  # (not /favicon.ico)
            assert reached == set(local), (via_redirect, reached)
            if not via_redirect:  # the router saw these and counted them
                assert set(blocked) == {u for u in outside.values()} and all(
                    classify_url(u) == "blocked" for u in blocked
                )
    finally:
        pool.close()
        srv.close()


def test_allowed_hosts_are_reachable():
    srv = _Listener()
    with pytest.raises(ValueError, match="allow_hosts needs network='host'"):
        BrowserPool(allow_hosts=("0.0.0.0",))
    pool = BrowserPool(allow_hosts=("0.0.0.0",), network="host")
    try:
        blocked = _visit(pool, [f"http://0.0.0.0:{srv.port}/allowed"], via_redirect=False)
        assert "/allowed" in srv.paths and blocked == []
    finally:
        pool.close()
        srv.close()


def test_files_outside_the_roots_are_blocked():
    import shutil
    import tempfile
    from pathlib import Path

    # A folder the browser's unprivileged user (nobody, when tests run as root) can read.
    tmp_path = Path(tempfile.mkdtemp(prefix="agentgym-web-test-"))
    tmp_path.chmod(0o755)
    try:
        _files_outside_the_roots_are_blocked(tmp_path)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _files_outside_the_roots_are_blocked(tmp_path):
    root, other = tmp_path / "root", tmp_path / "other"
    root.mkdir(), other.mkdir()
    (other / "secret.html").write_text("<p>secret</p>")
    (root / "index.html").write_text(f"<p>index</p><iframe src='{(other / 'secret.html').as_uri()}'></iframe>")
    (root / "own.html").write_text("<p>own</p>")
    pool = get_pool()
    blocked = _visit(
        pool,
        [(root / "index.html").as_uri(), (root / "own.html").as_uri(), (other / "secret.html").as_uri()],
        via_redirect=False,
        file_roots=(str(root),),
    )
    secret = (other / "secret.html").as_uri()
    assert set(blocked) == {secret} and len(blocked) >= 2  # the frame, and the page itself


def test_episodes_never_share_a_context():
    pool = get_pool()
    open_before = pool.stats.contexts_open
    envs = [agentgym.make("web/page-v0", html=STORAGE_HTML, success_js="window.done === true") for _ in range(3)]
    for _ in range(3):
        outs = reset_many(envs, [TaskSpec({}, 0)] * 3)
        for obs, _ in outs:
            assert 'p "visits 1, cookie seen=first"' in obs[1]["content"]
        assert pool.stats.contexts_open == open_before + 3  # one per env: the old one is closed
        assert _browser_counts(pool) == (pool.stats.contexts_open, pool.stats.contexts_open)
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
    failed = [r for r in stats.results if not r.success or r.dropped]
    assert len(stats.results) == 10 and not failed, failed
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


SPIN_HTML = """<html><body><button onclick="while (true) {}">Spin</button>
<button onclick="window.done = true">Ok</button></body></html>"""


def test_a_page_that_hangs_is_dropped_and_its_context_closed():
    """A page stuck in a loop is a hang of its renderer, not of the browser: the episode is
    replayed, then dropped, and its context (with the spinning renderer) is closed."""
    pool = get_pool()
    pool.ensure_started()
    env = agentgym.make("web/page-v0", html=SPIN_HTML, success_js="window.done === true", call_timeout=5.0)
    env.reset(seed=0)
    open_with_env, crashes, pid = pool.stats.contexts_open, pool.stats.crashes, pool.browser_pid
    with pytest.raises(EpisodeDropped):
        env.step(f"click({_button(env, 'Spin').id})")
    assert pool.stats.contexts_open == open_with_env - 1  # nothing left behind
    assert _browser_counts(pool)[0] == pool.stats.contexts_open
    assert pool.stats.crashes == crashes and pool.browser_pid == pid  # the browser itself was fine
    with pytest.raises(RuntimeError, match="call reset"):
        env.step("wait()")
    env.reset(seed=0)
    assert pool.stats.contexts_open == open_with_env
    _, reward, term, _, info = env.step(f"click({_button(env, 'Ok').id})")
    assert term and info["success"] and reward == 1.0
    env.close()
    assert pool.stats.contexts_open == open_with_env - 1


def test_frozen_browser_is_detected_and_replaced():
    pool = get_pool()
    env = agentgym.make("web/wiki-v0", call_timeout=4.0)
    task = TaskSpec({"depth": 3, "branching": 2, "distractors": 1}, 4)
    env.reset(options={"task": task})
    env.step(env.oracle())
    hangs, relaunches, crashes = pool.stats.hangs, pool.stats.relaunches, pool.stats.crashes
    frozen = pool.kill_browser(signal.SIGSTOP)
    try:
        _, _, term, trunc, info = env.step(env.oracle())  # times out, relaunches, replays, then acts
    finally:
        pool.kill_browser(signal.SIGKILL) if pool.browser_pid == frozen else None
    assert pool.stats.hangs == hangs + 1 and pool.stats.relaunches == relaunches + 1 and pool.browser_pid != frozen
    assert pool.stats.crashes == crashes + 1  # the frozen browser, killed once and counted once
    assert info["error"] is None and env.episode_stats["retries"] == 1
    done = term or trunc
    while not done:
        _, _, term, trunc, info = env.step(env.oracle())
        done = term or trunc
    assert info["success"]
    env.close()
