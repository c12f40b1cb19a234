"""OpenEnv's environment protocol on ``agentgym serve --openenv``.

OpenEnv's client (``openenv.core.GenericEnvClient`` and every typed client built on
``EnvClient``) opens one WebSocket per session at ``/ws`` and sends JSON messages
``{"type": "reset" | "step" | "state" | "close", "data": {...}}``; the server answers
``{"type": "observation", "data": {"observation", "reward", "done", "metadata"}}``,
``{"type": "state", "data": {...}}`` or ``{"type": "error", "data": {"message", "code"}}``.
Its HTTP side is ``GET /health``, ``/metadata``, ``/schema`` and ``/state`` and a
stateless ``POST /reset``; this module answers those too.

What an agentgym env is in those terms:

- action ``{"message": "<the reply text>"}``;
- observation ``{"messages": [chat messages the env says], "metadata": info}``, where
  ``info`` is the env's own (``task``, ``turn``, ``success``, ``reward_parts``, ``error``)
  plus ``terminated`` and ``truncated``; ``done`` is either of them;
- reset data ``{"seed"?: n, "options"?: {"task": {"params": {...}, "seed": n}}}`` (a
  top-level ``"task"`` is read too): the task parameters and seed travel in reset's
  options, as with ``env.reset(options=...)`` in-process;
- state ``{"episode_id", "step_count", "task", "done", "transcript"}``.
"""

from __future__ import annotations

import json
import threading
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from agentgym.interop.websocket import WebSocket, WebSocketClosed, WebSocketError, accept_key
from agentgym.tasks import TaskSpec

if TYPE_CHECKING:
    from http.server import BaseHTTPRequestHandler

    from agentgym.serve import EnvServer

#: Largest WebSocket message accepted (the HTTP body cap of ``agentgym serve``).
MAX_MESSAGE = 4 << 20

_MESSAGES_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"role": {"type": "string"}, "content": {"type": "string"}},
        "required": ["role", "content"],
    },
}
SCHEMA = {
    "action": {
        "title": "AgentgymAction",
        "type": "object",
        "properties": {"message": {"type": "string", "description": "the agent's reply (text)"}},
        "required": ["message"],
    },
    "observation": {
        "title": "AgentgymObservation",
        "type": "object",
        "properties": {
            "messages": {**_MESSAGES_SCHEMA, "description": "what the env says (new messages only)"},
            "metadata": {"type": "object", "description": "the env's info, with terminated and truncated"},
        },
    },
    "state": {
        "title": "AgentgymState",
        "type": "object",
        "properties": {
            "episode_id": {"type": ["string", "null"]},
            "step_count": {"type": "integer"},
            "task": {"type": ["object", "null"]},
            "done": {"type": "boolean"},
            "transcript": _MESSAGES_SCHEMA,
        },
    },
}


class ProtocolError(ValueError):
    """A message the protocol cannot take; ``code`` is OpenEnv's error code for it."""

    def __init__(self, message: str, code: str = "VALIDATION_ERROR"):
        super().__init__(message)
        self.code = code


