"""HTTP requests for agentgym's clients (RemoteEnv, RemotePolicy, OpenAIPolicy) that hold two lines:

- **credentials stay with their origin**: a redirect to another scheme, host or port
  drops ``Authorization`` and API-key headers before following it (urllib's own redirect
  handler copies every header to the new host);
- **an answer's size is capped**: a body over ``max_bytes`` (by its ``Content-Length`` or
  as it is read) raises :class:`ResponseTooLarge` instead of filling memory.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any
from urllib.parse import urlsplit

#: Headers that carry a credential (lower case): never sent to another origin.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "api-key", "x-api-key"})


class ResponseTooLarge(OSError):
    """The server's answer is larger than the client takes."""


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


class _SameOriginCredentials(urllib.request.HTTPRedirectHandler):
    """Follows redirects as urllib does, but not with the credentials when the origin changes."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> Any:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(newurl) != _origin(req.full_url):
            for store in (new.headers, new.unredirected_hdrs):
                for name in [k for k in store if k.lower() in CREDENTIAL_HEADERS]:
                    del store[name]
        return new


_OPENER = urllib.request.build_opener(_SameOriginCredentials())


def read_capped(resp: Any, max_bytes: int) -> bytes:
    """At most ``max_bytes`` of ``resp``'s body; more raises :class:`ResponseTooLarge`."""
    declared = resp.headers.get("Content-Length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
        raise ResponseTooLarge(f"the answer is {int(declared)} bytes, over the {max_bytes}-byte cap")
    data = resp.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ResponseTooLarge(f"the answer is over the {max_bytes}-byte cap")
    return data


def open_url(req: urllib.request.Request, timeout: float) -> Any:
    """``urllib.request.urlopen`` with credentials kept to their origin across redirects."""
    return _OPENER.open(req, timeout=timeout)


def request_json(req: urllib.request.Request, timeout: float, max_bytes: int) -> Any:
    """Send ``req`` and parse its JSON answer (at most ``max_bytes``); urllib's errors pass through."""
    with open_url(req, timeout) as resp:
        return json.loads(read_capped(resp, max_bytes))


def error_text(err: Any, max_bytes: int = 64 << 10) -> str:
    """An HTTP error answer's message: its JSON ``error`` field, else its first bytes."""
    try:
        raw = err.read(max_bytes)
    except OSError:
        return str(err)
    try:
        body = json.loads(raw)
        if isinstance(body, dict) and "error" in body:
            return str(body["error"])
    except (ValueError, RecursionError):
        pass
    return raw[:500].decode("utf-8", "replace") or str(err)
