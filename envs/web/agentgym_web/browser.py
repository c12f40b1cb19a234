"""One Chromium, many isolated contexts: the browser pool behind every web env.

A :class:`BrowserPool` owns a Playwright connection and one Chromium process, driven by
Playwright's *async* API on an event loop that runs in its own daemon thread. Envs are
synchronous (Gymnasium's API): each call hands a coroutine to that loop with
:meth:`BrowserPool.run` and waits for its result, so many envs stepped from several
threads (see :mod:`agentgym_web.batch`) have their browser work interleaved on the one
loop, and Chromium renders their pages in parallel.

What the pool guarantees:

- **Browser discovery** (:func:`find_browser`): an explicit path, then ``$AGENTGYM_CHROMIUM``,
  then Playwright's own installed browser, then a system Chromium (Debian's
  ``/usr/bin/chromium``, ``chromium-browser``, Google Chrome). If none is there,
  :class:`BrowserNotFound` says how to get one.
- **Network, by the kernel** (``network="isolated"``, the default on Linux): Chromium
  runs in a network namespace of its own whose only interface is its loopback, where
  the site server listens for it (see :mod:`agentgym_web.netns`): no request, WebRTC
  (STUN/UDP), mDNS or DNS packet has anywhere to go. If the namespace cannot be made
  the launch fails with :class:`BrowserFailure` saying why; ``network="host"`` (by name)
  runs with the two layers below only.
- **Network, by the browser**: "local" means the loopback interface (``127.0.0.1``, ``[::1]``,
  ``localhost``, ``*.localhost``; the generated sites' server, :mod:`agentgym_web.server`,
  listens on 127.0.0.1), ``data:``/``blob:``/``about:`` URLs, and files under the
  context's ``file_roots`` (the MiniWoB++ pages' folder); the pool's ``allow_hosts`` are
  added to it. Every request of every context goes through :meth:`BrowserPool._route`
  (a pattern lets requests to 127.0.0.1, localhost and the file roots skip the trip
  through Python): local ones go through, everything else is aborted and counted
  (``stats.blocked_requests``). WebSockets are filtered the same way. Chromium also
  starts with name resolution off for everything not local and a dead proxy for
  non-loopback traffic, so a request that escaped the router (a redirect's second leg
  is not routed) would still go nowhere: :func:`classify_url` and the browser agree.
- **Recovery**: a crashed browser (the process died, the connection broke) or a hung one
  (a call ran past its timeout and a health probe fails) is killed if needed and
  relaunched on the next use; ``generation`` counts launches so that many envs failing
  at once relaunch it only once. Envs then replay or drop their episodes (see
  :class:`agentgym_web.env.WebEnv`); the counts are in :attr:`BrowserPool.stats`.
- **No leaks**: contexts are created per episode and closed when the next one starts or
  the env closes; ``stats.contexts_open`` counts those alive.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import functools
import glob
import ipaddress
import os
import pathlib
import re
import shutil
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from agentgym_web.server import HEADER as SITE_HEADER
from agentgym_web.server import SiteServer

#: Chromium flags: no GPU, no background traffic of its own (updates, sync, metrics,
#: safe-browsing lists). :func:`launch_args` adds the network rule's flags.
LAUNCH_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-breakpad",
    "--metrics-recording-only",
    "--no-first-run",
    "--no-default-browser-check",
)

#: Host patterns the browser may resolve (IP literals go through these rules too): the
#: loopback names and the site server's address. No wildcard over ``127.*``: that would
#: hand names such as ``127.example.com`` to the system resolver.
_RESOLVABLE = ("localhost", "*.localhost", "127.0.0.1", "::1")
_LOOPBACK = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))


def launch_args(allow_hosts: frozenset[str] = frozenset()) -> list[str]:
    """The network flags: names resolve only for local hosts, and a closed local port is
    the proxy of everything else (loopback addresses never go through a proxy)."""
    excluded = ", ".join(f"EXCLUDE {h}" for h in (*_RESOLVABLE, *sorted(allow_hosts)))
    args = [f"--host-resolver-rules=MAP * ~NOTFOUND, {excluded}", "--proxy-server=http://127.0.0.1:9"]
    if allow_hosts:
        args.append("--proxy-bypass-list=" + ";".join(sorted(allow_hosts)))
    return [*LAUNCH_ARGS, *args]


#: System browsers tried after Playwright's own, in order. Debian's /usr/bin/chromium is a
#: shell wrapper that adds flags and settings of its own; its binary is used directly.
SYSTEM_BROWSERS = (
    "/usr/lib/chromium/chromium",
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/snap/bin/chromium",
    "/usr/bin/google-chrome",
    "/usr/bin/google-chrome-stable",
)

INSTALL_HELP = (
    "No Chromium browser was found for the agentgym web environments. Get one of:\n"
    "  - the project's script (tries each way below): bash envs/web/install-browser.sh\n"
    "  - Playwright's own build:  python -m playwright install chromium\n"
    "    (on a bare Linux machine add its system libraries: python -m playwright install --with-deps chromium)\n"
    "  - Debian/Ubuntu's package: apt-get install -y chromium   (Ubuntu: chromium-browser)\n"
    "  - any Chrome/Chromium binary: export AGENTGYM_CHROMIUM=/path/to/chrome\n"
    "or pass executable_path=... to the env (env.kwargs.executable_path in a run config)."
)


_STATS_LOCK = threading.Lock()


class BrowserNotFound(RuntimeError):
    """No Chromium could be found or started; the message says how to install one."""


class BrowserFailure(RuntimeError):
    """The browser crashed, hung, or its connection broke during a call."""


class BrowserHung(BrowserFailure):
    """A call to the browser ran past its timeout."""


class _NoNamespace(Exception):
    """The launcher could not make the browser's network namespace."""


