"""Any agentgym env over HTTP (JSON), and a client that makes a served env look local again.

The shape is the one OpenEnv and NeMo Gym use: ``reset``, ``step`` and ``state`` on an env
that lives in the server, so another trainer (any language) can train on these envs.
One server serves one env id; every ``reset`` without a ``session`` opens a new session
with its own env instance, so many clients can play at once.

=========================  =====================================================================
``GET /health``            ``{"ok": true, "env_id": ...}``
``GET /spec``              the env id, its parameter space and held-out region, ``max_turns``
``POST /reset``            body ``{"session"?, "task"?: {"params": {...}, "seed": n}, "seed"?: n,
                           "controllers"?: {seat: kind}}``; answers ``{"session", "turn",
                           "observation", "info"}``
``POST /step``             body ``{"session", "action": "..."}`` or ``{"session", "moves":
                           {seat: "..."}}``; answers ``{"turn", "observation", "reward",
                           "terminated", "truncated", "info"}``
``GET /state?session=``    ``{"task", "turn", "done", "transcript"}``
``POST /close``            body ``{"session"}``
=========================  =====================================================================

Multi-agent games are served too, as every env is played (:mod:`agentgym.rollout.seats`):
``turn`` says which policy seats move now (``movers``), what each was told
(``observations``), the rewards by seat (``credits``), the scripted seats' moves
(``said``) and whether the game is over. Scripted seats (the task's ``opponent`` and
``seat`` params, or ``controllers``) play inside the server. A play with one policy seat
(a single-agent env, or a game against scripted opponents) also answers in the
Gymnasium shape, ``observation``, ``reward``, ``terminated``, ``truncated`` and
``info``, for that seat, so :class:`RemoteEnv` plays it like a local env.

Errors are JSON too (``{"error": "..."}``, status 400 for a bad request, 404 for an unknown
session). Requests are JSON (``Content-Type: application/json``); a foreign ``Origin``, a
``Host`` that does not name loopback on a loopback server, a bad ``Content-Length`` are
refused (:mod:`agentgym.httpserve`). At most ``max_sessions`` (64) sessions are open; one
idle for ``idle_seconds`` (600) is closed and its env freed. Start one with
``agentgym serve ENV_ID --port 8000`` (``--port 0`` picks a free port and prints it); :class:`RemoteEnv` is the client.

``protocol="openenv"`` (``agentgym serve ENV_ID --openenv``) speaks OpenEnv's protocol
instead, so OpenEnv's own client runs episodes: see :mod:`agentgym.interop.openenv_server`.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import urllib.error
import urllib.request
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import gymnasium

from agentgym.env import ChatSpace, TaskSpec
from agentgym.httpclient import ResponseTooLarge, error_text, request_json
from agentgym.httpserve import (
    MAX_CONNECTIONS,
    GuardedHandler,
    GuardedHTTPServer,
    SessionTable,
    is_loopback_host,
    parse_json_object,
    read_body,
)
from agentgym.rollout.seats import Seating, Turn, seat_env

_MAX_BODY = 4 << 20


class EnvServer:
    """Serves ``env_id`` on ``host:port``; ``serve_forever()`` blocks, ``start()`` runs it in a thread.

    Hardened as :mod:`agentgym.httpserve` says (valid lengths, JSON only, no foreign
    Origin or Host, bounded connections and read timeouts). Sessions are capped at
    ``max_sessions`` and closed after ``idle_seconds`` without a request, which frees
    their env (a sandbox worker, a browser). A ``token`` makes every request carry
    ``Authorization: Bearer <token>``; a bind address other than loopback needs one.
    """

    def __init__(
        self,
        env_id: str,
        host: str = "127.0.0.1",
        port: int = 0,
        env_kwargs: dict[str, Any] | None = None,
        protocol: str = "agentgym",
        *,
        token: str | None = None,
        max_sessions: int = 64,
        idle_seconds: float = 600.0,
        max_connections: int = MAX_CONNECTIONS,
    ):
        from agentgym.registry import make, spec

        if protocol not in ("agentgym", "openenv"):
            raise ValueError(f"protocol must be 'agentgym' or 'openenv', got {protocol!r}")
        self.loopback = is_loopback_host(host)
        if not self.loopback and not token:
            raise ValueError(
                f"serving on {host} (reachable from other machines) needs a token: --token or $AGENTGYM_SERVER_TOKEN"
            )
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        self._make = lambda: make(env_id, **self.env_kwargs)
        probe = self._make()  # a wrong id or kwarg fails here, not at the first client
        self.max_turns = int(getattr(probe, "max_turns", 1))
        self.agents = list(getattr(probe, "possible_agents", []))
        probe.close()
        if protocol == "openenv" and self.agents:
            raise ValueError(f"{env_id} is a multi-agent game; OpenEnv's protocol serves single-agent envs")
        self.env_spec = spec(env_id)
        self.env_cls: Any = self.env_spec.load_class()  # a class, or a factory function
        self.openenv = None
        if protocol == "openenv":
            from agentgym.interop.openenv_server import OpenEnvProtocol

            self.openenv = OpenEnvProtocol(self, max_sessions=max_sessions, idle_timeout=idle_seconds)
        self.sessions = SessionTable(max_sessions, idle_seconds)
        self.httpd = GuardedHTTPServer((host, port), self._handler(), token=token, max_connections=max_connections)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host.decode() if isinstance(host, bytes) else host}:{port}"

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def start(self) -> EnvServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="agentgym-serve", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.sessions.close_all()

    def make_env(self) -> Any:
        """A new instance of the served env."""
        return self._make()

    # ----- the API ---------------------------------------------------------------------
    def spec(self) -> dict[str, Any]:
        region = self.env_cls.held_out.region
        return {
            "env_id": self.env_id,
            "max_turns": self.max_turns,
            "agents": self.agents,
            "params": [
                {"name": d.name, "kind": type(d).__name__, "describe": d.describe()} for d in self.env_cls.param_space
            ],
            "held_out_region": dict(region.constraints) if region is not None else None,
        }

    def reset(self, body: dict[str, Any]) -> dict[str, Any]:
        sid = body.get("session")
        options = {}
        if body.get("task") is not None:
            task = body["task"]
            if not isinstance(task, dict) or not isinstance(task.get("params"), dict):
                raise ValueError("task must be {'params': {...}, 'seed': int}")
            options["task"] = self._full_task(task["params"], int(task.get("seed", 0)))
        controllers = body.get("controllers")
        if controllers is not None and not (
            isinstance(controllers, dict) and all(isinstance(v, str) for v in controllers.values())
        ):
            raise ValueError("controllers must be {seat: 'policy' or a scripted kind}")
        if sid is None:
            sid = secrets.token_hex(16)
            self.sessions.open(sid, lambda: seat_env(self._make()))
        lock, play = self.sessions.get(sid)
        with lock:
            turn = play.reset(options.get("task"), Seating(controllers), seed=body.get("seed"))
            info = dict(getattr(play, "info", {}))
        out = {"session": sid, "turn": _turn_json(turn)}
        if len(turn.observations) == 1:
            out.update(observation=next(iter(turn.observations.values())), info=info)
        return out

    def _full_task(self, params: dict[str, Any], seed: int) -> TaskSpec:
        """Params left out are filled from a training task drawn with ``seed``, as
        ``agentgym play -p`` does; the result is checked against the space (ValueError)."""
        import numpy as np

        space = getattr(self.env_cls, "param_space", None)
        if space is None or not set(space.names) - set(params):
            return TaskSpec(params, seed)
        base = self.env_cls.sample_train_task(np.random.default_rng(seed), env_kwargs=self.env_kwargs)
        return TaskSpec(space.validate({**base.params, **params}), seed)

    def step(self, body: dict[str, Any]) -> dict[str, Any]:
        lock, play = self.sessions.get(body.get("session"))
        if "action" not in body and not isinstance(body.get("moves"), dict):
            raise ValueError("step needs an 'action' (or 'moves': {seat: text})")
        with lock:
            turn = play.step(body["moves"] if "action" not in body else body["action"])
        out = {"turn": _turn_json(turn)}
        if len(turn.observations) == 1:
            ((seat, obs),) = turn.observations.items()
            mine = [(r, info) for s, r, info in turn.credits if s == seat]
            out.update(
                observation=obs,
                reward=sum(r for r, _ in mine),
                terminated=turn.done and turn.end_reason == "terminated",
                truncated=turn.done and turn.end_reason == "truncated",
                info=mine[-1][1] if mine else {},
            )
        return out

    def state(self, sid: str | None) -> dict[str, Any]:
        lock, play = self.sessions.get(sid)
        with lock:
            u = play.env.unwrapped
            return {
                "task": u.task.to_dict() if u.task is not None else None,
                "turn": u.turn,
                "done": play.done,
                # a game's transcript holds (seat, message) pairs
                "transcript": [dict(m) if isinstance(m, dict) else {"agent": m[0], **m[1]} for m in u._transcript],
            }

    def close_session(self, sid: str | None) -> dict[str, Any]:
        self.sessions.close(sid)
        return {"closed": sid}

    def _handler(self) -> type[GuardedHandler]:
        server = self

        class Handler(GuardedHandler):
            def _run(self, fn: Any, *args: Any) -> None:
                try:
                    self.reply(HTTPStatus.OK, fn(*args))
                except KeyError as e:
                    self.reply(HTTPStatus.NOT_FOUND, {"error": str(e.args[0] if e.args else e)})
                except (ValueError, TypeError, RuntimeError) as e:
                    self.reply(HTTPStatus.BAD_REQUEST, {"error": f"{type(e).__name__}: {e}"})

            def do_GET(self) -> None:  # noqa: N802 (the http.server API)
                self.handle_one(self._get)

            def do_POST(self) -> None:  # noqa: N802
                self.handle_one(self._post)

            def _get(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                if server.openenv is not None:
                    if parts.path == "/ws":
                        server.openenv.serve_websocket(self)
                        return
                    answer = server.openenv.get(parts.path)
                    if answer is None:
                        self.reply(HTTPStatus.NOT_FOUND, {"error": f"no endpoint GET {parts.path}"})
                    else:
                        self.reply(HTTPStatus.OK, answer)
                elif parts.path == "/health":
                    self.reply(HTTPStatus.OK, {"ok": True, "env_id": server.env_id})
                elif parts.path == "/spec":
                    self._run(server.spec)
                elif parts.path == "/state":
                    self._run(server.state, next(iter(query.get("session", [])), None))
                else:
                    self.reply(HTTPStatus.NOT_FOUND, {"error": f"no endpoint GET {parts.path}"})

            def _post(self) -> None:
                body = parse_json_object(read_body(self, _MAX_BODY, "application/json"))
                path = urlsplit(self.path).path
                route = {"/reset": server.reset, "/step": server.step}.get(path)
                if server.openenv is not None:
                    if path in ("/reset", "/step"):
                        self._run(server.openenv.post, path, body)
                    else:
                        self.reply(HTTPStatus.NOT_FOUND, {"error": f"no endpoint POST {path}"})
                elif path == "/close":
                    self._run(server.close_session, body.get("session"))
                elif route is None:
                    self.reply(HTTPStatus.NOT_FOUND, {"error": f"no endpoint POST {path}"})
                else:
                    self._run(route, body)

        return Handler


def _turn_json(turn: Turn) -> dict[str, Any]:
    return {
        "movers": turn.movers,
        "observations": turn.observations,
        "credits": [[seat, reward, info] for seat, reward, info in turn.credits],
        "said": [list(s) for s in turn.said],
        "done": turn.done,
        "end_reason": turn.end_reason,
    }


class RemoteEnvError(RuntimeError):
    """The server answered with an error (its message is kept)."""


class RemoteEnv(gymnasium.Env):
    """A served env (see :class:`EnvServer`) as a local Gymnasium env: same reset/step/info."""

    metadata = {"render_modes": []}

    #: Largest answer read (a transcript as JSON); a larger one is an error, not a memory spike.
    max_answer_bytes = 64 << 20

    def __init__(self, url: str, timeout: float = 60.0, token: str | None = None):
        self.url = url.rstrip("/")
        self.timeout = float(timeout)
        self.token = token if token is not None else os.environ.get("AGENTGYM_SERVER_TOKEN")
        self.remote_spec = self._call("GET", "/spec")
        self.env_id = self.remote_spec["env_id"]
        self.max_turns = int(self.remote_spec["max_turns"])
        self.observation_space = ChatSpace()
        self.action_space = gymnasium.spaces.Text(max_length=100_000)
        self.session: str | None = None

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            return request_json(req, self.timeout, self.max_answer_bytes)
        except urllib.error.HTTPError as e:
            raise RemoteEnvError(f"{method} {path}: {error_text(e)}") from None
        except ResponseTooLarge as e:
            raise RemoteEnvError(f"{method} {path}: {e}") from None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        body: dict[str, Any] = {"session": self.session, "seed": seed}
        task = (options or {}).get("task")
        if task is not None:
            task = task if isinstance(task, TaskSpec) else TaskSpec(task["params"], task.get("seed", 0))
            body["task"] = task.to_dict()
        out = self._call("POST", "/reset", body)
        self.session = out["session"]
        return out["observation"], out["info"]

    def step(self, action: Any):
        if self.session is None:
            raise RuntimeError("call reset() before step()")
        out = self._call("POST", "/step", {"session": self.session, "action": action})
        return out["observation"], out["reward"], out["terminated"], out["truncated"], out["info"]

    def state(self) -> dict[str, Any]:
        return self._call("GET", f"/state?session={self.session}")

    def close(self) -> None:
        if self.session is not None:
            try:
                self._call("POST", "/close", {"session": self.session})
            except (RemoteEnvError, OSError):
                pass
            self.session = None
