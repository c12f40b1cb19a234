"""An installed verifiers taskset package as an agentgym env: ``verifiers:<package>``.

verifiers (0.4) ships environments as taskset packages: a module exporting one
``vf.Taskset`` subclass in ``__all__``, whose ``load()`` yields ``vf.Task``\\ s (a prompt
plus ``@vf.reward`` scoring methods), and optionally one ``vf.Env`` subclass whose ``run``
plays each task its own way. ``agentgym.make("verifiers:my_taskset")`` (or
``env.id: verifiers:my_taskset`` in a run config) loads it. Each reward's weighted value
is a ``reward_parts`` entry; ``success`` is a total of at least ``success_at`` (default 1.0).

- Without a ``vf.Env`` (verifiers would use its ``SingleAgentEnv``), each task is one
  turn: its system prompt and prompt open the episode, the agent replies once, and the
  task's rewards score the reply (``Task.score`` on a verifiers ``Trace``).
- With one, the episode is multi-turn and is verifiers' own: the package's ``Env`` runs
  ``run_episode`` in a background thread's event loop, its seats driven by an in-process
  harness (:mod:`agentgym.interop.verifiers_harness`) through verifiers' interception
  server, whose model client hands each call of agentgym's seat to the caller: ``reset``
  returns the conversation up to the first call, each ``step(reply)`` is that call's
  answer and returns what the env added before the next one (a scripted user's turn), and
  the episode ends when ``run_episode`` does, with the seat's trace's rewards (their mean
  if the env ran the seat several times). ``seat`` picks agentgym's role (default the env
  config's first), ``opponent`` (``messages -> str``) answers the others, ``max_turns`` is
  the seat's verifiers turn limit (reached: the episode is truncated, still scored). A
  failure inside the taskset ends the episode with ``error`` set; a reset or ``close``
  cancels the running episode and joins its thread.

Tasks and held-out:

- A taskset whose config has a ``split`` field with an evaluation value (``test``,
  ``eval``, ``validation`` or ``dev``) is loaded twice: its default split for training
  and that one for evaluation. The space is ``split`` x ``row``; the evaluation split is
  the held-out region, and any problem of it (by content) is never trained on, even if
  the training split repeats it.
- Otherwise the tasks are split by content as agentgym's own envs are (a stable hash of
  each task's data decides; a quarter is held out).

What is not carried over, and is refused or reported rather than invented:

- Tasks with no prompt in a package with no ``vf.Env`` (nothing would open the
  conversation) are refused when the taskset loads. Tools (MCP servers), harness programs
  and sandboxes are not provided: agentgym's harness calls the model once per segment with
  no tools, and a taskset's own harness is replaced by it.
- Another seat asked with no ``opponent`` ends the episode with an error naming it.
- Rewards that need a runtime (a sandbox) are skipped by verifiers' own scoring when
  there is none; they are absent from ``reward_parts``.
- There is no oracle, and no parameter space beyond the task index (a teacher can only
  pick rows).
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from agentgym.env import Feedback, TextEnv, positive_int
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


def _exported(taskset_id: str, base: type) -> list[type]:
    """The subclasses of ``base`` that package ``taskset_id`` exports in ``__all__``."""
    import importlib

    module = importlib.import_module(taskset_id.rsplit("/", 1)[-1].split("@", 1)[0].replace("-", "_").lower())
    return [
        obj
        for name in getattr(module, "__all__", ())
        if isinstance(obj := getattr(module, name, None), type) and issubclass(obj, base) and obj is not base
    ]


def taskset_class(taskset_id: str) -> type:
    """The ``vf.Taskset`` subclass that package ``taskset_id`` exports in ``__all__``.

    This is verifiers' documented contract for a taskset package. Its own loader first
    looks among verifiers' built-in tasksets, whose package imports the MCP 2 server API;
    with the MCP 1 that OpenEnv needs installed beside it that fails, so the installed
    package is imported directly (``owner/name@version`` and dashes as verifiers reads them).
    """
    from verifiers.v1.taskset import Taskset

    found = _exported(taskset_id, Taskset)
    if len(found) != 1:
        raise ValueError(
            f"package {taskset_id!r} must export exactly one vf.Taskset subclass in __all__ (found {len(found)})"
        )
    return found[0]


def taskset_config_type(taskset_id: str) -> type:
    """The config class of taskset ``taskset_id`` (its ``Taskset[Task, Config]`` parameter)."""
    from verifiers.v1.configs.taskset import TasksetConfig
    from verifiers.v1.taskset import Taskset
    from verifiers.v1.utils.generic import concrete_type

    return concrete_type(taskset_class(taskset_id), TasksetConfig, origin=Taskset) or TasksetConfig


def env_type(taskset_id: str) -> type | None:
    """The ``vf.Env`` subclass package ``taskset_id`` exports in ``__all__`` (its own run
    loop: a scripted user, an opponent, several seats), or None (verifiers then plays the
    taskset with its ``SingleAgentEnv``: one seat, one segment per task)."""
    from verifiers.v1.env import Env

    found = _exported(taskset_id, Env)
    if len(found) > 1:
        raise ValueError(f"package {taskset_id!r} exports {len(found)} vf.Env subclasses in __all__; one at most")
    return found[0] if found else None


def load_tasks(taskset_id: str, split: str | None = None, **kwargs: Any) -> list[Any]:
    """The tasks of verifiers taskset ``taskset_id`` (its ``split``, if given), at most :data:`MAX_TASKS`."""
    config = taskset_config_type(taskset_id)(id=taskset_id, **kwargs, **({"split": split} if split else {}))
    taskset = taskset_class(taskset_id)(config)
    tasks = list(taskset.take(MAX_TASKS))
    if not tasks:
        raise ValueError(f"verifiers taskset {taskset_id!r} yielded no task")
    if any(t.data.prompt is None for t in tasks) and env_type(taskset_id) is None:
        raise ValueError(
            f"verifiers taskset {taskset_id!r} has tasks with no prompt and its package exports no vf.Env "
            "whose run() would open the conversation"
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


def _allow_taskset_loading() -> None:
    """Let verifiers' own loaders (which a ``vf.Env`` uses) import a taskset package.

    They first look for the id among ``verifiers.v1.tasksets``, whose ``__init__`` imports
    the MCP 2 server API; with MCP 1 installed (OpenEnv's pin) that import fails, and every
    lookup with it. Then the package is replaced in ``sys.modules`` by a stand-in over the
    same folder without that ``__init__``: built-in tasksets that import still do, and an
    installed taskset package is found where verifiers looks next (a top-level import).
    """
    import os
    import sys
    import types

    from agentgym.interop import verifiers_harness

    sys.modules.setdefault(verifiers_harness.HARNESS_ID, verifiers_harness)
    try:
        import verifiers.v1.tasksets  # noqa: F401
    except ModuleNotFoundError:
        import verifiers.v1

        stand_in = types.ModuleType("verifiers.v1.tasksets")
        stand_in.__path__ = [os.path.join(os.path.dirname(verifiers.v1.__file__), "tasksets")]
        sys.modules["verifiers.v1.tasksets"] = stand_in


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


class _Stop(Exception):
    """Ends a rollout from the model side with a reason for agentgym (not a verifiers error)."""


class _Rollout:
    """One verifiers episode, played in a background thread's event loop.

    The taskset's own ``Env.run_episode`` runs there with agentgym's harness on every seat
    and an interception server whose model client is :meth:`answer`: a call from agentgym's
    seat is handed to the caller (an ``("ask", messages)`` event on :attr:`events`) and
    waits for :meth:`reply`; another seat's is answered by ``opponent`` (or ends the
    episode). The episode's end is a ``("done", Episode)`` event, a failure ``("error", text)``.
    """

    def __init__(self, env: Any, task: Any, seat: str, seats: list[str], opponent: Any) -> None:
        self.env, self.task, self.seat, self.seats, self.opponent = env, task, seat, seats, opponent
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task[Any] | None = None
        self._reply: asyncio.Future[str] | None = None
        self._cancelled = threading.Event()
        self._shown: dict[str, int] = {}  # per trace of agentgym's seat: messages already shown
        self.thread = threading.Thread(target=self._thread, name="agentgym-verifiers-rollout", daemon=True)
        self.thread.start()

    # ----- the rollout's thread ----------------------------------------------------------
    def _thread(self) -> None:
        try:
            asyncio.run(self._play())
        except BaseException as exc:  # reported to the caller, never raised in this thread
            self.events.put(("error", f"the verifiers rollout stopped: {type(exc).__name__}: {exc}"))

    async def _play(self) -> None:
        from verifiers.v1.clients import EvalClientConfig, ModelContext

        self._loop, self._main = asyncio.get_running_loop(), asyncio.current_task()
        if self._cancelled.is_set():
            return
        env = self.env
        server = _handoff_server(self)
        async with env.shared_tools() as shared, server:
            env._shared_tools, env._interception = shared, server
            try:
                await env.start()
                episode = await env.run_episode(self.task, ModelContext(model="agentgym", client=EvalClientConfig()))
            finally:
                try:
                    await env.stop()
                finally:
                    env._shared_tools, env._interception = {}, None
        self.events.put(("done", episode))

    async def answer(self, seat: str, trace_id: str, messages: list[dict[str, Any]]) -> str:
        """The model's reply for ``seat`` on ``messages`` (what the handoff client asks).

        agentgym is shown what is new in the conversation of trace ``trace_id``; a new
        trace of its seat (another attempt the env runs) is shown from its beginning."""
        if seat != self.seat and len(self.seats) > 1:
            if self.opponent is None:
                raise _Stop(f"seat {seat!r} of the verifiers env has no policy here (pass opponent=...)")
            try:
                return str(
                    self.opponent(
                        [{"role": m.get("role", "user"), "content": _text(m.get("content"))} for m in messages]
                    )
                )
            except Exception as exc:
                raise _Stop(f"the opponent policy failed: {type(exc).__name__}: {exc}") from exc
        assert self._loop is not None
        new = [
            {"role": str(m.get("role", "user")), "content": _text(m.get("content"))}
            for m in messages[self._shown.get(trace_id, 0) :]
        ]
        self._reply = self._loop.create_future()
        self.events.put(("ask", new))
        text = await self._reply
        self._shown[trace_id] = len(messages) + 1  # the reply itself is the agent's own message
        return text

    def stop(self, reason: str) -> None:
        """End the episode from inside the loop with ``reason`` for the caller."""
        self.events.put(("error", reason))
        if self._main is not None:
            self._main.cancel()

    # ----- the caller's side -----------------------------------------------------------
    def next_event(self, timeout: float) -> tuple[str, Any]:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            self.cancel()
            return "error", f"the verifiers rollout neither asked nor ended within {timeout:g}s"

    def reply(self, text: str) -> None:
        loop, future = self._loop, self._reply
        if loop is not None and future is not None:

            def deliver() -> None:
                if not future.done():
                    future.set_result(text)

            loop.call_soon_threadsafe(deliver)

    def cancel(self, wait: float = 30.0) -> None:
        """Cancel the episode (its runtime and servers are torn down) and join the thread."""
        self._cancelled.set()
        loop, main = self._loop, self._main
        if loop is not None and main is not None:
            try:
                loop.call_soon_threadsafe(main.cancel)
            except RuntimeError:  # the loop already closed: the thread is ending
                pass
        self.thread.join(wait)


_HANDOFF_TYPES: dict[str, type] = {}


def _handoff_server(rollout: _Rollout) -> Any:
    """An interception server (verifiers' own) whose model client asks ``rollout``."""
    if not _HANDOFF_TYPES:
        from verifiers.v1.clients import Client
        from verifiers.v1.interception import InterceptionServer

        class HandoffClient(Client):
            def __init__(self, owner: _Rollout) -> None:
                self.owner = owner

            async def get_response(self, dialect: Any, body: dict, sampling: Any, session_id: Any = None,
                                   turn: Any = None, headers: Any = None) -> Any:  # fmt: skip
                trace = getattr(turn, "trace", None)
                seat = getattr(getattr(trace, "agent", None), "name", "") or ""
                messages = list(body.get("messages", []))
                try:
                    text = await self.owner.answer(seat, str(getattr(trace, "id", session_id)), messages)
                except _Stop as exc:
                    self.owner.stop(str(exc))
                    raise asyncio.CancelledError from None
                raw = {
                    "id": "agentgym",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": str(body.get("model", "agentgym")),
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                    ],
                }
                response = dialect.parse_response(dialect.validate_response(raw))
                response.raw = raw
                return response

        class HandoffServer(InterceptionServer):
            def __init__(self, owner: _Rollout) -> None:
                super().__init__()
                self.handoff = HandoffClient(owner)

            def _client(self, config: Any) -> Any:
                return self.handoff

        _HANDOFF_TYPES["server"] = HandoffServer
    return _HANDOFF_TYPES["server"](rollout)


