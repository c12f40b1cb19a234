"""An installed verifiers taskset package as an agentgym env: ``verifiers:<package>``.

verifiers (0.4) ships environments as taskset packages: a module exporting one
``vf.Taskset`` subclass in ``__all__``, whose ``load()`` yields ``vf.Task``\\ s (a prompt
plus ``@vf.reward`` scoring methods). ``agentgym.make("verifiers:my_taskset")`` (or
``env.id: verifiers:my_taskset`` in a run config) loads it and plays each task as one
turn: the task's system prompt and prompt open the episode, the agent replies once, and
the task's own rewards score the reply (``Task.score`` on a verifiers ``Trace`` of the
conversation). Each reward's weighted value is a ``reward_parts`` entry; ``success`` is a
total of at least ``success_at`` (default 1.0).

Tasks and held-out:

- A taskset whose config has a ``split`` field with an evaluation value (``test``,
  ``eval``, ``validation`` or ``dev``) is loaded twice: its default split for training
  and that one for evaluation. The space is ``split`` x ``row``; the evaluation split is
  the held-out region, and any problem of it (by content) is never trained on, even if
  the training split repeats it.
- Otherwise the tasks are split by content as agentgym's own envs are (a stable hash of
  each task's data decides; a quarter is held out).

What is not carried over, and is refused or reported rather than invented:

- Tasks with no prompt (a taskset whose own ``Env.run`` opens the conversation with a
  scripted user), tools, and harness programs need verifiers' runtime and model-serving
  loop: such a taskset is refused when it loads. Multi-turn verifiers envs are therefore
  not supported; single-turn tasksets are.
- Rewards that need a runtime (a sandbox) are skipped by verifiers' own scoring when
  there is none; they are absent from ``reward_parts``.
- There is no oracle, and no parameter space beyond the task index (a teacher can only
  pick rows).
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any, ClassVar

import numpy as np

from agentgym.env import Feedback, TextEnv
from agentgym.spaces import Categorical, HeldOut, Integer, Params, ParamSpace, Region

PREFIX = "verifiers:"
#: Values of a taskset config's ``split`` field taken as its evaluation split, in this order.
EVAL_SPLITS = ("test", "eval", "validation", "dev")
#: At most this many tasks are read from a taskset (an infinite one is cut here).
MAX_TASKS = 10_000


def _config_splits(config_type: type) -> tuple[str | None, str | None]:
    """(the default split, the evaluation split) a taskset config declares, or Nones."""
    field = getattr(config_type, "model_fields", {}).get("split")
    if field is None:
        return None, None
    choices = getattr(field.annotation, "__args__", ())
    default = field.default if isinstance(field.default, str) else None
    evaluation = next((s for s in EVAL_SPLITS if s in choices and s != default), None)
    return default, evaluation


def taskset_class(taskset_id: str) -> type:
    """The ``vf.Taskset`` subclass that package ``taskset_id`` exports in ``__all__``.

    This is verifiers' documented contract for a taskset package. Its own loader first
    looks among verifiers' built-in tasksets, whose package imports the MCP 2 server API;
    with the MCP 1 that OpenEnv needs installed beside it that fails, so the installed
    package is imported directly (``owner/name@version`` and dashes as verifiers reads them).
    """
    import importlib

    from verifiers.v1.taskset import Taskset

    module = importlib.import_module(taskset_id.rsplit("/", 1)[-1].split("@", 1)[0].replace("-", "_").lower())
    found = [
        obj
        for name in getattr(module, "__all__", ())
        if isinstance(obj := getattr(module, name, None), type) and issubclass(obj, Taskset) and obj is not Taskset
    ]
    if len(found) != 1:
        raise ValueError(
            f"module {module.__name__!r} must export exactly one vf.Taskset subclass in __all__ (found {len(found)})"
        )
    return found[0]


def taskset_config_type(taskset_id: str) -> type:
    """The config class of taskset ``taskset_id`` (its ``Taskset[Task, Config]`` parameter)."""
    from verifiers.v1.configs.taskset import TasksetConfig
    from verifiers.v1.taskset import Taskset
    from verifiers.v1.utils.generic import concrete_type

    return concrete_type(taskset_class(taskset_id), TasksetConfig, origin=Taskset) or TasksetConfig


def load_tasks(taskset_id: str, split: str | None = None, **kwargs: Any) -> list[Any]:
    """The tasks of verifiers taskset ``taskset_id`` (its ``split``, if given), at most :data:`MAX_TASKS`."""
    config = taskset_config_type(taskset_id)(id=taskset_id, **kwargs, **({"split": split} if split else {}))
    taskset = taskset_class(taskset_id)(config)
    tasks = list(taskset.take(MAX_TASKS))
    if not tasks:
        raise ValueError(f"verifiers taskset {taskset_id!r} yielded no task")
    if any(t.data.prompt is None for t in tasks):
        raise ValueError(
            f"verifiers taskset {taskset_id!r} has tasks with no prompt: its own Env.run opens the conversation "
            "(a scripted user), which needs verifiers' runtime; agentgym plays single-turn tasksets"
        )
    return tasks


def content_hash(task: Any) -> str:
    """A task's content: verifiers' hash of its data without the position in the taskset."""
    from verifiers.v1.task import task_key

    return task_key(task.data.model_dump(mode="json", exclude_none=True, exclude={"idx"}))


def _messages(task: Any) -> list[dict[str, str]]:
    from verifiers.v1.types import content_text

    data = task.data
    out = [{"role": "system", "content": data.system_prompt}] if data.system_prompt else []
    if isinstance(data.prompt, str):
        return out + [{"role": "user", "content": data.prompt}]
    return out + [{"role": m.role, "content": content_text(m.content) or ""} for m in data.prompt]


def _run(coro: Any) -> Any:
    """Run a coroutine to its end from sync code (in a helper thread if a loop already runs here)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


