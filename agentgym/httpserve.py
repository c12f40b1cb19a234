"""The small hardened HTTP layer under ``agentgym serve`` and ``agentgym generate-server``.

Both servers are JSON APIs on :mod:`http.server`; what they share is here so each holds
the same line against hostile clients and hostile web pages:

- **a valid length or a refusal**: ``Content-Length`` must be a plain decimal number
  (``-1`` would read to the end of the stream, ``abc`` would raise), no
  ``Transfer-Encoding``, and a cap per endpoint (413 over it);
- **the content type the endpoint takes** (``application/json``, or
  ``application/octet-stream`` for weights): a browser sends a cross-site request
  without asking first only as ``text/plain`` or a form, so these never run one;
- **no foreign page, no rebinding**: a request whose ``Origin`` is not the server's own
  address is refused, and a loopback server answers only a ``Host`` that names loopback
  (a DNS-rebinding page's requests carry its own domain name);
- **bounded connections**: at most ``max_connections`` at once (503 past that) and a
  read timeout on every socket, so half-sent requests cannot hold every thread;
- **a bearer token** (:func:`check_token`, compared in constant time) where the server
  sets one;
- JSON that is too deep to parse is a 400, not a traceback.

:class:`SessionTable` is the capped, expiring session store ``agentgym serve`` keeps.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

#: A socket that sends nothing for this long is closed (a half-sent request, an idle keep-alive).
READ_TIMEOUT = 30.0
#: Connections served at once; past this a new one gets 503 and is closed.
MAX_CONNECTIONS = 128


class HTTPRefusal(Exception):
    """A request refused before it reached the API: its status and a one-line reason."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` or a loopback address (not a name that merely starts with ``127.``)."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _hostname(authority: str | None) -> str:
    try:
        return (urlsplit(f"//{authority or ''}").hostname or "").lower()
    except ValueError:  # a malformed port or bracket
        return ""


def check_origin(headers: Any, loopback: bool) -> None:
    """Refuse a request a foreign web page made (``Origin``) or one that reached a loopback
    server under another name (DNS rebinding). Raises :class:`HTTPRefusal` (403)."""
    hosts = headers.get_all("Host") or []
    if len(hosts) != 1:
        raise HTTPRefusal(HTTPStatus.BAD_REQUEST, "a request needs exactly one Host header")
    host = hosts[0].strip()
    if loopback and not is_loopback_host(_hostname(host)):
        raise HTTPRefusal(
            HTTPStatus.FORBIDDEN, "the Host header must name this machine (localhost or a loopback address)"
        )
    origin = headers.get("Origin")
    if origin is not None:
        parts = urlsplit(origin.strip())
        if parts.scheme not in ("http", "https") or parts.netloc.lower() != host.lower():
            raise HTTPRefusal(HTTPStatus.FORBIDDEN, f"cross-origin request refused (Origin {origin[:80]!r})")


def check_token(headers: Any, token: str | None) -> None:
    """Refuse a request without ``Authorization: Bearer <token>`` when ``token`` is set (401)."""
    if token is None:
        return
    given = (headers.get("Authorization") or "").encode()
    if not hmac.compare_digest(given, f"Bearer {token}".encode()):
        raise HTTPRefusal(HTTPStatus.UNAUTHORIZED, "missing or wrong bearer token")


