"""A tiny HTTP/1.1 server on 127.0.0.1 for the generated sites, on the pool's event loop.

Every env that serves pages registers a handler under a random token; its browser
context sends that token in an ``X-Agentgym-Site`` header with every request, so many
episodes share one port and each sees only its own site (and the sites keep their state
in Python, out of the page's reach). A real server, rather than answering from the
request router, gives pages the browser's own behaviour for redirects (post, redirect,
get), history and form submission.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

HEADER = "x-agentgym-site"
_MAX_BODY = 1 << 20


@dataclass
class Response:
    """What a site answers to one request."""

    body: str = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def redirect(cls, location: str) -> Response:
        return cls(status=303, headers={"Location": location})


#: handler(method, path, query, form) -> Response
Handler = Callable[[str, str, dict[str, list[str]], dict[str, list[str]]], Response]


class SiteServer:
    """Serves registered handlers on ``http://127.0.0.1:<port>``."""

    def __init__(self) -> None:
        self.handlers: dict[str, Handler] = {}
        self.port: int | None = None
        self.requests = 0
        self._server: asyncio.AbstractServer | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]

    async def adopt(self, sock: socket.socket) -> None:
        """Serve on ``sock``, a listener made elsewhere (in the browser's network namespace)."""
        await self.close()
        sock.setblocking(False)
        self._server = await asyncio.start_server(self._serve, sock=sock)
        self.port = sock.getsockname()[1]

    def register(self, handler: Handler) -> str:
        """Serve ``handler`` to contexts that send the returned token.

        A bound method is held weakly, so an env that is dropped without ``close()`` is
        not kept alive by its registration (its token then answers 404).
        """
        token = secrets.token_hex(8)
        if hasattr(handler, "__self__") and hasattr(handler, "__func__"):
            ref = weakref.WeakMethod(handler)

            def call(method: str, path: str, query: dict[str, list[str]], form: dict[str, list[str]]) -> Response:
                target = ref()
                if target is None:
                    self.handlers.pop(token, None)
                    return Response("<h1>Gone</h1>", status=410)
                return target(method, path, query, form)

            self.handlers[token] = call
            weakref.finalize(handler.__self__, self.handlers.pop, token, None)
        else:
            self.handlers[token] = handler
        return token

    def unregister(self, token: str | None) -> None:
        if token:
            self.handlers.pop(token, None)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await asyncio.wait_for(reader.readline(), 60)
                except asyncio.TimeoutError:
                    break
                if not line:
                    break
                parts = line.decode("latin-1").split()
                if len(parts) != 3:
                    break
                method, target, _ = parts
                headers: dict[str, str] = {}
                while True:
                    h = await reader.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                n = int(headers.get("content-length", "0") or 0)
                if n > _MAX_BODY:
                    break
                body = await reader.readexactly(n) if n else b""
                resp = self._answer(method, target, headers, body)
                payload = resp.body.encode("utf-8")
                head = {
                    "Content-Type": "text/html; charset=utf-8",
                    "Cache-Control": "no-store",
                    "Content-Length": str(len(payload)),
                    "Connection": "keep-alive",
                    **resp.headers,
                }
                try:
                    reason = HTTPStatus(resp.status).phrase
                except ValueError:
                    reason = "Status"
                out = (
                    f"HTTP/1.1 {resp.status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head.items()) + "\r\n"
                )
                writer.write(out.encode("latin-1") + (b"" if method == "HEAD" else payload))
                await writer.drain()
                self.requests += 1
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            try:
                writer.close()
            except Exception:
                pass

    def _answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        handler = self.handlers.get(headers.get(HEADER, ""))
        if handler is None:
            return Response("<h1>Not found</h1><p>No site is served to this browser context.</p>", status=404)
        parts = urlsplit(target)
        query = parse_qs(parts.query, keep_blank_values=True)
        form: dict[str, list[str]] = {}
        if method == "POST" and "urlencoded" in headers.get("content-type", "application/x-www-form-urlencoded"):
            form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        try:
            return handler(method, parts.path or "/", query, form)
        except Exception as exc:  # a bug in a site generator must not hang the page
            return Response(f"<h1>Server error</h1><p>{type(exc).__name__}</p>", status=500)