class VerifiersEnv(TextEnv):
    """One verifiers taskset as a TextEnv; :func:`env_class` makes one per taskset.

    Single-turn unless the taskset's package exports its own ``vf.Env`` (:attr:`vf_env`);
    then multi-turn, with these keyword arguments besides the taskset's config fields:
    ``seat`` (the role agentgym's agent plays; default the env config's first), ``opponent``
    (a callable ``messages -> str`` answering every other seat; without one, an episode in
    which another seat is asked ends with an error), ``max_turns`` (the agent's replies per
    episode, also the seat's verifiers turn limit) and ``turn_timeout`` (seconds to wait for
    the taskset between two replies).
    """

    taskset_id: ClassVar[str] = ""
    train_split: ClassVar[str | None] = None
    eval_split: ClassVar[str | None] = None
    #: The taskset package's own ``vf.Env`` subclass (multi-turn), or None (single-turn).
    vf_env: ClassVar[type | None] = None
    _loaded: ClassVar[dict[str, dict[str, list[Any]]]] = {}
    max_turns = 1

    def __init__(
        self,
        render_mode: str | None = None,
        success_at: float = 1.0,
        *,
        seat: str | None = None,
        opponent: Callable[[list[dict[str, str]]], str] | None = None,
        max_turns: int | None = None,
        turn_timeout: float = 300.0,
        **taskset_kwargs: Any,
    ):
        super().__init__(render_mode=render_mode)
        self.success_at = float(success_at)
        self.taskset_kwargs = dict(taskset_kwargs)
        self.splits = self._splits(self.taskset_kwargs)
        eval_tasks = self.splits.get(self.eval_split or "", [])
        self._eval_contents = {content_hash(t) for t in eval_tasks}
        self._current: Any = None
        self._opening: list[dict[str, str]] = []
        self._rollout: _Rollout | None = None
        self._ended: tuple[str, Any] | None = None
        if self.vf_env is None:
            if seat is not None or opponent is not None or (max_turns not in (None, 1)):
                raise ValueError(
                    f"verifiers taskset {self.taskset_id!r} is single-turn: seat/opponent/max_turns do not apply"
                )
            return
        self.max_turns = positive_int("max_turns", 10 if max_turns is None else max_turns)
        self.turn_timeout = float(turn_timeout)
        self.opponent = opponent
        self._vf, self.seats = self._verifiers_env(seat)
        self.seat = seat or self.seats[0]

    def _verifiers_env(self, seat: str | None) -> tuple[Any, list[str]]:
        """The taskset's ``vf.Env``, every seat on agentgym's harness in a local runtime."""
        from verifiers.v1.configs.agent import AgentConfig
        from verifiers.v1.configs.env import EnvConfig
        from verifiers.v1.env import Env
        from verifiers.v1.utils.generic import concrete_type

        from agentgym.interop.verifiers_harness import HARNESS_ID

        _allow_taskset_loading()
        assert self.vf_env is not None
        config_type = concrete_type(self.vf_env, EnvConfig, origin=Env) or EnvConfig
        seats = [name for name, f in config_type.model_fields.items() if isinstance(f.default, AgentConfig)]
        if not seats:
            raise ValueError(f"{self.vf_env.__name__} declares no agent seat")
        if seat is not None and seat not in seats:
            raise ValueError(f"seat {seat!r} is not one of {self.vf_env.__name__}'s seats {seats}")
        mine = seat or seats[0]
        raw: dict[str, Any] = {"taskset": {"id": self.taskset_id, **self.taskset_kwargs}}
        for name in seats:
            raw[name] = {"harness": {"id": HARNESS_ID}, "runtime": {"type": "subprocess"}}
        raw[mine]["max_turns"] = self.max_turns
        return self.vf_env(config_type.model_validate(raw)), seats

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
        if self.vf_env is not None:
            return self._start_rollout()
        self._opening = _messages(self._current)
        return [dict(m) for m in self._opening]

    def _step(self, action: str) -> Feedback:
        if self.vf_env is not None:
            return self._continue_rollout(action)
        return self._score_one_turn(action)

    def close(self) -> None:
        self._stop_rollout()
        super().close()

    # ----- multi-turn: the taskset's own Env.run in a background loop -----------------------
    def _stop_rollout(self) -> None:
        rollout, self._rollout, self._ended = self._rollout, None, None
        if rollout is not None:
            rollout.cancel()

    def _start_rollout(self) -> list[dict[str, str]]:
        self._stop_rollout()
        self._rollout = _Rollout(self._vf, self._current, self.seat, self.seats, self.opponent)
        event = self._rollout.next_event(self.turn_timeout)
        if event[0] == "ask":
            return event[1]
        # The episode ended before the agent was asked anything: the first step reports it.
        self._ended = event
        reason = event[1] if event[0] == "error" else "it asked agentgym's seat nothing"
        return [{"role": "user", "content": f"(the verifiers episode ended before this seat spoke: {reason})"}]

    def _continue_rollout(self, action: str) -> Feedback:
        event, self._ended = self._ended, None
        if event is None:
            assert self._rollout is not None
            self._rollout.reply(action)
            event = self._rollout.next_event(self.turn_timeout)
        if event[0] == "ask":
            return Feedback(event[1])
        rollout, self._rollout = self._rollout, None
        if rollout is not None:
            rollout.cancel()  # the thread is ending by itself: this only joins it
        if event[0] == "error":
            return Feedback([], {}, terminated=True, error=event[1])
        return self._episode_feedback(event[1])

    def _episode_feedback(self, episode: Any) -> Feedback:
        """Rewards of agentgym's seat's trace in a finished verifiers ``Episode``."""
        traces = [t for t in episode.traces if t.agent is not None and t.agent.name == self.seat]
        if not traces and len(episode.traces) == 1:
            traces = list(episode.traces)
        errors = [e for e in episode.errors] + [e for t in traces for e in t.errors]
        if errors or not traces:
            error = errors[-1] if errors else None
            text = f"{error.type}: {error.message}" if error else f"the episode has no trace of seat {self.seat!r}"
            return Feedback([], {}, terminated=True, error=f"the verifiers episode failed: {text}")
        # An env may run the seat several times (attempts): each part is their mean.
        parts: dict[str, float] = {}
        for trace in traces:
            for name, r in trace.rewards.items():
                if r is not None:
                    parts[name] = parts.get(name, 0.0) + float(r.value) / len(traces)
        success = sum(parts.values()) >= self.success_at
        if any(t.stop_condition == "max_turns" for t in traces):  # the turn limit, not the task, ended it
            return Feedback([], parts, truncated=True, success=success)
        return Feedback([], parts, terminated=True, success=success)

    # ----- single-turn: score the one reply --------------------------------------------------
    def _score_one_turn(self, action: str) -> Feedback:
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
    attrs: dict[str, Any] = {
        "taskset_id": taskset_id,
        "train_split": train,
        "eval_split": evaluation,
        "vf_env": env_type(taskset_id),
        "_loaded": {},
    }
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
