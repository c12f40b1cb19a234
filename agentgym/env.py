"""Text environments: a :class:`gymnasium.Env` whose observations are chat messages and
whose actions are text.

Contract (see DESIGN.md):

- ``reset(seed=None, options={"task": TaskSpec})`` returns ``(messages, info)``. The
  messages are the conversation's opening turns (system/user). Without a task, a
  training task is drawn from the env's seeded RNG (never a held-out one).
- ``step(text)`` returns ``(messages, reward, terminated, truncated, info)`` where
  ``messages`` are the *new* messages the environment says in reply (feedback, tool
  results); an agent keeps the history itself. ``info`` always has ``success`` (bool),
  ``reward_parts`` (name -> float, summing to the reward), ``error`` (a clear message
  when the action could not be used, else ``None``) and ``turn``.
- Bad input never crashes an env: anything that is not a usable string yields an error
  message to the agent, the configured penalty, and the episode goes on or ends cleanly.

Subclasses set ``param_space`` and ``held_out`` and implement :meth:`TextEnv._reset`
and :meth:`TextEnv._step`; the base class does seeding, task validation, action
checking and info bookkeeping.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium
import numpy as np
from gymnasium import spaces as gym_spaces

from agentgym.spaces import HeldOut, Params, ParamSpace
from agentgym.tasks import TaskSpec, TrainingTasks

Message = dict[str, str]
ROLES = ("system", "user", "assistant", "tool")


@dataclass
class Feedback:
    """What a subclass's :meth:`TextEnv._step` returns for one action."""

    messages: list[Message]
    reward_parts: dict[str, float] = field(default_factory=dict)
    terminated: bool = False
    success: bool = False
    error: str | None = None
    #: The episode stops for a reason outside the task (a time or step budget of the
    #: underlying simulator): ``truncated`` in Gymnasium's sense, not ``terminated``.
    truncated: bool = False

    @property
    def reward(self) -> float:
        return float(sum(self.reward_parts.values()))


class ChatSpace(gym_spaces.Space):
    """Observation space: a list of ``{"role": ..., "content": str}`` messages."""

    def __init__(self, max_messages: int = 64, seed: int | None = None):
        super().__init__(shape=None, dtype=None, seed=seed)
        self.max_messages = max_messages

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def contains(self, x: Any) -> bool:
        return (
            isinstance(x, list)
            and len(x) <= self.max_messages
            and all(
                isinstance(m, dict)
                and set(m) >= {"role", "content"}
                and m["role"] in ROLES
                and isinstance(m["content"], str)
                for m in x
            )
        )

    def sample(self, mask: Any = None, probability: Any = None) -> list[Message]:
        n = int(self.np_random.integers(1, 3))
        return [{"role": "user", "content": _random_text(self.np_random, 32)} for _ in range(n)]

    def __repr__(self) -> str:
        return "ChatSpace()"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, ChatSpace) and other.max_messages == self.max_messages


class TextSpace(gym_spaces.Space):
    """Action space: any string up to ``max_length`` characters (the model's reply)."""

    def __init__(self, max_length: int = 65536, seed: int | None = None):
        super().__init__(shape=None, dtype=None, seed=seed)
        self.max_length = max_length

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and len(x) <= self.max_length

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        return _random_text(self.np_random, 64)

    def __repr__(self) -> str:
        return f"TextSpace(max_length={self.max_length})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, TextSpace) and other.max_length == self.max_length


_PRINTABLE = np.array(list("abcdefghijklmnopqrstuvwxyz0123456789 +-*/=.{}\\"))


def _random_text(rng: np.random.Generator, max_len: int) -> str:
    n = int(rng.integers(0, max_len + 1))
    return "".join(rng.choice(_PRINTABLE, size=n))


