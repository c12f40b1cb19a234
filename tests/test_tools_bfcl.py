"""BFCL's files as they are shipped: Python type names, nested turns, "" for optional arguments."""

from __future__ import annotations

import importlib.util
import json

import pytest

pytest.importorskip("agentgym_tools")

from agentgym_tools.bfcl import convert_record, convert_schema  # noqa: E402
from agentgym_tools.taskfile import TaskFileError, load_tasks  # noqa: E402

import agentgym  # noqa: E402
from agentgym import TaskSpec  # noqa: E402

QUESTION = {
    "id": "simple_7",
    "question": [[{"role": "user", "content": "Paint the fence red, two coats."}]],
    "function": [
        {
            "name": "paint.fence",
            "description": "Paint a fence.",
            "parameters": {
                "type": "dict",
                "properties": {
                    "color": {"type": "string"},
                    "coats": {"type": "integer"},
                    "gloss": {"type": "float"},
                    "area": {"type": "tuple", "items": {"type": "float"}},
                    "extra": {"type": "any"},
                    "opts": {"type": "dict", "properties": {"fast": {"type": "boolean"}}},
                },
                "required": ["color", "coats"],
            },
        }
    ],
}
ANSWER = {"id": "simple_7", "ground_truth": [{"paint.fence": {"color": ["red"], "coats": [2], "gloss": [0.5, ""]}}]}


def test_python_type_names_become_json_schema():
    params = convert_schema(QUESTION["function"][0]["parameters"])
    props = params["properties"]
    assert params["type"] == "object" and props["gloss"]["type"] == "number"
    assert props["area"] == {"type": "array", "items": {"type": "number"}}
    assert "type" not in props["extra"] and props["opts"]["properties"]["fast"]["type"] == "boolean"
    assert props["opts"]["type"] == "object"


def test_records_convert_with_optional_arguments():
    rec = convert_record(QUESTION, ANSWER)
    assert rec["messages"] == QUESTION["question"][0]
    assert rec["calls"] == [
        {"name": "paint.fence", "arguments": {"color": ["red"], "coats": [2], "gloss": [0.5, None]}}
    ]
    stray = {"id": "simple_7", "ground_truth": [{"paint.fence": {"color": ["red"], "coats": [2], "brush": ["", 1]}}]}
    assert "brush" not in convert_record(QUESTION, stray)["calls"][0]["arguments"]  # optional and not in the schema
    with pytest.raises(TaskFileError, match="needs 'brush', which its schema lacks"):
        convert_record(QUESTION, {"id": "simple_7", "ground_truth": [{"paint.fence": {"brush": [1]}}]})
    with pytest.raises(TaskFileError, match="only single-turn"):
        convert_record({**QUESTION, "question": [[], []]}, ANSWER)
    with pytest.raises(TaskFileError, match="is paired with answer"):
        convert_record(QUESTION, {**ANSWER, "id": "other"})


def _bfcl_folder(tmp_path):
    (tmp_path / "possible_answer").mkdir()
    other_q = {**QUESTION, "id": "simple_8"}
    other_a = {**ANSWER, "id": "simple_8"}
    (tmp_path / "BFCL_mine.json").write_text("\n".join(json.dumps(q) for q in (QUESTION, other_q)) + "\n")
    (tmp_path / "possible_answer" / "BFCL_mine.json").write_text(
        "\n".join(json.dumps(a) for a in (ANSWER, other_a)) + "\n"
    )
    return tmp_path / "BFCL_mine.json"


def test_a_bfcl_file_is_a_task_file(tmp_path):
    path = _bfcl_folder(tmp_path)
    tasks = load_tasks(path)  # the form is recognised
    assert [t.id for t in tasks] == ["simple_7", "simple_8"]
    env = agentgym.make("tools/taskfile-v0", path=str(path), held_out_fraction=0.0)
    env.reset(options={"task": TaskSpec({"calls": 1}, 3)})
    without_gloss = '<tool_call>{"name": "paint.fence", "arguments": {"color": "red", "coats": 2}}</tool_call>'
    *_, info = env.step(without_gloss)
    assert info["success"]  # "" in BFCL's answer: gloss may be left out
    env.reset(options={"task": TaskSpec({"calls": 1}, 3)})
    *_, info = env.step('<tool_call>{"name": "paint.fence", "arguments": {"color": "blue", "coats": 2}}</tool_call>')
    assert not info["success"]
    (tmp_path / "possible_answer" / "BFCL_mine.json").unlink()
    with pytest.raises(TaskFileError, match="its answers belong in"):
        load_tasks(path)


@pytest.mark.skipif(importlib.util.find_spec("bfcl_eval") is None, reason="bfcl-eval is not installed")
def test_the_shipped_sets_load_and_their_ground_truth_scores():
    env = agentgym.make("tools/bfcl-v0")
    u = env.unwrapped
    assert {c: len(ts) for c, ts in u.by_category.items()} == {
        "simple": 400,
        "multiple": 200,
        "parallel": 200,
        "parallel_multiple": 200,
    }
    solved = 0
    for c, ts in u.by_category.items():
        for t in ts:
            env.reset(options={"task": TaskSpec({"category": c, "calls": 1}, 0)})
            u.current = t  # this exact task
            u._begin(t.tools, t.calls, t.answer, t.messages)
            *_, info = env.step(u.oracle())
            solved += info["success"]
    # 3 of BFCL's answers contradict their own schemas (a bool for a string, a string for a float array)
    assert solved >= 997