def read_body(handler: BaseHTTPRequestHandler, limit: int, content_type: str) -> bytes:
    """The request body, checked: a decimal ``Content-Length`` within ``limit``, no
    ``Transfer-Encoding``, and ``content_type``. Raises :class:`HTTPRefusal`."""
    if handler.headers.get("Transfer-Encoding") is not None:
        raise HTTPRefusal(HTTPStatus.LENGTH_REQUIRED, "send a Content-Length, not Transfer-Encoding")
    lengths = handler.headers.get_all("Content-Length") or ["0"]
    raw = lengths[0].strip()
    if len(lengths) != 1 or not raw.isdigit() or not raw.isascii():
        raise HTTPRefusal(HTTPStatus.BAD_REQUEST, f"bad Content-Length {raw[:40]!r}")
    length = int(raw)
    if length > limit:
        raise HTTPRefusal(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"request body over {limit} bytes")
    given = (handler.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if length and given != content_type:
        raise HTTPRefusal(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"this endpoint takes Content-Type: {content_type}, not {given!r}"
        )
    data = handler.rfile.read(length)
    if len(data) != length:
        raise HTTPRefusal(HTTPStatus.BAD_REQUEST, "the body ended before its Content-Length")
    return data


def parse_json_object(data: bytes) -> dict[str, Any]:
    """A JSON object from ``data`` (empty: ``{}``); too deep or not an object is a 400."""
    try:
        body = json.loads(data or b"{}")
    except (ValueError, RecursionError) as e:  # RecursionError: a very deeply nested body
        raise HTTPRefusal(HTTPStatus.BAD_REQUEST, f"bad JSON body: {type(e).__name__}: {str(e)[:200]}") from None
    if not isinstance(body, dict):
        raise HTTPRefusal(HTTPStatus.BAD_REQUEST, "bad JSON body: it must be a JSON object")
    return body


class GuardedHandler(BaseHTTPRequestHandler):
    """A JSON API handler with the checks above; subclasses write ``get``/``post``."""

    protocol_version = "HTTP/1.1"
    timeout = READ_TIMEOUT  # StreamRequestHandler sets it on the socket

    def setup(self) -> None:
        self.timeout = getattr(self.server, "read_timeout", READ_TIMEOUT)
        super().setup()

    def log_message(self, *args: Any) -> None:  # quiet: a training loop makes many requests
        pass

    def reply(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status >= 400 and status not in (HTTPStatus.NOT_FOUND,):
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def guard(self) -> None:
        """Origin, Host and token checks for every request (raises :class:`HTTPRefusal`)."""
        check_origin(self.headers, self.server.loopback)  # type: ignore[attr-defined]
        check_token(self.headers, self.server.token)  # type: ignore[attr-defined]

    def handle_one(self, method: Callable[[], None]) -> None:
        try:
            self.guard()
            method()
        except HTTPRefusal as e:
            self.reply(e.status, {"error": str(e)})


class GuardedHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that serves at most ``max_connections`` connections at once,
    each closed after ``read_timeout`` seconds without a byte from the client.

    ``loopback`` (from the bind address) turns on the Host check; ``token`` the bearer check.
    """

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[GuardedHandler],
        *,
        token: str | None = None,
        max_connections: int = MAX_CONNECTIONS,
        read_timeout: float = READ_TIMEOUT,
    ):
        self.loopback = is_loopback_host(address[0])
        self.read_timeout = float(read_timeout)
        self.token = token or None
        self.max_connections = int(max_connections)
        self._slots = threading.BoundedSemaphore(self.max_connections)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            try:
                data = json.dumps({"error": f"{self.max_connections} connections are open; try again"}).encode()
                request.settimeout(1.0)
                request.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
                    + f"Content-Length: {len(data)}\r\n\r\n".encode()
                    + data
                )
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class SessionTable:
    """Sessions (id -> (lock, env)) with a cap and an idle timeout.

    A session not used for ``idle_seconds`` is closed (its env's ``close()`` frees its
    sandbox or browser), at the latest ``idle_seconds / 4`` later by a reaper thread.
    Opening one past ``max_sessions`` (after expiring idle ones) raises
    :class:`HTTPRefusal` (503).
    """

    def __init__(self, max_sessions: int = 64, idle_seconds: float = 600.0):
        if max_sessions < 1 or idle_seconds <= 0:
            raise ValueError("max_sessions must be at least 1 and idle_seconds positive")
        self.max_sessions = int(max_sessions)
        self.idle_seconds = float(idle_seconds)
        self._entries: dict[str, list[Any]] = {}  # id -> [lock, env, last used]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap_loop, name="agentgym-session-reaper", daemon=True)
        self._reaper.start()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def open(self, sid: str, make: Callable[[], Any]) -> None:
        self.expire()
        with self._lock:
            if len(self._entries) >= self.max_sessions:
                raise HTTPRefusal(
                    HTTPStatus.SERVICE_UNAVAILABLE,
                    f"{self.max_sessions} sessions are open; close one (POST /close) or wait "
                    f"{self.idle_seconds:.0f} s for idle ones to expire",
                )
            self._entries[sid] = [threading.Lock(), None, time.monotonic()]
        try:
            env = make()
        except BaseException:
            with self._lock:
                self._entries.pop(sid, None)
            raise
        with self._lock:
            self._entries[sid][1] = env

    def get(self, sid: Any) -> tuple[threading.Lock, Any]:
        """The session's (lock, env); KeyError when there is none (or it expired)."""
        with self._lock:
            entry = self._entries.get(str(sid))
            if entry is None or entry[1] is None:
                raise KeyError(
                    f"no session {sid!r} (closed, expired after {self.idle_seconds:.0f} s idle, or never "
                    "opened); POST /reset without one opens a new session"
                )
            entry[2] = time.monotonic()
            return entry[0], entry[1]

    def close(self, sid: Any) -> None:
        with self._lock:
            entry = self._entries.pop(str(sid), None)
        if entry is None or entry[1] is None:
            raise KeyError(f"no session {sid!r}")
        with entry[0]:
            entry[1].close()

    def expire(self) -> int:
        """Close the sessions idle for ``idle_seconds`` (not one in use now); how many closed."""
        now = time.monotonic()
        stale = []
        with self._lock:
            for sid, entry in list(self._entries.items()):
                if entry[1] is not None and now - entry[2] >= self.idle_seconds and entry[0].acquire(blocking=False):
                    stale.append(entry)
                    del self._entries[sid]
        for lock, env, _ in stale:
            try:
                env.close()
            finally:
                lock.release()
        return len(stale)

    def _reap_loop(self) -> None:
        while not self._stop.wait(min(30.0, self.idle_seconds / 4)):
            try:
                self.expire()
            except Exception:  # an env that fails to close must not stop the reaper
                pass

    def close_all(self) -> None:
        self._stop.set()
        with self._lock:
            entries, self._entries = list(self._entries.values()), {}
        for _, env, _ in entries:
            if env is not None:
                env.close()