class TaskFamily:
    """What single- and multi-agent envs share about tasks: the declared space, the
    held-out split (content, seeds, region), and turning ``options["task"]`` into a
    validated :class:`TaskSpec`."""

    #: The knobs of this family's tasks; teachers sample points of it.
    param_space: ClassVar[ParamSpace] = ParamSpace([])
    #: Contents, seeds and region that training never samples.
    held_out: ClassVar[HeldOut] = HeldOut()
    #: The task being played: ``reset`` sets it before it calls ``_reset``.
    task: TaskSpec | None
    #: How this instance was made (positional and keyword arguments), for its twin.
    _init_args: tuple[tuple[Any, ...], dict[str, Any]]
    #: Per class (not inherited): one content-naming instance per set of env kwargs.
    _oracles: ClassVar[dict[str, TaskFamily]]

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        # Remember how this instance was made, so the default content key can make a twin.
        self = super().__new__(cls)
        self._init_args = (args, dict(kwargs))
        return self

    # ----- content: what makes two tasks the same problem --------------------------------
    def content_key(self, task: TaskSpec) -> str:
        """A canonical key of ``task``'s content: two specs with the same key are the same
        problem for training and evaluation (the expression, the question and its tool
        world, the grid and mission, the heaps).

        The default renders what a twin of this env (made with the same arguments) says
        when it opens ``task``: every seat's opening messages. Families override it with
        something cheaper or more exact; an override must not change this env's episode.
        """
        twin = self.__dict__.get("_content_twin")
        if twin is None:
            args, kwargs = self.__dict__.get("_init_args", ((), {}))
            twin = self._content_twin = type(self)(*args, **kwargs)
        return opening_text(twin, task)

    def is_held_out_content(self, key: str) -> bool:
        """Whether the content ``key`` is held out (default: its stable hash, see :class:`HeldOut`)."""
        return self.held_out.holds_content(key)

    def training_tasks(self, restrict: Mapping[str, Any] | None = None) -> TrainingTasks:
        """This env's task space seen from training (``restrict``: a config's ``env.params``),
        with this env naming each task's content (unless its ``held_out.content_fraction``
        is 0: then seeds and region alone split it, for an env whose every task is one
        content, such as a single page)."""
        content = self if self.held_out.content_fraction > 0 else None
        return TrainingTasks(self.param_space, self.held_out, restrict, content=content)

    @classmethod
    def content_oracle(cls, env_kwargs: Mapping[str, Any] | None = None) -> TaskFamily:
        """An instance of this family (made once per set of kwargs and kept) that names
        contents for class-level task drawing."""
        cache = cls.__dict__.get("_oracles")
        if cache is None:
            cache = {}
            cls._oracles = cache
        key = json.dumps(dict(env_kwargs or {}), sort_keys=True, default=repr)
        if key not in cache:
            cache[key] = cls(**dict(env_kwargs or {}))
        return cache[key]

    @classmethod
    def sample_train_task(cls, rng: np.random.Generator, env_kwargs: Mapping[str, Any] | None = None) -> TaskSpec:
        """A training task: never held-out content, a held-out seed, or in the held-out region."""
        return cls.content_oracle(env_kwargs).training_tasks().spec(rng)

    @classmethod
    def held_out_tasks(
        cls,
        n: int,
        seed: int = 0,
        env_kwargs: Mapping[str, Any] | None = None,
        restrict: Mapping[str, Any] | None = None,
    ) -> list[TaskSpec]:
        """Up to ``n`` evaluation tasks with distinct held-out contents over the whole
        (or ``restrict``-ed) space (see :meth:`TrainingTasks.held_out_specs`): held-out
        seeds, every fourth task inside the held-out region when there is one."""
        return cls.content_oracle(env_kwargs).training_tasks(restrict).held_out_specs(n, seed=seed)

    def resolve_task(self, task: Any, rng: np.random.Generator) -> TaskSpec:
        """``task`` (a TaskSpec or its dict) validated against the space; None draws a
        training task from ``rng``. Bad params raise a ParamError naming the parameter."""
        if task is None:
            task = self.training_tasks().spec(rng)
        elif not isinstance(task, TaskSpec):
            task = TaskSpec.from_dict(task)
        return TaskSpec(self.param_space.validate(task.params), int(task.seed))

    def _reset(self, params: Params, rng: np.random.Generator) -> object:
        """Open the task for ``params`` (drawing from ``rng``, seeded by the spec) and return
        what the env says first; single- and multi-agent bases say what that is."""
        raise NotImplementedError

    def _opened_task(self) -> TaskSpec:
        """The task ``reset`` set, for a ``_reset`` that needs more than its params (the seed
        an outside simulator takes)."""
        if self.task is None:
            raise RuntimeError(f"{type(self).__name__}: no task yet; _reset runs inside reset()")
        return self.task


def opening_text(env: TaskFamily, task: TaskSpec) -> str:
    """What ``env`` says when it opens ``task`` (a game: every seat's opening messages), as
    JSON text. It opens the task on ``env``, as ``reset`` would, without the bookkeeping."""
    clean = env.param_space.validate(task.params)
    env.task = TaskSpec(clean, int(task.seed))  # as reset() sets it before _reset
    opening = env._reset(dict(clean), np.random.default_rng(int(task.seed)))
    return json.dumps(opening, sort_keys=True, ensure_ascii=False, default=str)


