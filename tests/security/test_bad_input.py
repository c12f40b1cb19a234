"""Hostile files (issue 33): YAML alias bombs, crafted checkpoint state, a run folder that
names modules to import, malformed BFCL files. Each gets one clear error and runs nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from agentgym.cli import _check_resumable, app
from agentgym.config import ConfigError, load_config
from agentgym.grpo.checkpoint import rng_state, save_state
from agentgym.state_check import StateFileError, check_state_file

ROOT = Path(__file__).resolve().parents[2]


def _bomb(levels: int) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        prev, this = chr(96 + i), chr(97 + i)
        lines.append(f"{this}: &{this} [" + ",".join([f"*{prev}"] * 10) + "]")
    lines.append(f"model:\n  name: *{chr(96 + levels)}")
    return "\n".join(lines) + "\n"


# ----- YAML ----------------------------------------------------------------------------------
def test_a_yaml_alias_bomb_is_refused_not_expanded(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(4))  # small enough that the old loader answers (with a type error) quickly
    with pytest.raises(ConfigError, match=r"aliases \(\*name\) are not allowed"):
        load_config(path)
    with pytest.raises(ConfigError, match="aliases"):
        load_config(None, ["seed=[&x 1, *x]"])


def test_the_cli_refuses_a_bomb_with_one_line(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(9))  # 10^9 values once expanded: this would not return
    out = CliRunner().invoke(app, ["train", str(path)])
    assert out.exit_code == 2 and "aliases" in out.output and "Traceback" not in out.output
    out = CliRunner().invoke(app, ["play", "math/arithmetic-v0", "-p", "digits=&x 2"])
    assert "aliases" not in out.output  # an anchor alone is harmless
    out = CliRunner().invoke(app, ["play", "math/arithmetic-v0", "-p", "digits=[&x 1, *x]"])
    assert out.exit_code == 2 and "aliases" in out.output


# ----- checkpoint state ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "state, reason",
    [
        ({"x": {"__ndarray__": [], "dtype": "V1073741824", "shape": [1]}}, "dtype 'V1073741824'"),
        ({"x": {"__ndarray__": [], "dtype": "(1000,1000)f8", "shape": [0]}}, "dtype"),
        ({"x": {"__ndarray__": [1], "dtype": "O", "shape": [1]}}, "dtype 'O'"),
        ({"x": {"__ndarray__": [], "dtype": "float64", "shape": [30000, 30000]}}, "with 0 numbers"),
        ({"x": {"__ndarray__": [[1, 2], [3]], "dtype": "int64", "shape": [2, 2]}}, "with 3 numbers"),
        ({"x": {"__ndarray__": [1], "dtype": "int64", "shape": [-1]}}, "not a list of sizes"),
        ({"x": {"__ndarray__": ["a"], "dtype": "int64", "shape": [1]}}, "not numbers"),
    ],
)
def test_crafted_arrays_in_state_json_are_refused(tmp_path, state, reason):
    path = tmp_path / "state.json"
    path.write_text(json.dumps(state))
    assert path.stat().st_size < 200
    with pytest.raises(StateFileError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        check_state_file(path)


def test_a_deeply_nested_state_json_is_refused(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(StateFileError, match="nests too deeply"):
        check_state_file(path)
    path.write_text('{"a": ' + "[" * 70 + "0" + "]" * 70 + "}")  # parses, but no state nests that deep
    with pytest.raises(StateFileError, match="deeper than 64"):
        check_state_file(path)


def test_what_agentgym_writes_passes_the_check(tmp_path):
    state = {
        "step": 3,
        "rng": rng_state(),
        "teacher": {"counts": np.arange(12, dtype=np.float64).reshape(3, 4), "scalar": np.array(2.5), "t": (1, 2)},
        "policy": {"version": 3, "generator": torch.Generator().get_state()},
        "flags": np.zeros(3, dtype=bool),
    }
    save_state(tmp_path, state)
    check_state_file(tmp_path / "state.json")


def _run_folder(tmp_path: Path, imports: list[str], state: str) -> Path:
    run = tmp_path / "run"
    ck = run / "checkpoints" / "step_000001"
    ck.mkdir(parents=True)
    (run / "config.yaml").write_text(json.dumps({"imports": imports, "model": {"name": "tiny"}}))
    (ck / "state.json").write_text(state)
    (ck / "COMPLETE").write_text("")
    return run


def test_resume_refuses_a_crafted_state_before_loading_anything(tmp_path):
    run = _run_folder(tmp_path, [], json.dumps({"x": {"__ndarray__": [], "dtype": "V1073741824", "shape": [1]}}))
    out = CliRunner().invoke(app, ["train", "--resume", str(run)])
    assert out.exit_code == 2 and "V1073741824" in out.output and "Traceback" not in out.output


def test_python_m_agentgym_resume_does_not_import_what_the_run_folder_names(tmp_path):
    run = _run_folder(tmp_path, ["evilmod"], "{}")
    (tmp_path / "evilmod.py").write_text("open('PWNED', 'w').write('x')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    for command in ([sys.executable, "-m", "agentgym"], [str(Path(sys.executable).parent / "agentgym")]):
        out = subprocess.run(
            [*command, "train", "--resume", str(run)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 2, out.stderr
        assert "does not import code on its own" in out.stdout + out.stderr
        assert "--import evilmod train --resume" in " ".join((out.stdout + out.stderr).split())
        assert not (tmp_path / "PWNED").exists()
    _check_resumable(run, ["evilmod"])  # named by the user: goes on (nothing imported by the check itself)
    assert not (tmp_path / "PWNED").exists()


# ----- BFCL files ------------------------------------------------------------------------------
QUESTION = {
    "id": "simple_1",
    "question": [[{"role": "user", "content": "Paint the fence red."}]],
    "function": [{"name": "paint", "parameters": {"type": "dict", "properties": {"color": {"type": "string"}}}}],
}
ANSWER = {"id": "simple_1", "ground_truth": [{"paint": {"color": ["red"]}}]}


@pytest.mark.parametrize(
    "question, answer, reason",
    [
        ("not json at all", ANSWER, "line 1: not JSON"),
        ([1, 2], ANSWER, "line 1: a BFCL record is a JSON object"),
        ({**QUESTION, "function": "paint"}, ANSWER, "'function' must be a list"),
        ({**QUESTION, "function": [{"parameters": {}}]}, ANSWER, "'function' must be a list"),
        ({**QUESTION, "question": [["hi"]]}, ANSWER, "a turn must be a list of"),
        (QUESTION, {**ANSWER, "ground_truth": [{"paint": {"color": ["red"]}, "other": {}}]}, "one {function"),
        (QUESTION, {**ANSWER, "ground_truth": [{"paint": ["red"]}]}, "arguments must map"),
        (QUESTION, {**ANSWER, "ground_truth": {"paint": {}}}, "'ground_truth' must be a list"),
        ({**QUESTION, "function": [{"name": "paint", "parameters": {"properties": []}}]}, ANSWER, "'properties'"),
    ],
)
def test_malformed_bfcl_files_give_a_task_file_error(tmp_path, question, answer, reason):
    from agentgym_tools.bfcl import convert
    from agentgym_tools.taskfile import TaskFileError

    (tmp_path / "q.json").write_text(question if isinstance(question, str) else json.dumps(question))
    (tmp_path / "a.json").write_text(json.dumps(answer))
    with pytest.raises(TaskFileError) as err:
        convert(tmp_path / "q.json", tmp_path / "a.json")
    assert type(err.value) is TaskFileError and reason in str(err.value) and "q.json" in str(err.value)


def test_the_python_api_checks_a_crafted_state_too(tmp_path):
    """resume_run / load_state (not only the CLI) bound and type-check state.json first."""
    from agentgym.grpo.checkpoint import load_state
    from agentgym.state_check import StateFileError

    run = _run_folder(tmp_path, [], json.dumps({"x": {"__ndarray__": [], "dtype": "V1073741824", "shape": [1]}}))
    with pytest.raises(StateFileError, match="V1073741824"):
        load_state(run / "checkpoints" / "step_000001")