class VerifiersEnv(TextEnv):
    """One verifiers taskset as a single-turn TextEnv; :func:`env_class` makes one per taskset."""

    taskset_id: ClassVar[str] = ""
    train_split: ClassVar[str | None] = None
    eval_split: ClassVar[str | None] = None
    _loaded: ClassVar[dict[str, dict[str, list[Any]]]] = {}
    max_turns = 1

    def __init__(self, render_mode: str | None = None, success_at: float = 1.0, **taskset_kwargs: Any):
        super().__init__(render_mode=render_mode)
        self.success_at = float(success_at)
        self.taskset_kwargs = dict(taskset_kwargs)
        self.splits = self._splits(self.taskset_kwargs)
        eval_tasks = self.splits.get(self.eval_split or "", [])
        self._eval_contents = {content_hash(t) for t in eval_tasks}
        self._current: Any = None
        self._opening: list[dict[str, str]] = []

    @classmethod
    def _splits(cls, kwargs: dict[str, Any]) -> dict[str, list[Any]]:
        key = json.dumps(kwargs, sort_keys=True, default=repr)
        if key not in cls._loaded:
            splits = {cls.train_split or "train": load_tasks(cls.taskset_id, cls.train_split, **kwargs)}
            if cls.eval_split:
                splits[cls.eval_split] = load_tasks(cls.taskset_id, cls.eval_split, **kwargs)
            cls._loaded[key] = splits
        return cls._loaded[key]

    def _task_at(self, params: Params) -> Any:
        tasks = self.splits[params.get("split", self.train_split or "train")]
        return tasks[int(params["row"]) % len(tasks)]

    # ----- content: the eval split's problems are the held-out ones ------------------------
    def content_key(self, task: Any) -> str:
        return content_hash(self._task_at(self.param_space.validate(task.params)))

    def is_held_out_content(self, key: str) -> bool:
        if self.eval_split:
            return key in self._eval_contents
        return super().is_held_out_content(key)

    # ----- the episode ------------------------------------------------------------------
    def _reset(self, params: Params, rng: np.random.Generator) -> list[dict[str, str]]:
        self._current = self._task_at(params)
        self._opening = _messages(self._current)
        return [dict(m) for m in self._opening]

    def _step(self, action: str) -> Feedback:
        from verifiers.v1 import AgentConfig
        from verifiers.v1.graph import MessageNode
        from verifiers.v1.trace import AgentInfo, Trace, TraceTask
        from verifiers.v1.types import AssistantMessage, SystemMessage, UserMessage

        task = self._current
        kinds = {"system": SystemMessage, "user": UserMessage, "assistant": AssistantMessage}
        messages = [kinds.get(m["role"], UserMessage)(content=m["content"]) for m in self._opening]
        messages.append(AssistantMessage(content=action))
        trace = Trace(
            task=TraceTask(type=type(task).__name__, data=task.data, key=task.key, hash=task.hash),
            agent=AgentInfo(config=AgentConfig()),
            nodes=[
                MessageNode(parent=i - 1 if i else None, message=m, sampled=i == len(messages) - 1)
                for i, m in enumerate(messages)
            ],
        )
        try:
            _run(task.score(trace))
        except Exception as exc:  # verifiers wraps a reward's exception in TaskError
            return Feedback([], {}, terminated=True, error=f"the taskset's scoring failed: {exc}")
        parts = {name: float(r.value) for name, r in trace.rewards.items() if r is not None}
        return Feedback([], parts, terminated=True, success=sum(parts.values()) >= self.success_at)


def env_class(taskset_id: str) -> type[VerifiersEnv]:
    """The :class:`VerifiersEnv` subclass for the installed taskset ``taskset_id`` (its
    tasks are loaded here, once, to size the space)."""
    train, evaluation = _config_splits(taskset_config_type(taskset_id))
    attrs: dict[str, Any] = {"taskset_id": taskset_id, "train_split": train, "eval_split": evaluation, "_loaded": {}}
    cls: type[VerifiersEnv] = type(f"Verifiers_{taskset_id.replace('-', '_')}", (VerifiersEnv,), attrs)
    splits = cls._splits({})
    longest = max(len(tasks) for tasks in splits.values())
    if evaluation:
        cls.param_space = ParamSpace(
            [
                Categorical("split", (train or "train", evaluation), description="the taskset's split"),
                Integer("row", 0, longest - 1, description="task index (modulo the split's size)"),
            ]
        )
        cls.held_out = HeldOut(region=Region({"split": [evaluation]}, name=f"{evaluation} split"))
    else:
        cls.param_space = ParamSpace([Integer("row", 0, longest - 1, description="task index")])
        cls.held_out = HeldOut()
    cls.__doc__ = f"verifiers taskset {taskset_id!r} (see agentgym.interop.verifiers_env)."
    return cls


def register_id(env_id: str) -> None:
    """Register ``verifiers:<taskset package>`` (the registry's resolver for the prefix)."""
    from agentgym.registry import register

    taskset_id = env_id.removeprefix(PREFIX)
    try:
        cls = env_class(taskset_id)
    except ModuleNotFoundError as exc:
        raise ValueError(f"no installed verifiers taskset {taskset_id!r} ({exc})") from None
    register(env_id, cls, description=f"verifiers taskset {taskset_id}", gymnasium_id=False)