class Session:
    """One client's env: what ``/ws`` drives, one message at a time."""

    def __init__(self, env: Any):
        self.env = env
        self.episode_id: str | None = None
        self.steps = 0
        self.started = False

    def reset(self, data: dict[str, Any]) -> dict[str, Any]:
        seed = data.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ProtocolError(f"seed must be an integer, got {seed!r}")
        options = data.get("options") or {}
        if not isinstance(options, dict):
            raise ProtocolError("options must be an object such as {'task': {'params': {...}, 'seed': 0}}")
        task = options.get("task", data.get("task"))
        if task is not None:
            if not isinstance(task, dict) or not isinstance(task.get("params", {}), dict):
                raise ProtocolError("task must be {'params': {...}, 'seed': int}")
            task = TaskSpec(dict(task.get("params", {})), _int(task.get("seed", 0), "task seed"))
        episode_id = data.get("episode_id")
        if episode_id is not None and not isinstance(episode_id, str):
            raise ProtocolError("episode_id must be a string")
        messages, info = self.env.reset(seed=seed, options={"task": task} if task is not None else None)
        self.episode_id = episode_id or uuid.uuid4().hex
        self.steps = 0
        self.started = True
        return observation(messages, None, False, False, info)

    def step(self, data: dict[str, Any]) -> dict[str, Any]:
        if not self.started:
            raise ProtocolError("send a reset before the first step", code="EXECUTION_ERROR")
        if self.env.unwrapped._done:
            raise ProtocolError("the episode has ended; send a reset to start a new one", code="EXECUTION_ERROR")
        unknown = set(data) - {"message", "metadata"}
        if "message" not in data or unknown:
            raise ProtocolError(
                "a step's data must be {'message': '<reply text>'}"
                + (f"; unknown field(s) {sorted(unknown)}" if unknown else "")
            )
        # A non-string message goes to the env as it is: the env answers it with an error
        # observation and its penalty, as it would in-process.
        messages, reward, terminated, truncated, info = self.env.step(data["message"])
        self.steps += 1
        return observation(messages, reward, terminated, truncated, info)

    def state(self) -> dict[str, Any]:
        u = self.env.unwrapped
        return {
            "episode_id": self.episode_id,
            "step_count": self.steps,
            "task": u.task.to_dict() if u.task is not None else None,
            "done": bool(u._done) if self.started else False,
            "transcript": [dict(m) for m in u._transcript],
        }


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"{name} must be an integer, got {value!r}")
    return value


def observation(messages: list, reward: float | None, terminated: bool, truncated: bool, info: dict) -> dict:
    """An OpenEnv observation payload (what ``serialize_observation`` makes on its servers)."""
    meta = {**info, "terminated": bool(terminated), "truncated": bool(truncated)}
    return {
        "observation": {"messages": messages, "metadata": meta},
        "reward": None if reward is None else float(reward),
        "done": bool(terminated or truncated),
        "metadata": meta,
    }


