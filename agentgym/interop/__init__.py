"""agentgym envs elsewhere, other envs here.

- :mod:`~agentgym.interop.openenv_server`: ``agentgym serve ENV_ID --openenv`` speaks
  OpenEnv's protocol, so OpenEnv's client (and the trainers built on it) runs any
  single-agent agentgym env.
- :mod:`~agentgym.interop.openenv_env`: an OpenEnv server by URL as an agentgym env
  (id ``openenv:http://host:port``).
- :mod:`~agentgym.interop.verifiers_env`: an installed verifiers taskset package as an
  agentgym env (id ``verifiers:<package>``), its rewards as ``reward_parts``.
- :mod:`~agentgym.interop.textarena_env`: a TextArena game as a PettingZoo AEC game
  (id ``textarena:<GameId>``), for per-seat GRPO and self-play.

The prefixed ids are made on first use (:func:`agentgym.registry.spec` asks
:data:`RESOLVERS`), so nothing here is imported before it is needed.
"""

from __future__ import annotations

#: id prefix -> "module:function" that registers the id (and returns nothing).
RESOLVERS = {
    "openenv": "agentgym.interop.openenv_env:register_id",
    "verifiers": "agentgym.interop.verifiers_env:register_id",
    "textarena": "agentgym.interop.textarena_env:register_id",
}
