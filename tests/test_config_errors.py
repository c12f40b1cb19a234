"""A broken config is one line and exit code 2, before any model loads, and leaves no run folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentgym.cli import app

runner = CliRunner()
QUICKSTART = str(Path(__file__).resolve().parent.parent / "configs" / "quickstart.yaml")


def _train(tmp_path: Path, *args: str, config: str = QUICKSTART):
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", config, f"run_dir={run}", *args])
    lines = [line for line in res.output.splitlines() if line.strip()]
    return res, lines, run


@pytest.mark.parametrize(
    "override, says",
    [
        ("env.id=tools/mixed-v0", "did env.id change? set env.params for tools/mixed-v0 too"),
        ("env.params={digits: [7]}", "env.params: digits=7 is outside [1, 4]"),
        ("env.kwargs.max_turn=3", "takes no 'max_turn' (did you mean 'max_turns'?)"),
        ("train.steps=100000000", "train.steps: Input should be less than or equal to 10000000"),
        ("rollout.max_new_tokens=2000000000", "rollout.max_new_tokens"),
        ("model.name=nosuchmodel", "agentgym downloads no model at run time"),
        ("env.params={digits:", "the value is not valid YAML"),
        ("grpo.learning_rat=1", "unknown config key"),
    ],
)
def test_bad_overrides_are_one_line_and_exit_2(tmp_path, override, says):
    res, lines, run = _train(tmp_path, override)
    assert res.exit_code == 2, res.output
    assert len(lines) == 1 and lines[0].startswith("error:") and says in lines[0], res.output
    assert not run.exists()


def test_unknown_sandbox_limits_are_named(tmp_path):
    res, lines, run = _train(
        tmp_path, "env.id=tools/python-v0", "env.params={}", "env.kwargs.sandbox_limits={cpu_secs: 1}"
    )
    assert res.exit_code == 2 and len(lines) == 1 and "unknown sandbox_limits cpu_secs" in lines[0], res.output
    assert not run.exists()


def test_empty_run_dir_is_refused(tmp_path):
    res = runner.invoke(app, ["train", QUICKSTART, "run_dir="])
    assert res.exit_code == 2 and "run_dir" in res.output


@pytest.mark.parametrize(
    "content, says",
    [
        (b"run_dir: \xff\xfe\n", "is not UTF-8 text"),
        (b"a: &x [*x]\n", "alias that refers to itself"),
        (b"a:" + b" [" * 100_000 + b"\n", "nests too deeply"),
        (b"env: {id: [unclosed\n", "is not valid YAML"),
    ],
    ids=["not-utf8", "recursive-alias", "100k-deep", "broken"],
)
def test_broken_yaml_files_are_one_line(tmp_path, content, says):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    res = runner.invoke(app, ["train", str(path)])
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and says in lines[0], res.output
    assert not (tmp_path / "runs").exists() and not Path("runs/default").exists()


def test_version():
    from agentgym import __version__

    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"agentgym {__version__}"


def test_resume_takes_only_train_overrides(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("env: {id: test/guess-v0}\n")
    res = runner.invoke(app, ["train", "--resume", str(run), "grpo.lr=1"])
    assert res.exit_code == 2 and "--resume can change only train.steps" in res.output


def test_a_finished_run_can_be_extended(tmp_path):
    import json

    run = tmp_path / "run"
    small = [
        "model.name=tiny",
        "env.id=test/guess-v0",
        "rollout.tasks_per_step=1",
        "rollout.group_size=4",
        "rollout.max_new_tokens=3",
        "train.eval_tasks=2",
        "train.eval_max_new_tokens=3",
        f"run_dir={run}",
    ]
    res = runner.invoke(app, ["train", *small, "train.steps=1"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["train", "--resume", str(run), "train.steps=2"])
    assert res.exit_code == 0, res.output
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in steps if r.get("kind", "train") == "train"] == [1, 2]
    assert "steps: 2" in (run / "config.yaml").read_text()  # a later --resume keeps the new length
