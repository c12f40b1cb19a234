"""Task files: format checks with clear errors, call matching without execution, splits."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("agentgym_tools")

from agentgym_tools import register_task_file  # noqa: E402
from agentgym_tools.taskfile import SAMPLE_FILE, TaskFileEnv, TaskFileError, load_tasks  # noqa: E402

import agentgym  # noqa: E402
from agentgym import TaskSpec  # noqa: E402

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}


def task(**over):
    base = {
        "id": "w",
        "question": "Weather in Oslo and Lima?",
        "tools": [WEATHER],
        "calls": [
            {"name": "get_weather", "arguments": {"city": ["Oslo"], "unit": ["celsius", None]}},
            {"name": "get_weather", "arguments": {"city": ["Lima"], "unit": ["celsius", None]}},
        ],
    }
    base.update(over)
    return base


def write_jsonl(tmp_path, tasks, name="tasks.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(json.dumps(t) for t in tasks) + "\n")
    return path


def test_sample_file_loads_and_the_oracle_solves_every_task():
    tasks = load_tasks(SAMPLE_FILE)
    assert len(tasks) >= 20
    env = agentgym.make("tools/taskfile-v0", held_out_fraction=0.0)
    for t in tasks:
        env.unwrapped.current = None
        # drive the env to this task through its own split/bucket selection
        for seed in range(2000):
            if env.unwrapped.pick({"calls": t.bucket}, seed).id == t.id:
                break
        else:
            raise AssertionError(f"task {t.id} is never picked")
        env.reset(options={"task": TaskSpec({"calls": t.bucket}, seed)})
        assert env.unwrapped.current.id == t.id
        obs, reward, term, trunc, info = env.step(env.unwrapped.oracle())
        assert term and info["success"], (t.id, info)


def test_calls_are_matched_in_any_order_without_executing(tmp_path):
    path = write_jsonl(tmp_path, [task()])
    env = agentgym.make("tools/taskfile-v0", path=str(path), held_out_fraction=0.0)
    env.reset(options={"task": TaskSpec({"calls": 2}, 0)})
    reply = (
        '<tool_call>{"name": "get_weather", "arguments": {"city": "lima"}}</tool_call>'
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "celsius"}}</tool_call>'
    )
    obs, reward, term, trunc, info = env.step(reply)
    assert term and obs == [] and info["success"]
    assert info["reward_parts"] == {"format": 0.1, "name": 0.2, "args": 0.2, "answer": 0.0}


def test_partial_matches_score_by_hand(tmp_path):
    path = write_jsonl(tmp_path, [task()])
    env = agentgym.make("tools/taskfile-v0", path=str(path), held_out_fraction=0.0)
    env.reset(options={"task": TaskSpec({"calls": 2}, 0)})
    # one right call, one with the wrong city and a wrong unit, one extra unknown tool
    reply = (
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>'
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Quito", "unit": "fahrenheit"}}</tool_call>'
        '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>'
    )
    obs, reward, term, trunc, info = env.step(reply)
    # name: G={w, w}, P={w, w, get_time}: 2/3; args: Oslo 1, (Quito, fahrenheit) 0/2 -> 0.5
    # format: the unknown tool makes the reply malformed: 0.5
    assert term and not info["success"]
    assert info["reward_parts"] == pytest.approx(
        {"format": 0.05, "name": 0.2 * 2 / 3, "args": 0.2 * 0.5, "answer": 0.0}
    )


def test_no_call_tasks_want_no_calls(tmp_path):
    path = write_jsonl(tmp_path, [task(id="none", calls=[], answer="Paris")])
    env = agentgym.make("tools/taskfile-v0", path=str(path), held_out_fraction=0.0)
    env.reset(options={"task": TaskSpec({"calls": 1}, 0)})
    *_, info = env.step("<answer>Paris</answer>")
    assert info["success"] and info["reward_parts"]["name"] == 0.2 and info["reward_parts"]["answer"] == 1.0
    env.reset(options={"task": TaskSpec({"calls": 1}, 0)})
    *_, info = env.step('<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>')
    assert not info["success"] and info["reward_parts"]["name"] == 0.0


def test_malformed_reply_gets_another_turn_when_allowed(tmp_path):
    path = write_jsonl(tmp_path, [task()])
    env = agentgym.make("tools/taskfile-v0", path=str(path), held_out_fraction=0.0, max_turns=2)
    env.reset(options={"task": TaskSpec({"calls": 2}, 0)})
    obs, reward, term, trunc, info = env.step("<tool_call>{oops</tool_call>")
    assert not term and not trunc and "not valid JSON" in obs[0]["content"]
    obs, reward, term, trunc, info = env.step(env.unwrapped.oracle())
    assert term and not info["success"]  # the earlier malformed reply still counts against it
    assert info["reward_parts"]["format"] == pytest.approx(0.1 * 0.75)


@pytest.mark.parametrize(
    "record, message",
    [
        ("not json", "line 1: not valid JSON"),
        (json.dumps([1]), "line 1: a task must be a JSON object"),
        (json.dumps(task(question=None)), "needs 'question'"),
        (json.dumps(task(tools="x")), "'tools' must be a list"),
        (json.dumps(task(tools=[{"name": "t", "parameters": {"type": "array"}}])), "type 'object'"),
        (json.dumps(task(calls=[{"name": "nope", "arguments": {}}])), "calls\\[0\\] names 'nope'"),
        (
            json.dumps(task(calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}])),
            "non-empty list of acceptable values",
        ),
        (json.dumps(task(extra=1)), "unknown keys \\['extra'\\]"),
        (
            json.dumps(task(calls=[{"name": "get_weather", "arguments": {"cty": ["Oslo"]}}])),
            "arguments \\['cty'\\] that tool 'get_weather' does not take",
        ),
        (json.dumps(task(messages=[{"role": "robot", "content": "x"}])), "'messages' must be"),
    ],
)
def test_broken_files_are_clear_errors(tmp_path, record, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(task(id="ok")) + "\n" + record + "\n")
    with pytest.raises(TaskFileError, match=message.replace("line 1", "line 2")):
        load_tasks(path)


def test_missing_empty_and_duplicate_files(tmp_path):
    with pytest.raises(TaskFileError, match="does not exist"):
        load_tasks(tmp_path / "none.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(TaskFileError, match="no tasks"):
        load_tasks(tmp_path / "empty.jsonl")
    with pytest.raises(TaskFileError, match="duplicate task ids"):
        load_tasks(write_jsonl(tmp_path, [task(), task()]))


def test_json_list_files_work_too(tmp_path):
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps([task(id="a"), task(id="b", messages=[{"role": "user", "content": "hi"}])]))
    assert [t.id for t in load_tasks(path)] == ["a", "b"]


def test_held_out_tasks_are_never_trained_on():
    env = TaskFileEnv(held_out_fraction=0.3)
    train_ids = {t.id for bucket in env.splits[False].values() for t in bucket}
    held_ids = {t.id for bucket in env.splits[True].values() for t in bucket}
    assert train_ids and held_ids and not train_ids & held_ids
    rng = np.random.default_rng(0)
    for _ in range(2000):
        spec = TaskFileEnv.sample_train_task(rng)
        assert env.pick(spec.params, spec.seed).id in train_ids
    for spec in TaskFileEnv.held_out_tasks(50):
        assert env.pick(spec.params, spec.seed).id in held_ids


def test_register_task_file(tmp_path, monkeypatch):
    import gymnasium

    from agentgym import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # leave no ids behind
    monkeypatch.setattr(gymnasium.envs.registration, "registry", dict(gymnasium.envs.registration.registry))
    path = write_jsonl(tmp_path, [task(id=str(i)) for i in range(8)])
    register_task_file("mytools/weather-v0", path, max_turns=2)
    env = agentgym.make("mytools/weather-v0")
    assert env.unwrapped.max_turns == 2 and env.unwrapped.path == path.resolve()
    env.reset(options={"task": TaskSpec({"calls": 2}, 0)})
    *_, info = env.step(env.unwrapped.oracle())
    assert info["success"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{")
    with pytest.raises(TaskFileError, match="not valid JSON"):
        register_task_file("mytools/bad-v0", bad)