class OpenEnvProtocol:
    """OpenEnv's endpoints over an :class:`~agentgym.serve.EnvServer`'s env id."""

    def __init__(self, server: EnvServer, max_sessions: int = 64, idle_timeout: float = 600.0):
        self.server = server
        self.max_sessions = max_sessions
        self.idle_timeout = idle_timeout
        self.active = 0
        self._lock = threading.Lock()

    # ----- HTTP --------------------------------------------------------------------------
    def get(self, path: str) -> dict[str, Any] | None:
        """The answer to ``GET path`` (None: no such endpoint)."""
        from agentgym import __version__

        spec = self.server.env_spec
        if path == "/health":
            return {"status": "healthy"}
        if path == "/metadata":
            return {
                "name": self.server.env_id,
                "description": spec.description or f"agentgym env {self.server.env_id}",
                "version": __version__,
                "readme_content": None,
                "author": None,
                "documentation_url": None,
            }
        if path == "/schema":
            return SCHEMA
        if path == "/state":  # OpenEnv's HTTP side keeps no session: a fresh env's state
            return {"episode_id": None, "step_count": 0}
        if path == "/spec":  # agentgym's own description: the parameter space and held-out region
            return self.server.spec()
        return None

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """The answer to ``POST path`` (None: no such endpoint). HTTP ``/reset`` is
        stateless, as on OpenEnv's servers: it opens a task and forgets it."""
        if path == "/reset":
            env = self.server.make_env()
            try:
                return Session(env).reset(body)
            finally:
                env.close()
        if path == "/step":
            raise ProtocolError(
                "HTTP /step is stateless in OpenEnv and cannot continue an episode: open a session on the "
                "WebSocket /ws (OpenEnv's client does)"
            )
        return None

    # ----- the WebSocket session -----------------------------------------------------------
    def serve_websocket(self, handler: BaseHTTPRequestHandler) -> None:
        """Accept the upgrade on ``handler``'s connection and run one session until it closes."""
        key = handler.headers.get("Sec-WebSocket-Key") or ""
        refusal = None
        if "websocket" not in (handler.headers.get("Upgrade") or "").lower() or not key:
            refusal = (400, "GET /ws needs a WebSocket upgrade (Upgrade: websocket, Sec-WebSocket-Key)")
        elif self.server.loopback and not all(map(_is_loopback_name, handler.headers.get_all("Host") or [""])):
            # A name that resolves to this machine only by DNS rebinding; a client on this
            # machine says localhost or the address.
            refusal = (403, "the Host header must name this machine (localhost or a loopback address)")
        elif not _same_origin(handler.headers.get("Origin"), handler.headers.get("Host")):
            # A web page on another site must not drive a local env through the user's browser.
            refusal = (403, "cross-origin WebSocket refused")
        if refusal is None:
            with self._lock:
                if self.active >= self.max_sessions:
                    refusal = (503, f"{self.max_sessions} sessions are open; close one first")
                else:
                    self.active += 1
        if refusal is not None:
            handler.close_connection = True
            data = json.dumps({"error": refusal[1]}).encode()
            handler.send_response(refusal[0])
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
            return
        env = None
        try:
            handler.close_connection = True
            handler.send_response(101, "Switching Protocols")
            handler.send_header("Upgrade", "websocket")
            handler.send_header("Connection", "Upgrade")
            handler.send_header("Sec-WebSocket-Accept", accept_key(key))
            handler.end_headers()
            handler.wfile.flush()
            handler.connection.settimeout(self.idle_timeout)
            ws = WebSocket(handler.rfile, handler.wfile, MAX_MESSAGE, sock=handler.connection)
            env = self.server.make_env()
            self._session(ws, Session(env))
        finally:
            if env is not None:
                env.close()
            with self._lock:
                self.active -= 1

    def _session(self, ws: WebSocket, session: Session) -> None:
        while True:
            try:
                raw = ws.receive()
            except WebSocketError as exc:
                ws.close(exc.code, str(exc))
                _linger(ws)
                return
            except (WebSocketClosed, OSError):
                return
            try:
                reply = self._answer(session, raw)
            except ProtocolError as exc:
                reply = {"type": "error", "data": {"message": str(exc), "code": exc.code}}
            except (ValueError, TypeError, KeyError, RuntimeError) as exc:  # the env refused (bad params, ...)
                message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
                reply = {"type": "error", "data": {"message": message, "code": "EXECUTION_ERROR"}}
            if reply is None:  # "close"
                ws.close(1000)
                return
            try:
                ws.send(json.dumps(reply))
            except WebSocketClosed:
                return

    @staticmethod
    def _answer(session: Session, raw: str) -> dict[str, Any] | None:
        try:
            message = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise ProtocolError(f"Invalid JSON: {exc}", code="INVALID_JSON") from None
        if not isinstance(message, dict):
            raise ProtocolError("a message must be a JSON object with a 'type'")
        kind, data = message.get("type"), message.get("data", {})
        if not isinstance(data, dict):
            raise ProtocolError("'data' must be a JSON object")
        if kind == "reset":
            return {"type": "observation", "data": session.reset(data)}
        if kind == "step":
            return {"type": "observation", "data": session.step(data)}
        if kind == "state":
            return {"type": "state", "data": session.state()}
        if kind == "close":
            return None
        raise ProtocolError(f"Unknown message type: {kind!r} (reset, step, state, close)", code="UNKNOWN_TYPE")


def _linger(ws: WebSocket, max_bytes: int = 2 * MAX_MESSAGE, seconds: float = 2.0) -> None:
    """After refusing a message, read and drop what the client still sends (a bounded amount,
    for a bounded time) so it reads the close frame with its reason instead of a reset."""
    import time

    deadline = time.monotonic() + seconds
    left = max_bytes
    try:
        if ws.sock is not None:
            ws.sock.settimeout(seconds)
        while left > 0 and time.monotonic() < deadline:
            chunk = ws.rfile.read1(min(left, 1 << 16)) if hasattr(ws.rfile, "read1") else b""
            if not chunk:
                return
            left -= len(chunk)
    except OSError:  # a timeout or a reset: done either way
        pass


def _is_loopback_name(host: str | None) -> bool:
    name = urlsplit(f"//{host or ''}").hostname or ""
    return name == "localhost" or name.startswith("127.") or name == "::1"


def _same_origin(origin: str | None, host: str | None) -> bool:
    """True without an Origin (not a browser), or when it names the served host or loopback."""
    if not origin:
        return True
    name = urlsplit(origin).hostname or ""
    own = urlsplit(f"//{host or ''}").hostname or ""
    return name in {own, "localhost", "127.0.0.1", "::1"}