def _no_namespace(why: object) -> str:
    return (
        f"the browser's network namespace could not be made: {why}. Nothing was launched. "
        "Allow network (and, when not root, user) namespaces, or pass network='host' to the env "
        "(env.kwargs.network) to rely on Chromium's network flags and the request router only."
    )


@dataclass
class PoolStats:
    """Counters of a pool since it started (``BrowserPool.stats``)."""

    launches: int = 0
    relaunches: int = 0
    crashes: int = 0
    hangs: int = 0
    retried_episodes: int = 0
    dropped_episodes: int = 0
    blocked_requests: int = 0
    contexts_created: int = 0
    contexts_closed: int = 0
    #: The last blocked URLs (at most 20), for reports and tests.
    blocked_urls: deque = field(default_factory=lambda: deque(maxlen=20))

    def add(self, name: str, n: int = 1) -> None:
        """Thread-safe increment (envs count retries and drops from their own threads)."""
        with _STATS_LOCK:
            setattr(self, name, getattr(self, name) + n)

    @property
    def contexts_open(self) -> int:
        return self.contexts_created - self.contexts_closed

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["blocked_urls"] = list(self.blocked_urls)
        d["contexts_open"] = self.contexts_open
        return d


# ----- finding a browser -----------------------------------------------------------------
def _playwright_browsers_dir() -> str:
    env = os.environ.get("PLAYWRIGHT_BROWSERS_PATH")
    if env and env != "0":
        return env
    if os.uname().sysname == "Darwin":
        return os.path.expanduser("~/Library/Caches/ms-playwright")
    return os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "ms-playwright")


def playwright_browser_installed() -> bool:
    """Whether ``playwright install chromium`` left a browser where Playwright looks."""
    root = _playwright_browsers_dir()
    return any(os.path.isdir(p) for p in glob.glob(os.path.join(root, "chromium*")))


def find_browser(executable_path: str | None = None) -> tuple[str, str | None]:
    """Where the browser comes from: ``(how, path)``.

    ``how`` is ``explicit`` (the argument), ``env`` ($AGENTGYM_CHROMIUM), ``playwright``
    (Playwright's own install; ``path`` is None and Playwright picks the binary) or
    ``system``. Raises :class:`BrowserNotFound` with install instructions when nothing fits.
    """
    if executable_path:
        if not os.path.exists(executable_path):
            raise BrowserNotFound(f"executable_path {executable_path!r} does not exist.\n{INSTALL_HELP}")
        return "explicit", executable_path
    env = os.environ.get("AGENTGYM_CHROMIUM")
    if env:
        if not os.path.exists(env):
            raise BrowserNotFound(f"AGENTGYM_CHROMIUM={env!r} does not exist.\n{INSTALL_HELP}")
        return "env", env
    if playwright_browser_installed():
        return "playwright", None
    for path in SYSTEM_BROWSERS:
        if os.path.exists(path):
            return "system", path
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"):
        path = shutil.which(name)
        if path:
            return "system", path
    raise BrowserNotFound(INSTALL_HELP)