class TextEnv(TaskFamily, gymnasium.Env):
    """Base class of agentgym environments (single agent, multi-turn, text in and out)."""

    # Not a ClassVar: gymnasium.Env declares it an instance attribute.
    metadata: dict[str, Any] = {"render_modes": ["ansi"], "render_fps": 1}
    #: Actions longer than this are refused with an error message.
    max_action_chars: ClassVar[int] = 65536
    #: True when ``reset``/``step`` of *different* instances may run at the same time in
    #: threads and overlap usefully (the work waits on another process or releases the
    #: GIL, as a browser page does). The in-process pool then steps a batch's envs of
    #: this class concurrently; one instance is still never stepped from two threads.
    concurrent_steps: ClassVar[bool] = False
    #: Turns before the episode is truncated.
    max_turns: int = 1
    #: Reward given for an action that could not be used at all (not text, too long).
    invalid_action_penalty: float = 0.0
    #: The id this env was made under (set by :func:`agentgym.make`).
    env_id: str | None = None

    def __init__(self, render_mode: str | None = None):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode {render_mode!r} not in {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self.observation_space = ChatSpace()
        self.action_space = TextSpace(self.max_action_chars)
        self.task: TaskSpec | None = None
        self.turn = 0
        self._done = True
        self._transcript: list[Message] = []

    # ----- to implement in subclasses -------------------------------------------------
    def _reset(self, params: Params, rng: np.random.Generator) -> list[Message]:
        """Build the task for ``params`` from ``rng`` (seeded by the spec) and return the opening messages."""
        raise NotImplementedError

    def _step(self, action: str) -> Feedback:
        """Judge one action (a string within the length limit, possibly empty or garbage)."""
        raise NotImplementedError

    def oracle(self) -> str:
        """A correct action for the current state, for tests and benchmarks (optional)."""
        raise NotImplementedError(f"{type(self).__name__} has no oracle")

    # ----- gymnasium API -------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[list[Message], dict[str, Any]]:
        super().reset(seed=seed)
        self.task = self.resolve_task((options or {}).get("task"), self.np_random)
        self.turn = 0
        self._done = False
        messages = self._reset(dict(self.task.params), np.random.default_rng(self.task.seed))
        self._transcript = [dict(m) for m in messages]  # contents are strings: a shallow copy suffices
        info = {"task": self.task.to_dict(), "turn": 0, "success": False, "reward_parts": {}, "error": None}
        info.update(self._info())
        return messages, info

    def step(self, action: Any) -> tuple[list[Message], float, bool, bool, dict[str, Any]]:
        if self.task is None:
            raise RuntimeError("call reset() before step()")
        if self._done:
            raise RuntimeError("the episode has ended; call reset() to start a new one")
        self.turn += 1
        error = _check_action(action, self.max_action_chars)
        if error is not None:
            fb = Feedback(
                messages=[{"role": "user", "content": f"Error: {error}"}],
                reward_parts={"invalid_action": float(self.invalid_action_penalty)},
                error=error,
            )
            text = action if isinstance(action, str) else repr(action)[:200]
        else:
            text = action
            fb = self._step(action)
        truncated = not fb.terminated and (fb.truncated or self.turn >= self.max_turns)
        self._done = fb.terminated or truncated
        self._transcript.append({"role": "assistant", "content": text[:10_000]})
        self._transcript.extend(dict(m) for m in fb.messages)
        info = {
            "task": self.task.to_dict(),
            "turn": self.turn,
            "success": bool(fb.success),
            "reward_parts": dict(fb.reward_parts),
            "error": fb.error,
        }
        info.update(self._info())
        return fb.messages, fb.reward, bool(fb.terminated), bool(truncated), info

    def _info(self) -> dict[str, Any]:
        """Extra keys a subclass adds to every ``info`` (reset and step), e.g. the sandbox mode in force."""
        return {}

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        return "\n".join(f"[{m['role']}] {m['content']}" for m in self._transcript)


def positive_int(name: str, value: Any) -> int:
    """``value`` if it is an integer >= 1 (not a bool), else a ValueError naming ``name``.

    For env kwargs such as ``max_turns``: a bad config fails when the env is made.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def _check_action(action: Any, limit: int) -> str | None:
    if isinstance(action, bytes):
        return "the action must be text (str), not bytes"
    if not isinstance(action, str):
        return f"the action must be text (str), got {type(action).__name__}"
    if len(action) > limit:
        return f"the action is too long ({len(action)} characters; the limit is {limit})"
    return None
