"""Registration of environments as data: ``id -> entry point + kwargs``.

Built-in families and third-party packages register the same way: a package declares
an entry point in the group ``agentgym.envs`` pointing at a function that calls
:func:`register`. Discovery runs once, on first use of :func:`make` or
:func:`list_envs` (and on ``import agentgym``). Every id is registered with Gymnasium
too, so ``gymnasium.make("math/arithmetic-v0")`` works after ``import agentgym``.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import FrameType
from typing import Any

import gymnasium

from agentgym.env import TaskFamily, TextEnv

ENTRY_POINT_GROUP = "agentgym.envs"


class EnvNotFound(KeyError):
    """No environment is registered under the requested id."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


@dataclass
class EnvSpec:
    """Metadata of a registered environment."""

    id: str
    entry_point: str | Callable[..., TextEnv]
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    #: The distribution (package) that registered it, when it came from an entry point.
    source: str = "agentgym"

    def load_class(self) -> Callable[..., TextEnv]:
        if callable(self.entry_point):
            return self.entry_point
        module, _, attr = self.entry_point.partition(":")
        if not attr:
            raise ValueError(f"entry point {self.entry_point!r} of {self.id!r} must look like 'module:Class'")
        return getattr(importlib.import_module(module), attr)

    def family_class(self) -> type[TaskFamily]:
        """The registered class, to read its task space and held-out split without building
        an env; a TypeError when the entry point is a factory function (it has neither)."""
        cls = self.load_class()
        if not (isinstance(cls, type) and issubclass(cls, TaskFamily)):
            raise TypeError(f"the entry point of {self.id!r}, {cls!r}, is not a TextEnv or multi-agent game class")
        return cls

    def make(self, **kwargs: Any) -> TextEnv:
        env = self.load_class()(**{**self.kwargs, **kwargs})
        if not isinstance(env, TextEnv):
            from agentgym.multiagent import is_multiagent

            if not is_multiagent(env):
                raise TypeError(
                    f"{self.id!r} built a {type(env).__name__}, which is neither an agentgym TextEnv "
                    "nor a multi-agent TextAECEnv/TextParallelEnv"
                )
        return env


_REGISTRY: dict[str, EnvSpec] = {}
_current_source: list[str] = []
_discovered = False


def register(
    id: str,
    entry_point: str | Callable[..., TextEnv],
    kwargs: dict[str, Any] | None = None,
    description: str = "",
    *,
    gymnasium_id: bool = True,
) -> EnvSpec:
    """Register an environment under ``id`` (``namespace/name-vN`` as in Gymnasium).

    ``entry_point`` is ``"module:Class"`` (imported lazily) or a callable. Multi-agent
    games (:mod:`agentgym.multiagent`) register the same way with ``gymnasium_id=False``:
    they are PettingZoo envs, not Gymnasium ones. Registering an
    id again with a different entry point or kwargs replaces the earlier spec with a
    warning; repeating the same registration is silent.

    Plugins call this from their ``agentgym.envs`` hook, which may run while ``agentgym``
    itself is still importing: import ``agentgym`` (or ``agentgym.registry``) lazily
    inside the hook or at the top of a light module, never heavy env code.
    """
    if not isinstance(id, str) or not id or " " in id:
        raise ValueError(f"an env id must be a non-empty string without spaces, got {id!r}")
    old = _REGISTRY.get(id)
    if old is not None and (old.entry_point, old.kwargs) != (entry_point, dict(kwargs or {})):
        warnings.warn(f"re-registering env {id!r}; the earlier registration is replaced", stacklevel=2)
    spec = EnvSpec(
        id=id,
        entry_point=entry_point,
        kwargs=dict(kwargs or {}),
        description=description,
        source=_current_source[-1] if _current_source else _caller_package(),
    )
    _REGISTRY[id] = spec
    if gymnasium_id:
        if id in gymnasium.registry:
            del gymnasium.registry[id]
        gymnasium.register(
            id=id,
            entry_point=entry_point,
            kwargs=dict(kwargs or {}),
            # Our envs end on their own; the passive checker warns on text spaces.
            disable_env_checker=True,
        )
    return spec


def _caller_package() -> str:
    """Where a registration outside an entry point comes from: agentgym's own code says
    "agentgym", a user's module says "module NAME" (its top-level name)."""
    frame: FrameType | None = sys._getframe(2)  # register() <- its caller
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    name = frame.f_globals.get("__name__", "") if frame is not None else ""
    if not name or name.split(".")[0] == "agentgym":
        return "agentgym"
    return f"module {name}" if name != "__main__" else "module __main__"


def discover(force: bool = False) -> None:
    """Load every ``agentgym.envs`` entry point (once). A broken plugin only warns."""
    global _discovered
    if _discovered and not force:
        return
    _discovered = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        _current_source.append(dist.name if dist is not None else ep.value)
        try:
            hook = ep.load()
            hook()
        except Exception as exc:  # a third-party bug must not break agentgym
            warnings.warn(f"agentgym.envs entry point {ep.name!r} ({ep.value}) failed: {exc!r}", stacklevel=2)
        finally:
            _current_source.pop()


def _resolve_prefixed(id: str) -> None:
    """Register ``prefix:name`` ids of other frameworks' envs on first use
    (``textarena:TicTacToe-v0``, ``verifiers:my_taskset``, ``openenv:http://host:port``;
    see :mod:`agentgym.interop`). A missing package or unknown name is an EnvNotFound
    saying which."""
    from agentgym.interop import RESOLVERS

    prefix, _, name = id.partition(":")
    target = RESOLVERS.get(prefix)
    if target is None or not name:
        return
    module, _, attr = target.partition(":")
    try:
        getattr(importlib.import_module(module), attr)(id)
    except (ImportError, ValueError) as exc:
        raise EnvNotFound(f"{id!r}: {exc}") from None


def spec(id: str) -> EnvSpec:
    """The :class:`EnvSpec` registered under ``id``; a clear error lists close matches."""
    discover()
    if id not in _REGISTRY and isinstance(id, str) and ":" in id:
        _resolve_prefixed(id)
    try:
        return _REGISTRY[id]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(id, list(_REGISTRY), n=3)
        hint = f" Did you mean {close}?" if close else ""
        raise EnvNotFound(
            f"no environment registered as {id!r}.{hint} `agentgym envs` lists the {len(_REGISTRY)} known ids."
        ) from None


def make(id: str, **kwargs: Any) -> TextEnv:
    """Build the environment registered under ``id``; ``kwargs`` override its defaults."""
    s = spec(id)
    env = s.make(**kwargs)
    env.env_id = id
    gym_spec = gymnasium.registry.get(id)
    if gym_spec is not None and env.spec is None:
        # What gymnasium.make would record, so tools that re-make the env from its spec work.
        env.spec = dataclasses.replace(gym_spec, kwargs={**gym_spec.kwargs, **kwargs})
    return env


def list_envs() -> list[EnvSpec]:
    """All registered environments, sorted by id."""
    discover()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]