def browser_available(executable_path: str | None = None) -> bool:
    """True when :func:`find_browser` finds something (tests skip otherwise)."""
    try:
        find_browser(executable_path)
    except BrowserNotFound:
        return False
    return True


# ----- the network rule ------------------------------------------------------------------
def classify_url(url: str, allow_hosts: frozenset[str] = frozenset(), file_roots: tuple[str, ...] = ()) -> str:
    """``local`` or ``blocked`` (see the module doc for what local means).

    A ``file:`` URL is local only when its path lies under one of ``file_roots``.
    """
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower().rstrip(".")
    except ValueError:
        return "blocked"
    if scheme in ("data", "blob", "about"):
        return "local"
    if scheme == "file":
        return "local" if host in ("", "localhost") and _under(unquote(parts.path), file_roots) else "blocked"
    if scheme not in ("http", "https", "ws", "wss"):
        return "blocked"
    if host == "localhost" or host.endswith(".localhost") or host in allow_hosts:
        return "local"
    try:
        # 127.0.0.1 and ::1 only: the browser resolves no other 127.* literal (no wildcard rule).
        return "local" if ipaddress.ip_address(host.strip("[]")) in _LOOPBACK else "blocked"
    except ValueError:
        return "blocked"


def _under(path: str, roots: tuple[str, ...]) -> bool:
    """Whether ``path``, with every symlink resolved, lies under one of ``roots`` (resolved too)."""
    path = os.path.realpath(path)
    for root in roots:
        root = os.path.realpath(root)
        if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
            return True
    return False


@functools.lru_cache(maxsize=64)
def _closed_root(root: str) -> bool:
    """No symlink under ``root`` leads outside it: only then may its files skip the router."""
    top = os.path.realpath(root)
    for folder, dirs, files in os.walk(top):
        for name in dirs + files:
            full = os.path.join(folder, name)
            if os.path.islink(full) and not _under(full, (top,)):
                return False
    return True


def routed_pattern(file_roots: tuple[str, ...] = ()) -> re.Pattern[str]:
    """The URLs a context sends through the router: all but data, 127.0.0.1/localhost
    (the site server) and files under ``file_roots`` that hold no symlink leading out of
    them (files under other roots go through the router, which resolves links). Those never leave the machine, and
    sparing them a trip through Python keeps page loads fast; the driver matches the
    pattern itself. Anything else, local or not, is judged by :func:`classify_url`."""
    files = "".join(f"|{re.escape(_file_prefix(r))}" for r in file_roots if _closed_root(os.path.abspath(r)))
    return re.compile(
        r"^(?!(?:data|blob|about):|(?:https?|wss?)://(?:127\.0\.0\.1|localhost)(?::\d+)?(?:[/?#]|$)" + files + ")"
    )


def _file_prefix(root: str) -> str:
    return pathlib.Path(os.path.abspath(root)).as_uri().rstrip("/") + "/"


