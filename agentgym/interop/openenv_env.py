"""An OpenEnv environment server, by URL, as an agentgym env: ``openenv:http://host:port``.

The server is the user's (``uvicorn my_env.server.app:app``, a Docker container, a Space,
or ``agentgym serve ENV --openenv``); agentgym talks to it through OpenEnv's own client
(``openenv.core.GenericEnvClient``, one WebSocket session per env instance).

- reset sends the task's seed (``reset(seed=...)``); step sends the reply as the action's
  one string field, read from the server's ``/schema`` (``{"message": text}`` for most
  text envs; ``action_field=`` names another). With no single string field the reply
  must be the action as a JSON object, and text that is not one gets an error
  observation, as any agentgym env answers unusable input.
- Observations become one user message: the observation's ``messages`` when it has chat
  messages (an agentgym server's), else its one string field, else its fields as JSON.
- Reward and the end of the episode are the server's; ``success`` is the server's
  ``metadata["success"]`` when it says, else a reward of at least ``success_at``.

What the server does not provide is absent, not invented: the parameter space is empty (a
teacher has nothing to steer), held-out tasks are held-out seeds only (whether the
server makes new content from a seed is up to it), and there is no oracle.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import numpy as np

from agentgym.env import Feedback, TextEnv
from agentgym.spaces import HeldOut, Params, ParamSpace

PREFIX = "openenv:"


class OpenEnvEnv(TextEnv):
    """A session on an OpenEnv server as a TextEnv (multi-turn, up to ``max_turns``)."""

    param_space = ParamSpace([])
    held_out = HeldOut(content_fraction=0.0)
    url: str = ""

    def __init__(
        self,
        url: str | None = None,
        render_mode: str | None = None,
        max_turns: int = 32,
        success_at: float = 1.0,
        action_field: str | None = None,
        timeout: float = 60.0,
    ):
        super().__init__(render_mode=render_mode)
        self.url = (url or type(self).url).rstrip("/")
        if not self.url:
            raise ValueError("an OpenEnv env needs the server's url (openenv:http://host:port)")
        self.max_turns = max_turns
        self.success_at = float(success_at)
        self.timeout = float(timeout)
        self.action_field = action_field or _string_field(self._schema().get("action", {}))
        self._client: Any = None

    def _schema(self) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(f"{self.url}/schema", timeout=self.timeout) as resp:
                return json.loads(resp.read(1 << 20))
        except (OSError, ValueError) as exc:
            raise ValueError(f"no OpenEnv server answers at {self.url}/schema ({exc})") from None

    def _session(self) -> Any:
        if self._client is None:
            from openenv.core import GenericEnvClient

            self._client = GenericEnvClient(base_url=self.url, message_timeout_s=self.timeout).sync()
            self._client.connect()
        return self._client

    def _reset(self, params: Params, rng: np.random.Generator) -> list[dict[str, str]]:
        return _messages(self._session().reset(seed=int(self._opened_task().seed)).observation)

    def _step(self, action: str) -> Feedback:
        if self.action_field is not None:
            payload: Any = {self.action_field: action}
        else:
            try:
                payload = json.loads(action)
            except ValueError:
                payload = None
            if not isinstance(payload, dict):
                error = "the action must be a JSON object matching the server's action schema"
                return Feedback([{"role": "user", "content": f"Error: {error}"}], {"invalid_action": 0.0}, error=error)
        try:
            result = self._session().step(payload)
        except RuntimeError as exc:  # the server refused the action ("Server error: ...")
            return Feedback([{"role": "user", "content": f"Error: {exc}"}], {"invalid_action": 0.0}, error=str(exc))
        reward = float(result.reward or 0.0)
        meta = result.metadata or {}
        success = bool(meta["success"]) if isinstance(meta.get("success"), bool) else reward >= self.success_at
        messages = _messages(result.observation)
        return Feedback(messages, {"reward": reward}, terminated=bool(result.done), success=success)

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:  # the server may be gone already
                pass
            self._client = None


def _string_field(schema: dict[str, Any]) -> str | None:
    """The action schema's one string field (ignoring ``metadata``), if it has exactly one."""
    props = {k: v for k, v in (schema.get("properties") or {}).items() if k != "metadata"}
    strings = [k for k, v in props.items() if isinstance(v, dict) and v.get("type") == "string"]
    return strings[0] if len(strings) == 1 and len(props) == 1 else None


def _messages(observation: Any) -> list[dict[str, str]]:
    obs = dict(observation or {})
    msgs = obs.get("messages")
    if isinstance(msgs, list) and all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in msgs):
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in msgs]
    fields = {k: v for k, v in obs.items() if k != "metadata"}
    strings = [v for v in fields.values() if isinstance(v, str)]
    if len(fields) == 1 and len(strings) == 1:
        return [{"role": "user", "content": strings[0]}]
    return [{"role": "user", "content": json.dumps(fields, ensure_ascii=False, default=str)}] if fields else []


def register_id(env_id: str) -> None:
    """Register ``openenv:<url>`` (the registry's resolver for the prefix)."""
    from agentgym.registry import register

    url = env_id.removeprefix(PREFIX)
    if not url.startswith(("http://", "https://", "ws://", "wss://")):
        raise ValueError(f"an OpenEnv id is openenv:<server url>, e.g. openenv:http://127.0.0.1:8000; got {url!r}")
    cls = type("OpenEnv_remote", (OpenEnvEnv,), {"url": url, "__doc__": f"The OpenEnv server at {url}."})
    register(env_id, cls, description=f"OpenEnv server at {url}", gymnasium_id=False)
