"""Tool-use environments: API conformance, determinism, oracle solvability, bad calls, fuzzing."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

pytest.importorskip("agentgym_tools")

from agentgym_tools.env import WORLDS, ToolWorldEnv  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import agentgym  # noqa: E402
from agentgym import TaskSpec  # noqa: E402

TOOL_IDS = [f"tools/{w}-v0" for w in WORLDS] + ["tools/mixed-v0", "tools/taskfile-v0"]


def play_oracle(env, task, max_replies: int = 20):
    obs, info = env.reset(options={"task": task})
    transcript = [obs]
    for _ in range(max_replies):
        obs, reward, term, trunc, info = env.step(env.unwrapped.oracle())
        transcript.append(obs)
        if term or trunc:
            return reward, info, transcript
    raise AssertionError("the oracle did not finish")


@pytest.mark.parametrize("env_id", TOOL_IDS)
def test_gymnasium_spec_names_the_id(env_id):
    # (check_env: tests/test_conformance.py)
    env = agentgym.make(env_id)
    assert env.spec is not None and env.spec.id == env_id


@pytest.mark.parametrize("env_id", TOOL_IDS)
def test_same_spec_same_world(env_id):
    cls = agentgym.spec(env_id).load_class()
    rng = np.random.default_rng(3)
    for _ in range(5):
        task = cls.sample_train_task(rng)
        a, b = agentgym.make(env_id), agentgym.make(env_id)
        ra, ia, ta = play_oracle(a, task)
        rb, ib, tb = play_oracle(b, task)
        assert ta == tb and ra == rb and ia == ib
        other = TaskSpec(task.params, task.seed + 1)
        assert (
            a.reset(options={"task": other})[0] != b.reset(options={"task": task})[0] or env_id == "tools/taskfile-v0"
        )


def _grid(worlds):
    for world, depth, extra, distractors, noise in itertools.product(worlds, (1, 2, 3), (0, 1, 2), (0, 6), (0.0, 0.4)):
        yield {
            "world": world,
            "depth": depth,
            "extra_calls": extra,
            "distractors": distractors,
            "noise": noise,
        }


def test_oracle_solves_every_generated_task_across_the_space():
    """Every corner of the space (and held-out seeds), every world: success and full reward."""
    env = agentgym.make("tools/mixed-v0")
    n = 0
    for i, params in enumerate(_grid(("calculator", "database", "calendar"))):
        for seed in (i, 1_000_000_000 + i):
            reward, info, _ = play_oracle(env, TaskSpec(params, seed))
            assert info["success"], (params, seed, env.unwrapped.render())
            assert info["reward_parts"] == {"format": 0.1, "name": 0.2, "args": 0.2, "answer": 1.0}
            assert reward == pytest.approx(1.5)
            n += 1
    assert n == 3 * 36 * 2


@pytest.mark.parametrize("world", ["calculator", "database", "calendar"])
def test_oracle_solves_many_random_tasks(world):
    """Random draws find the corner cases a grid misses (tiny converted values, say)."""
    env = agentgym.make(f"tools/{world}-v0")
    rng = np.random.default_rng(123)
    for _ in range(1500):
        task = type(env.unwrapped).sample_train_task(rng)
        reward, info, _ = play_oracle(env, task)
        assert info["success"], (task, env.unwrapped.render())


def test_oracle_solves_python_tasks():
    env = agentgym.make("tools/python-v0")
    rng = np.random.default_rng(0)
    for params in itertools.islice(_grid(("python",)), 0, None, 3):
        params.pop("world")
        reward, info, _ = play_oracle(env, TaskSpec(params, int(rng.integers(1_000_000))))
        assert info["success"] and reward == pytest.approx(1.5), env.unwrapped.render()


def test_noise_makes_a_call_fail_once_then_succeed():
    env = agentgym.make("tools/calculator-v0")
    failures = 0
    for seed in range(30):
        env.reset(options={"task": TaskSpec({"depth": 1, "extra_calls": 0, "distractors": 0, "noise": 0.4}, seed)})
        call = env.unwrapped.oracle()
        obs, *_ = env.step(call)
        body = json.loads(obs[0]["content"].split("\n")[1])
        if "error" in body:
            failures += 1
            assert body["error"].startswith("service temporarily unavailable")
            obs, *_ = env.step(call)  # the same call again succeeds
            body = json.loads(obs[0]["content"].split("\n")[1])
        assert "result" in body and {"request_id", "latency_ms"} <= set(body)
    assert 5 <= failures <= 20  # about 40% of 30


def test_reward_parts_for_partial_work():
    """Right tool with one wrong argument, then a wrong answer: parts worked by hand."""
    env = agentgym.make("tools/calculator-v0")
    env.reset(options={"task": TaskSpec({"depth": 1, "extra_calls": 0, "distractors": 0, "noise": 0.0}, 7)})
    step = env.unwrapped.world.steps[0]
    args = dict(step.args)
    key = sorted(args)[0]
    args[key] = 123456.5  # wrong value for one of the arguments
    reply = f"<tool_call>{json.dumps({'name': step.name, 'arguments': args})}</tool_call>"
    obs, reward, term, trunc, info = env.step(reply)
    assert not term and obs[0]["role"] == "tool" and '"result"' in obs[0]["content"]
    obs, reward, term, trunc, info = env.step("<answer>-1</answer>")
    n_args = len(args)
    assert term and not info["success"]
    assert info["reward_parts"] == pytest.approx(
        {"format": 0.1, "name": 0.2, "args": 0.2 * (n_args - 1) / n_args, "answer": 0.0}
    )


def test_plain_text_ends_the_episode_leniently_or_not():
    task = TaskSpec({"depth": 1, "extra_calls": 0, "distractors": 0, "noise": 0.0}, 1)
    env = agentgym.make("tools/calendar-v0")
    env.reset(options={"task": task})
    *_, term, trunc, info = env.step("I think it is 2026-01-01.")
    assert term and info["reward_parts"]["format"] == 0.0
    strict = agentgym.make("tools/calendar-v0", strict_answer=True)
    strict.reset(options={"task": task})
    obs, _, term, _, info = strict.step("I think it is 2026-01-01.")
    assert not term and "no <tool_call> and no <answer>" in obs[0]["content"]


@pytest.mark.parametrize(
    "reply, fragment",
    [
        # format errors (bad JSON, unknown tool, bad arguments, too many calls) and,
        # after them, errors the tool itself reports for well-formed calls
        ("<tool_call>{bad json</tool_call>", "not valid JSON"),
        (
            '<tool_call>{"name": "launch_rocket", "arguments": {}}</tool_call>',
            "unknown tool 'launch_rocket'; the tools are:",
        ),
        (
            '<tool_call>{"name": "add_days", "arguments": {"date": "2026-01-01", "days": "ten"}}</tool_call>',
            "argument 'days' must be of type integer, got string",
        ),
        (
            '<tool_call>{"name": "add_days", "arguments": {"date": "2026-01-01"}}</tool_call>',
            "missing required argument 'days'",
        ),
        (
            '<tool_call>{"name": "add_days", "arguments": {"date": "someday", "days": 3}}</tool_call>',
            "is not a date in the form YYYY-MM-DD",
        ),
        (
            '<tool_call>{"name": "add_days", "arguments": {"date": "9999-12-31", "days": 5}}</tool_call>',
            "out of range",
        ),
        (
            '<tool_call>{"name": "get_event_date", "arguments": {"event": "moon landing"}}</tool_call>',
            "no event named 'moon landing'",
        ),
        (
            '<tool_call>{"name": "add_days", "arguments": {}}</tool_call>' * 10_000,
            "too many tool calls in one reply (10000)",
        ),
    ],
)
def test_bad_calls_get_clear_messages_and_the_episode_goes_on(reply, fragment):
    env = agentgym.make("tools/calendar-v0", invalid_call_penalty=0.05)
    task = TaskSpec({"depth": 2, "extra_calls": 0, "distractors": 0, "noise": 0.0}, 11)
    env.reset(options={"task": task})
    obs, reward, term, trunc, info = env.step(reply)
    assert not term and not trunc
    assert obs[0]["role"] == "tool" and fragment in obs[0]["content"], obs[0]["content"][:500]
    # the episode still finishes normally with the oracle
    while True:
        obs, reward, term, trunc, info = env.step(env.unwrapped.oracle())
        if term or trunc:
            break
    assert info["success"] and info["reward_parts"]["answer"] == 1.0
    tool_level = any(f in fragment for f in ("not a date", "out of range", "no event"))
    if tool_level:  # a well-formed call the tool refused: no format cost
        assert info["reward_parts"]["format"] == pytest.approx(0.1) and "invalid" not in info["reward_parts"]
    else:  # the malformed reply scored half a format point; the oracle's replies one each
        n = info["turn"]
        assert info["reward_parts"]["format"] == pytest.approx(0.1 * (n - 0.5) / n)


def test_tool_role_and_turn_limit():
    env = agentgym.make("tools/database-v0", tool_role="user", max_turns=2)
    env.reset(options={"task": TaskSpec({"depth": 3, "extra_calls": 0, "distractors": 0, "noise": 0.0}, 2)})
    obs, *_ = env.step(env.unwrapped.oracle())
    assert obs[0]["role"] == "user"
    obs, reward, term, trunc, info = env.step(env.unwrapped.oracle())
    assert trunc and not term and not info["success"]
    assert info["reward_parts"]["answer"] == 0.0 and info["reward_parts"]["name"] == pytest.approx(0.2 * 2 / 3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_turns": 0}, "max_turns must be an integer >= 1"),
        ({"max_calls_per_turn": 0}, "max_calls_per_turn must be an integer >= 1"),
        ({"tool_role": "system"}, "tool_role must be 'tool' or 'user'"),
        ({"weights": {"speed": 1.0}}, "unknown reward weight 'speed'"),
        ({"tool_listing": "yaml"}, "tool_listing must be one of"),
        (
            {"sandbox_limits": {"cpu_seconds": -1}},
            "sandbox limit cpu_seconds must be a positive number",
        ),
    ],
)
def test_bad_kwargs_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        agentgym.make("tools/calculator-v0", **kwargs)


def test_held_out_region_never_sampled_for_training():
    rng = np.random.default_rng(0)
    region = ToolWorldEnv.held_out.region
    for _ in range(20_000):
        task = ToolWorldEnv.sample_train_task(rng)
        assert not region.contains(task.params) and task.seed < 1_000_000_000


# ----- fuzzing -------------------------------------------------------------------------

_NAMES = st.sampled_from(
    [
        "add",
        "subtract",
        "multiply",
        "divide",
        "convert",
        "get_person",
        "get_company",
        "get_city",
        "add_days",
        "weekday",
        "days_between",
        "get_event_date",
        "get_weather",
        "",
        "x" * 300,
    ]
)
_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)


@st.composite
def replies(draw):
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.integers(0, 4))
        if kind == 0:
            args = draw(
                st.dictionaries(
                    st.sampled_from(
                        [
                            "a",
                            "b",
                            "value",
                            "from_unit",
                            "to_unit",
                            "name",
                            "date",
                            "days",
                            "start",
                            "end",
                            "event",
                            "zz",
                        ]
                    ),
                    _JSON_VALUES,
                    max_size=4,
                )
            )
            try:
                body = json.dumps({"name": draw(_NAMES), "arguments": args})
            except ValueError:
                body = "{}"
            parts.append(f"<tool_call>{body}</tool_call>")
        elif kind == 1:
            parts.append(f"<tool_call>{draw(st.text(max_size=40))}</tool_call>")
        elif kind == 2:
            parts.append(
                draw(st.sampled_from(["<tool_call>", "</tool_call>", "<answer>", "</answer>", "{", "}", '"name"']))
            )
        elif kind == 3:
            parts.append(f"<answer>{draw(st.text(max_size=30))}</answer>")
        else:
            parts.append(draw(st.text(max_size=60)))
    return "".join(parts)


@settings(max_examples=1200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    world=st.sampled_from(["calculator", "database", "calendar"]),
    seed=st.integers(0, 10_000),
    actions=st.lists(replies(), min_size=1, max_size=4),
)
def test_fuzzed_replies_never_crash(world, seed, actions):
    env = _FUZZ_ENV
    params = {
        "world": world,
        "depth": 1 + seed % 3,
        "extra_calls": seed % 2,
        "distractors": seed % 5,
        "noise": 0.2,
    }
    env.reset(options={"task": TaskSpec(params, seed)})
    for action in actions:
        obs, reward, term, trunc, info = env.step(action)
        assert env.observation_space.contains(obs)
        assert math.isfinite(reward) and isinstance(info["success"], bool)
        assert all(math.isfinite(v) for v in info["reward_parts"].values())
        if term or trunc:
            break


_FUZZ_ENV = agentgym.make("tools/mixed-v0", max_turns=4)


@settings(max_examples=60, deadline=None)
@given(
    code=st.text(max_size=80)
    | st.sampled_from(
        [
            "print(1)",
            "import os; os.fork()",
            "open('/etc/passwd').read()",
            "while True: pass",
            "x = 'a' * 10**10",
        ]
    )
)
def test_fuzzed_python_calls_never_crash(code):
    env = _PY_ENV
    env.reset(options={"task": TaskSpec({"depth": 1, "extra_calls": 0, "distractors": 0, "noise": 0.0}, 5)})
    reply = f"<tool_call>{json.dumps({'name': 'run_python', 'arguments': {'code': code}})}</tool_call>"
    obs, reward, term, trunc, info = env.step(reply)
    assert obs[0]["role"] == "tool" and "<tool_response>" in obs[0]["content"] and math.isfinite(reward)


_PY_ENV = agentgym.make("tools/python-v0", sandbox_limits={"cpu_seconds": 1, "wall_seconds": 2.0})


def test_huge_integers_are_argument_errors_not_crashes():
    env = agentgym.make("tools/calculator-v0")
    env.reset(options={"task": TaskSpec({"depth": 1, "extra_calls": 0, "distractors": 0, "noise": 0.0}, 1)})
    name = env.unwrapped.world.steps[0].name
    big = "1" + "0" * 400
    if name == "convert":
        args = '{"value": BIG, "from_unit": "m", "to_unit": "km"}'.replace("BIG", big)
    else:
        args = '{"a": BIG, "b": 1}'.replace("BIG", big)
    obs, reward, term, trunc, info = env.step(f'<tool_call>{{"name": "{name}", "arguments": {args}}}</tool_call>')
    assert not term and "must be of type number, got integer" in obs[0]["content"]


def test_calls_beside_the_answer_earn_nothing():
    env = agentgym.make("tools/database-v0")
    env.reset(options={"task": TaskSpec({"depth": 1, "extra_calls": 0, "distractors": 0, "noise": 0.0}, 3)})
    call = env.unwrapped.oracle()  # the right call, but written beside a guessed answer: never run
    *_, term, _, info = env.step(call + "<answer>42</answer>")
    assert term and info["reward_parts"]["name"] == 0.0 and info["reward_parts"]["args"] == 0.0


@pytest.mark.parametrize(
    "env_id, reply",
    [
        (
            "tools/calendar-v0",
            "<answer>Monday Tuesday Wednesday Thursday Friday Saturday Sunday</answer>",
        ),
        ("tools/calendar-v0", "<answer>Monday or Tuesday or Wednesday</answer>"),
        ("tools/database-v0", "<answer>Veloria Narsk Pontavia Quessa Ombria</answer>"),
    ],
)
def test_hedged_answers_never_pass(env_id, reply):
    env = agentgym.make(env_id)
    for seed in range(40):
        env.reset(options={"task": TaskSpec({"depth": 3, "extra_calls": 0, "distractors": 0, "noise": 0.0}, seed)})
        *_, info = env.step(reply)
        assert not info["success"]


def test_importing_the_package_first_keeps_its_ids():
    import subprocess
    import sys

    code = "import agentgym_tools, agentgym; agentgym.make('tools/calculator-v0'); print('ok')"
    res = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", code], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]