# ----- the pool --------------------------------------------------------------------------
class BrowserPool:
    """A Chromium process and its contexts, driven from an event loop in a daemon thread.

    Most code uses the process-wide pool from :func:`get_pool`. ``call_timeout`` bounds
    every :meth:`run` call (seconds); a call that runs past it counts as a hang.
    ``allow_hosts`` (host names or addresses) are reachable besides the local ones: the
    router lets them through and the browser resolves them and reaches them directly.
    """

    def __init__(
        self,
        executable_path: str | None = None,
        *,
        headless: bool = True,
        extra_args: tuple[str, ...] = (),
        call_timeout: float = 30.0,
        launch_timeout: float = 60.0,
        allow_hosts: tuple[str, ...] = (),
        network: str = "isolated",
    ):
        if network not in ("isolated", "host"):
            raise ValueError(f"network must be 'isolated' or 'host', got {network!r}")
        if network == "isolated" and allow_hosts:
            raise ValueError(
                "allow_hosts needs network='host': an isolated browser has only its own loopback, "
                "so no other host is reachable"
            )
        #: "isolated": the browser's own network namespace, loopback only (kernel-enforced);
        #: "host": the host's network behind Chromium's flags and the router only.
        self.network = network
        self._isolation: Any = None
        self.executable_path = executable_path
        self.headless = headless
        self.extra_args = tuple(extra_args)
        self.call_timeout = float(call_timeout)
        self.launch_timeout = float(launch_timeout)
        self.allow_hosts = frozenset(h.lower() for h in allow_hosts)
        self.stats = PoolStats()
        self.generation = 0
        self.browser_pid: int | None = None
        self.browser_source: tuple[str, str | None] | None = None
        self._pw: Any = None
        self._browser: Any = None
        self._lock: asyncio.Lock | None = None
        self._closing = False
        self._live: set[Any] = set()
        self.site_server = SiteServer()
        self._owner_pid = os.getpid()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="agentgym-browser", daemon=True)
        self._thread.start()

    # ----- calling into the loop -------------------------------------------------------
    def run(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
        """Run ``coro`` on the pool's loop and return its result (from any other thread).

        Raises :class:`BrowserHung` when it takes longer than ``timeout`` (default
        ``call_timeout``); the coroutine is cancelled.
        """
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("BrowserPool.run() was called from the browser thread itself")
        if self._closing:
            coro.close()
            raise BrowserFailure("the browser pool is closed")
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        limit = self.call_timeout if timeout is None else timeout
        try:
            return fut.result(limit)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise BrowserHung(f"a browser call took longer than {limit:g} s") from None

    # ----- browser lifecycle (on the loop) ------------------------------------------------
    async def _get_browser(self) -> tuple[Any, int]:
        if self._lock is None:
            self._lock = asyncio.Lock()
        if self._browser is not None and self._browser.is_connected():
            return self._browser, self.generation
        async with self._lock:
            if self._browser is None or not self._browser.is_connected():
                await self._launch()
            return self._browser, self.generation

    async def _launch(self) -> None:
        from playwright.async_api import async_playwright

        if self._browser is not None:
            await self._discard_browser()
        how, path = find_browser(self.executable_path)
        args = launch_args(self.allow_hosts) + list(self.extra_args)
        last_error: Exception | None = None
        for _attempt in range(2):
            if self._pw is None:
                self._pw = await async_playwright().start()
            before = _browser_pids()
            exe, extra = path, {}
            if self.network == "isolated":
                exe, extra = self._isolated_launch(path)
            try:
                browser = await self._pw.chromium.launch(
                    executable_path=exe,
                    headless=self.headless,
                    args=args,
                    timeout=self.launch_timeout * 1000,
                    handle_sigint=False,
                    handle_sigterm=False,
                    handle_sighup=False,
                    **extra,
                )
                if self.network == "isolated":
                    try:
                        listener = await asyncio.get_running_loop().run_in_executor(None, self._isolation.receive, 10.0)
                    except OSError as e:
                        await browser.close()
                        raise _NoNamespace(str(e)) from None
                    await self.site_server.adopt(listener)
            except _NoNamespace as exc:
                raise BrowserFailure(_no_namespace(exc)) from None
            except Exception as exc:  # a broken driver connection: restart Playwright once
                last_error = exc
                if self.network == "isolated":
                    try:  # the launcher says why it stopped, if it did
                        self._isolation.receive(0.2)
                    except OSError as why:
                        if "never reported" not in str(why):
                            raise BrowserFailure(_no_namespace(why)) from None
                if how == "playwright" and "Executable doesn't exist" in str(exc):
                    raise BrowserNotFound(f"{exc}\n{INSTALL_HELP}") from None
                await self._stop_playwright()
                continue
            break
        else:
            raise BrowserFailure(
                f"could not launch Chromium ({how}: {path or 'Playwright default'}): {last_error}\n"
                "If the browser is broken or lacks system libraries, reinstall it:\n" + INSTALL_HELP
            )
        self.browser_pid = await _new_browser_pid(before)  # known before anyone sees the browser
        self.generation += 1
        browser.on("disconnected", self._on_disconnected)
        self._browser = browser
        self.browser_source = (how, path)
        self.stats.launches += 1
        if self.generation > 1:
            self.stats.relaunches += 1

    def _isolated_launch(self, path: str | None) -> tuple[str, dict[str, Any]]:
        from agentgym_web.netns import Isolation

        if not sys.platform.startswith("linux"):
            raise BrowserFailure("network='isolated' needs Linux network namespaces; pass network='host'")
        real = path or self._pw.chromium.executable_path
        if not real or not os.path.exists(real):
            raise BrowserNotFound(f"Chromium is not at {real!r}.\n{INSTALL_HELP}")
        if self._isolation is None:
            self._isolation = Isolation()
        return self._isolation.launcher, {"env": self._isolation.env(real)}

    def _on_disconnected(self, browser: Any) -> None:
        # Only the current browser dying unasked is a crash: one that _discard_browser
        # killed (after a hang) was counted there and is no longer ``self._browser``.
        if browser is self._browser and not self._closing:
            self.stats.crashes += 1
            # Every context of that browser died with it.
            self.stats.contexts_closed += len(self._live)
            self._live.clear()
            self._browser = None

    async def _discard_browser(self) -> None:
        browser, self._browser = self._browser, None
        if browser is None:
            return
        pid = self.browser_pid
        if pid is not None:
            _kill(pid)
        try:
            await asyncio.wait_for(browser.close(), 5)
        except Exception:
            pass
        self.stats.contexts_closed += len(self._live)
        self._live.clear()

    async def _stop_playwright(self) -> None:
        pw, self._pw = self._pw, None
        if pw is not None:
            try:
                await asyncio.wait_for(pw.stop(), 5)
            except Exception:
                pass

    # ----- contexts --------------------------------------------------------------------
    async def new_context(
        self,
        site_token: str | None = None,
        init_scripts: tuple[str, ...] = (),
        on_blocked: Callable[[str], None] | None = None,
        file_roots: tuple[str, ...] = (),
        **context_kwargs: Any,
    ) -> tuple[Any, int]:
        """A fresh context (and its generation) with the network rule installed.

        ``site_token`` (from ``site_server.register``) makes the context's requests reach
        that handler on the site server. ``on_blocked(url)`` is told of each blocked
        request (besides the pool's count). ``file_roots``: the folders whose files the
        context may load (no ``file:`` URL at all by default).
        """
        browser, gen = await self._get_browser()
        kwargs: dict[str, Any] = {
            "viewport": {"width": 800, "height": 600},
            "locale": "en-US",
            "timezone_id": "UTC",
            "service_workers": "block",
            "accept_downloads": False,
        }
        if site_token is not None:
            await self.site_server.start()
            kwargs["extra_http_headers"] = {SITE_HEADER: site_token}
        kwargs.update(context_kwargs)
        ctx = await browser.new_context(**kwargs)
        self._live.add(ctx)
        self.stats.contexts_created += 1
        try:
            for script in init_scripts:
                await ctx.add_init_script(script)

            async def route(r: Any) -> None:
                await self._route(r, on_blocked, file_roots)

            await ctx.route(routed_pattern(file_roots), route)
            if hasattr(ctx, "route_web_socket"):

                async def ws_route(ws: Any) -> None:
                    await self._route_ws(ws, on_blocked)

                await ctx.route_web_socket(re.compile(".*"), ws_route)
        except BaseException:
            await self.close_context(ctx)
            raise
        return ctx, gen

    async def close_context(self, ctx: Any) -> None:
        if ctx in self._live:
            self._live.discard(ctx)
            self.stats.contexts_closed += 1
            try:
                await asyncio.wait_for(ctx.close(), 10)
            except Exception:
                pass

    def close_context_soon(self, ctx: Any) -> None:
        """Close ``ctx`` without waiting (from any thread; used by finalizers)."""
        if self._closing or not self._loop.is_running():
            return
        try:
            asyncio.run_coroutine_threadsafe(self.close_context(ctx), self._loop)
        except RuntimeError:
            pass

    def _block(self, url: str, on_blocked: Callable[[str], None] | None) -> None:
        self.stats.blocked_requests += 1
        self.stats.blocked_urls.append(url[:200])
        if on_blocked is not None:
            on_blocked(url)

    async def _route(self, route: Any, on_blocked: Any, file_roots: tuple[str, ...] = ()) -> None:
        url = route.request.url
        kind = classify_url(url, self.allow_hosts, file_roots)
        try:
            if kind == "local":
                await route.continue_()
            else:
                self._block(url, on_blocked)
                await route.abort("blockedbyclient")
        except Exception:
            # The page went away while we answered (navigation, closed context): nothing to do.
            pass

    async def _route_ws(self, ws: Any, on_blocked: Any) -> None:
        try:
            if classify_url(ws.url, self.allow_hosts) == "local":
                ws.connect_to_server()
            else:
                self._block(ws.url, on_blocked)
                await ws.close(code=1008, reason="blocked by agentgym")
        except Exception:
            pass

    # ----- failures ----------------------------------------------------------------------
    def recover(self, generation: int, hung: bool = False) -> None:
        """After a failed call in ``generation``: make sure the next call finds a live browser.

        A dead browser is discarded (relaunched on next use). After a hang, a health probe
        (open and close a context) decides: a browser that fails it is killed. Calls for
        an older generation do nothing (someone already relaunched).
        """
        if hung:
            self.stats.add("hangs")
        try:
            self.run(self._recover(generation, hung), timeout=self.launch_timeout + 20)
        except BrowserHung:
            pass

    async def _recover(self, generation: int, hung: bool) -> None:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if generation != self.generation or self._browser is None:
                return
            healthy = self._browser.is_connected() and _alive(self.browser_pid)
            if healthy and hung:
                healthy = await self._probe()
            if not healthy:
                if self._browser is not None:
                    self.stats.crashes += 1
                await self._discard_browser()

    async def _probe(self) -> bool:
        try:
            ctx = await asyncio.wait_for(self._browser.new_context(), 5)
            await asyncio.wait_for(ctx.close(), 5)
            return True
        except Exception:
            return False

    def kill_browser(self, sig: int = signal.SIGKILL) -> int | None:
        """Send ``sig`` to the Chromium process (tests use this to simulate crashes and hangs)."""
        pid = self.browser_pid
        if pid is not None:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        return pid

    def ensure_started(self) -> None:
        """Launch the browser now (else it starts on the first context)."""
        self.run(self._get_browser(), timeout=self.launch_timeout + 20)

    def close(self) -> None:
        """Close every context, the browser and Playwright, and stop the loop."""
        if self._closing:
            return

        async def shutdown() -> None:
            for ctx in list(self._live):
                await self.close_context(ctx)
            browser, self._browser = self._browser, None  # closing it is no crash
            if browser is not None:
                try:
                    await asyncio.wait_for(browser.close(), 10)
                except Exception:
                    _kill(self.browser_pid)
            await self._stop_playwright()
            await self.site_server.close()
            if self._isolation is not None:
                self._isolation.close()

        if self._loop.is_running() and os.getpid() == self._owner_pid:
            try:
                self.run(shutdown(), timeout=30)
            except Exception:
                _kill(self.browser_pid)
            self._closing = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        self._closing = True

    def __repr__(self) -> str:
        return f"BrowserPool(generation={self.generation}, pid={self.browser_pid}, stats={self.stats.as_dict()})"


# ----- process helpers -------------------------------------------------------------------
def _browser_pids() -> set[int]:
    """PIDs of browser main processes (no ``--type=``) that descend from this process."""
    import psutil

    out = set()
    try:
        kids = psutil.Process(os.getpid()).children(recursive=True)
    except psutil.Error:
        return out
    for p in kids:
        try:
            cmd = p.cmdline()
        except psutil.Error:
            continue
        if not cmd:
            continue
        exe = os.path.basename(cmd[0])
        if any(k in exe for k in ("chrom", "headless_shell", "chrome")) and not any(
            a.startswith("--type=") for a in cmd
        ):
            out.add(p.pid)
    return out


async def _new_browser_pid(before: set[int]) -> int | None:
    for _ in range(20):
        new = _browser_pids() - before
        if new:
            return min(new)
        await asyncio.sleep(0.05)  # on the loop: never block it
    return None


def _alive(pid: int | None) -> bool:
    if pid is None:
        return True  # unknown: trust the connection
    import psutil

    try:
        p = psutil.Process(pid)
        return p.status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD, psutil.STATUS_STOPPED)
    except psutil.Error:
        return False


def _kill(pid: int | None) -> None:
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# ----- the process-wide pool --------------------------------------------------------------
_POOL: BrowserPool | None = None
_POOL_LOCK = threading.Lock()


def get_pool(**options: Any) -> BrowserPool:
    """The process-wide pool, created on first use with ``options`` (see :class:`BrowserPool`).

    A forked child gets its own pool (a browser is not shared across processes).
    """
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL._owner_pid != os.getpid() or _POOL._closing:
            _POOL = BrowserPool(**options)
        return _POOL


def close_pool() -> None:
    """Close the process-wide pool (it is recreated on next use)."""
    global _POOL
    with _POOL_LOCK:
        pool, _POOL = _POOL, None
    if pool is not None and pool._owner_pid == os.getpid():
        pool.close()


atexit.register(close_pool)
