"""The tool-use environments.

:class:`ToolEnv` holds what all of them share: the system prompt listing the tools,
reading calls out of each reply (:func:`agentgym_tools.calls.parse_reply`), answering
with ``<tool_response>`` messages, and scoring the episode at its end
(:mod:`agentgym_tools.scoring`). Subclasses decide what a task is and whether calls run:

- :class:`ToolWorldEnv` (``tools/<world>-v0``, ``tools/mixed-v0``): generated worlds
  whose tools execute; the episode ends with an ``<answer>`` or at the turn limit.
- :class:`agentgym_tools.taskfile.TaskFileEnv`: tasks from a JSON/JSONL file, scored
  by matching calls without executing anything.

Reward parts (weights are the ``weights`` kwarg; see :mod:`agentgym_tools.scoring`):
``format``, ``name``, ``args`` and ``answer`` on the episode's last step, and
``invalid`` (``invalid_call_penalty``, default 0) on any step whose reply was malformed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from agentgym import (
    Categorical,
    Feedback,
    HeldOut,
    Integer,
    ParamSpace,
    Region,
    TaskSpec,
    TextEnv,
)
from agentgym.env import positive_int
from agentgym_tools.calls import (
    LISTINGS,
    Tool,
    ToolCall,
    parse_reply,
    tools_prompt,
    validate_arguments,
)
from agentgym_tools.sandbox import MODES, PythonSandbox, SandboxLimits
from agentgym_tools.scoring import (
    ExpectedCall,
    MadeCall,
    answer_correct,
    argument_score,
    check_weights,
    score,
)
from agentgym_tools.worlds import calculator, calendar, database
from agentgym_tools.worlds import python as python_world
from agentgym_tools.worlds.base import ToolError, World

INSTRUCTIONS = "Solve the user's task. Use the tools for every lookup and computation; do not guess."
WORLDS = ("calculator", "database", "calendar", "python")


def _tool_response(body: Mapping[str, Any]) -> str:
    return f"<tool_response>\n{json.dumps(body, ensure_ascii=False, default=str)}\n</tool_response>"


class ToolEnv(TextEnv):
    """Base of the tool envs: tools in the prompt, Hermes-style calls, ToolRL-style reward parts."""

    max_action_chars: ClassVar[int] = 1_000_000
    #: Whether calls are executed (generated worlds) or only scored (task files).
    executes: ClassVar[bool] = True

    def __init__(
        self,
        max_turns: int = 8,
        max_calls_per_turn: int = 16,
        weights: Mapping[str, float] | None = None,
        invalid_call_penalty: float = 0.0,
        strict_answer: bool = False,
        tool_role: str = "tool",
        instructions: str = INSTRUCTIONS,
        example_call: bool = True,
        tool_listing: str = "json",
        render_mode: str | None = None,
    ):
        super().__init__(render_mode=render_mode)
        if tool_role not in ("tool", "user"):
            raise ValueError(f"tool_role must be 'tool' or 'user', got {tool_role!r}")
        self.max_turns = positive_int("max_turns", max_turns)
        self.max_calls_per_turn = positive_int("max_calls_per_turn", max_calls_per_turn)
        self.weights = check_weights(weights)
        self.invalid_call_penalty = float(invalid_call_penalty)
        self.strict_answer = bool(strict_answer)
        self.tool_role = tool_role
        self.instructions = str(instructions)
        self.example_call = bool(example_call)
        if tool_listing not in LISTINGS:
            raise ValueError(f"tool_listing must be one of {LISTINGS}, got {tool_listing!r}")
        self.tool_listing = tool_listing
        self.tools: dict[str, Tool] = {}
        self.expected: list[ExpectedCall] = []
        self.answer: list[Any] = []
        self.made: list[MadeCall] = []
        self.replies_ok: list[float] = []

    # ----- subclass hooks --------------------------------------------------------------
    def _run_tool(self, tool: Tool, call: ToolCall) -> tuple[dict[str, Any], Any, bool]:
        """Execute ``call``: ``(response body, result for scoring, counts for scoring)``."""
        raise NotImplementedError

    def _begin(
        self,
        tools: list[Tool],
        expected: list[ExpectedCall],
        answer: list[Any],
        messages: list[dict[str, str]],
    ) -> list[dict[str, str]]:
        self.tools = {t.name: t for t in tools}
        self.expected, self.answer = expected, answer
        self.made, self.replies_ok = [], []
        system = {
            "role": "system",
            "content": tools_prompt(tools, self.instructions, self.example_call, self.tool_listing),
        }
        return [system, *messages]

    def _success(self, answer_ok: bool) -> bool:
        return answer_ok

    # ----- one step ------------------------------------------------------------------
    def _step(self, action: str) -> Feedback:
        parsed = parse_reply(action, self.max_calls_per_turn)
        responses: list[str] = [_tool_response({"error": e}) for e in parsed.errors]
        ok = parsed.well_formed
        for call in parsed.calls:
            tool = self.tools.get(call.name)
            if tool is None:
                ok = False
                names = ", ".join(sorted(self.tools)) or "none"
                responses.append(
                    _tool_response(
                        {
                            "name": call.name,
                            "error": f"unknown tool {call.name!r}; the tools are: {names}",
                        }
                    )
                )
                self.made.append(MadeCall(call, None))
                continue
            problems = validate_arguments(tool, call.arguments)
            if problems:
                ok = False
                responses.append(_tool_response({"name": call.name, "error": "; ".join(problems)}))
                self.made.append(MadeCall(call, None))
                continue
            if not self.executes:
                self.made.append(MadeCall(call, None))  # scored by matching, never run
                continue
            if parsed.answer is not None:
                continue  # beside the final answer: never run, so earns no call credit
            body, result, counts = self._run_tool(tool, call)
            responses.append(_tool_response(body))
            if counts:
                self.made.append(MadeCall(call, result))
        # ToolRL's format reward checks the tags; here a reply with the tags but a broken
        # inside (bad JSON, unknown tool, bad arguments) earns half, a clean one all.
        tagged = parsed.n_blocks > 0 or parsed.answer is not None
        self.replies_ok.append(1.0 if ok else 0.5 if tagged else 0.0)
        invalid = {} if ok or not self.invalid_call_penalty else {"invalid": -abs(self.invalid_call_penalty)}
        answer = parsed.answer
        if answer is None and parsed.n_blocks == 0 and not self.strict_answer:
            answer = action  # lenient: a reply without calls is the final answer
        final = answer is not None or (not self.executes and parsed.calls) or self.turn >= self.max_turns
        if not final:
            if not responses:
                responses.append(_tool_response({"error": "no <tool_call> and no <answer> found in the reply"}))
            return Feedback(
                messages=[{"role": self.tool_role, "content": "\n".join(responses)}],
                reward_parts=invalid,
                error="; ".join(parsed.errors) or None,
            )
        answer_ok = bool(self.answer) and answer_correct(answer, self.answer)
        parts = score(self.made, self.expected, self.replies_ok, answer_ok, self.weights)
        parts.update(invalid)
        terminated = answer is not None or not self.executes
        return Feedback(
            messages=[],
            reward_parts=parts,
            terminated=terminated,
            success=self._success(answer_ok),
            error="; ".join(parsed.errors) or None,
        )


class ToolWorldEnv(ToolEnv):
    """Generated tool worlds (calculator/units, knowledge base, calendar, Python)."""

    param_space = ParamSpace(
        [
            Categorical("world", WORLDS, description="which tools and data the task is about"),
            Integer(
                "depth",
                1,
                3,
                description="length of the chain of calls that each need the previous result",
            ),
            Integer(
                "extra_calls",
                0,
                2,
                description="independent calls beyond the chain (their answers are asked too)",
            ),
            Integer("distractors", 0, 6, description="tools offered that the task does not need"),
            Categorical(
                "noise",
                (0.0, 0.1, 0.2, 0.3, 0.4),
                description="chance that a call fails transiently and must be retried; above 0 results also carry "
                "irrelevant fields",
            ),
        ]
    )
    held_out = HeldOut(region=Region({"depth": [3], "extra_calls": [2]}, name="depth 3 with 2 extra calls"))
    #: Set by the one-world subclasses.
    fixed_world: ClassVar[str | None] = None

    def __init__(
        self,
        *args: Any,
        sandbox_limits: Mapping[str, Any] | None = None,
        sandbox_mode: str = "namespaces",
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        unknown = sorted(set(sandbox_limits or {}) - set(SandboxLimits.__dataclass_fields__))
        if unknown:
            known = ", ".join(SandboxLimits.__dataclass_fields__)
            raise ValueError(f"unknown sandbox_limits {', '.join(unknown)}; the limits are {known}")
        self.sandbox_limits = SandboxLimits(**dict(sandbox_limits or {}))
        if sandbox_mode not in MODES:
            raise ValueError(f"sandbox_mode must be one of {', '.join(MODES)}, got {sandbox_mode!r}")
        #: How the Python tool is confined: "namespaces" (kernel-enforced, refuses if unavailable) or
        #: "hook" (weaker, opt-in by name). Reported in every info of a python-world episode.
        self.sandbox_mode = sandbox_mode
        self._sandbox: PythonSandbox | None = None
        self.world: World | None = None
        self.noise = 0.0
        self._noise_rng = np.random.default_rng(0)
        self._failed_once: set[str] = set()
        self._done_steps: set[int] = set()

    @property
    def sandbox(self) -> PythonSandbox:
        if self._sandbox is None:
            self._sandbox = PythonSandbox(self.sandbox_limits, mode=self.sandbox_mode)
        return self._sandbox

    def _info(self) -> dict[str, Any]:
        if self.world is not None and "run_python" in {t.name for t in self.world.tools}:
            return {"sandbox_mode": self.sandbox_mode}
        return {}

    def _run_python(self, code: str) -> str:
        return self.sandbox.run(code).message()

    def content_key(self, task: TaskSpec) -> str:
        """The question, the tools offered and the answer of the world ``task`` makes (its
        hidden data show in the answer); made without the sandbox."""
        params = dict(self.param_space.validate(task.params))
        world_name = self.fixed_world or params["world"]
        rng = np.random.default_rng(int(task.seed))
        if world_name == "python":
            world = python_world.generate(params, rng, _never_run)
        else:
            world = {"calculator": calculator, "database": database, "calendar": calendar}[world_name].generate(
                params, rng
            )
        tools = sorted(t.name for t in world.tools)
        return json.dumps([world_name, world.question, world.answer_format, tools, world.answer], default=str)

    def _reset(self, params: dict[str, Any], rng: np.random.Generator) -> list[dict[str, str]]:
        world_name = self.fixed_world or params["world"]
        if world_name == "python":
            _ = self.sandbox  # refuses here, before the episode starts, if the confinement is unavailable
            world = python_world.generate(params, rng, self._run_python)
        else:
            world = {"calculator": calculator, "database": database, "calendar": calendar}[world_name].generate(
                params, rng
            )
        self.world = world
        self.noise = float(params.get("noise", 0.0))
        self._noise_rng = np.random.default_rng(rng.integers(2**63))
        self._failed_once, self._done_steps = set(), set()
        expected = [ExpectedCall(s.name, s.accept) for s in world.steps]
        question = f"{world.question}\n{world.answer_format}"
        return self._begin(world.tools, expected, world.answer, [{"role": "user", "content": question}])

    def _run_tool(self, tool: Tool, call: ToolCall) -> tuple[dict[str, Any], Any, bool]:
        key = call.to_json()
        if self.noise > 0 and key not in self._failed_once and self._noise_rng.random() < self.noise:
            self._failed_once.add(key)  # one transient failure per distinct call: a retry succeeds
            return (
                {
                    "name": call.name,
                    "error": "service temporarily unavailable; try the same call again",
                },
                None,
                False,
            )
        try:
            result = tool.fn(**call.arguments)  # type: ignore[misc]
        except ToolError as e:
            return {"name": call.name, "error": str(e)}, None, True
        except Exception as e:  # our tool met input it did not expect: report, never crash
            return (
                {
                    "name": call.name,
                    "error": f"the tool failed on these arguments ({type(e).__name__})",
                },
                None,
                True,
            )
        self._mark_done(call, result)
        body: dict[str, Any] = {"name": call.name, "result": result}
        if self.noise > 0:
            body["request_id"] = f"{int(self._noise_rng.integers(16**8)):08x}"
            body["latency_ms"] = int(self._noise_rng.integers(5, 900))
        return body, result, True

    def _mark_done(self, call: ToolCall, result: Any) -> None:
        assert self.world is not None
        made = MadeCall(call, result)
        for i, expected in enumerate(self.expected):  # one ExpectedCall per world step, in order
            if i not in self._done_steps and expected.name == call.name and argument_score(made, expected) == 1.0:
                self._done_steps.add(i)
                return

    def oracle(self) -> str:
        """The next reply of a perfect agent: every call of the next unfinished round, else the answer."""
        if self.world is None:
            raise RuntimeError("call reset() before oracle()")
        pending = [i for i in range(len(self.world.steps)) if i not in self._done_steps]
        if not pending:
            return f"<answer>{', '.join(str(a) for a in self.world.answer)}</answer>"
        level = min(self.world.steps[i].level for i in pending)
        calls = [self.world.steps[i] for i in pending if self.world.steps[i].level == level]
        return "\n".join(f"<tool_call>{ToolCall(s.name, s.args).to_json()}</tool_call>" for s in calls)

    def close(self) -> None:
        if self._sandbox is not None:
            self._sandbox.close()
        self._sandbox = None
        super().close()


def _one_world(world: str) -> type[ToolWorldEnv]:
    dims = [d for d in ToolWorldEnv.param_space.dims if d.name != "world"]
    cls = type(
        f"{world.capitalize()}ToolEnv",
        (ToolWorldEnv,),
        {
            "param_space": ParamSpace(dims),
            "fixed_world": world,
            "__doc__": f"Tool world {world!r} only (see ToolWorldEnv).",
            "__module__": __name__,
        },
    )
    return cls


CalculatorToolEnv = _one_world("calculator")
DatabaseToolEnv = _one_world("database")
CalendarToolEnv = _one_world("calendar")
PythonToolEnv = _one_world("python")

__all__ = [
    "CalculatorToolEnv",
    "CalendarToolEnv",
    "DatabaseToolEnv",
    "PythonToolEnv",
    "ToolEnv",
    "ToolWorldEnv",
]


def _never_run(code: str) -> Any:
    raise AssertionError("content keys are made without running code")
