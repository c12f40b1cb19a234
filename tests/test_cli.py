import json

import pytest
from typer.testing import CliRunner

from agentgym.cli import app

runner = CliRunner()


def test_envs_lists_ids_and_parameter_spaces():
    res = runner.invoke(app, ["envs", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["id"]: r for r in json.loads(res.output)}
    assert [p["name"] for p in rows["test/guess-v0"]["params"]] == ["high", "hint"]
    assert rows["test/guess-v0"]["held_out_region"]["constraints"] == {"high": [7]}
    table = runner.invoke(app, ["envs"])
    assert table.exit_code == 0 and "test/guess-v0" in table.output


def test_play_in_the_terminal():
    from agentgym import make
    from agentgym.env import TaskSpec

    env = make("test/guess-v0")
    env.reset(options={"task": TaskSpec({"high": 9, "hint": False}, 4)})
    wrong = 1 if env.secret != 1 else 2
    keys = f"{wrong}\n\n{env.secret}\n\n"
    res = runner.invoke(app, ["play", "test/guess-v0", "--seed", "4", "-p", "high=9", "-p", "hint=false"], input=keys)
    assert res.exit_code == 0, res.output
    assert "Guess my number between 1 and 9" in res.output
    assert "episode over: success" in res.output and "2 turn(s)" in res.output


def test_play_rejects_bad_params_and_unknown_envs():
    res = runner.invoke(app, ["play", "test/guess-v0", "-p", "high=500"])
    assert res.exit_code != 0 and "high=500 is outside" in res.output
    res = runner.invoke(app, ["play", "test/guess-v0", "-p", "nope=1"])
    assert res.exit_code != 0 and "unknown parameter" in res.output
    res = runner.invoke(app, ["eval", "math/nope-v0", "--policy", "tiny"])
    assert res.exit_code == 2 and "no environment registered" in res.output


def test_rollout_and_eval_with_the_tiny_model(tmp_path):
    res = runner.invoke(app, ["rollout", "test/guess-v0", "--policy", "tiny", "--n", "1", "--max-new-tokens", "4"])
    assert res.exit_code == 0, res.output
    assert "reward" in res.output and "policy tokens" in res.output
    out = tmp_path / "eval.json"
    res = runner.invoke(
        app,
        [
            "eval",
            "test/guess-v0",
            "--policy",
            "tiny",
            "--tasks",
            "4",
            "--max-new-tokens",
            "4",
            "--out",
            str(out),
            "--by",
            "hint",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "held-out evaluation" in res.output and "hint=" in res.output
    data = json.loads(out.read_text())
    assert data["envs"][0]["overall"]["tasks"] == 4 and data["meta"]["policy"] == "tiny"


def test_eval_passes_env_kwargs_and_checks_them_first(tmp_path):
    out = tmp_path / "eval.json"
    res = runner.invoke(
        app,
        [
            "eval",
            "test/guess-v0",
            "--policy",
            "tiny",
            "--tasks",
            "2",
            "--max-new-tokens",
            "4",
            "-e",
            "max_turns=1",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["meta"]["env_kwargs"] == {"max_turns": 1}

    def message(res) -> str:  # the error box wraps lines
        return " ".join(res.output.replace("│", " ").split())

    res = runner.invoke(app, ["eval", "math/arithmetic-v0", "--policy", "tiny", "-e", "max_turns=0"])
    assert res.exit_code == 2 and "max_turns must be an integer >= 1" in message(res)
    res = runner.invoke(app, ["eval", "math/arithmetic-v0", "--policy", "tiny", "-e", "no_such_kwarg=1"])
    assert res.exit_code == 2 and "no_such_kwarg" in message(res)


def test_eval_param_restriction_draws_the_trainer_s_own_eval_tasks(tmp_path):
    import agentgym
    from agentgym.grpo.trainer import EVAL_SEED

    out = tmp_path / "eval.json"
    res = runner.invoke(
        app,
        [
            "eval",
            "test/guess-v0",
            "--policy",
            "tiny",
            "--tasks",
            "5",
            "--max-new-tokens",
            "4",
            "-p",
            "high=[10, 11, 12]",
            "-p",
            "hint=false",
            "--seed",
            str(EVAL_SEED),
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    got = [(t["task"]["params"], t["task"]["seed"]) for t in data["envs"][0]["tasks"]]
    env = agentgym.make("test/guess-v0")  # the trainer's eval tasks come from the env, as here
    want = env.training_tasks({"high": [10, 11, 12], "hint": [False]}).held_out_specs(5, seed=EVAL_SEED)
    assert got == [(t.params, t.seed) for t in want]
    assert len({env.content_key(agentgym.TaskSpec(p, s)) for p, s in got}) == len(got) == 5  # distinct problems
    assert {p["high"] for p, _ in got} <= {10, 11, 12}
    assert data["meta"]["params"] == {"high": [10, 11, 12], "hint": [False]}
    # a space whose every problem trains has nothing held out: a clear error, before any model loads
    res = runner.invoke(app, ["eval", "test/guess-v0", "--policy", "tiny", "-p", "high=[3, 4]", "-p", "hint=false"])
    assert res.exit_code == 2 and "no held-out task" in " ".join(res.output.replace("│", " ").split())
    res = runner.invoke(app, ["eval", "test/guess-v0", "--policy", "tiny", "-p", "nope=[1]"])
    assert res.exit_code == 2 and "unknown parameter" in " ".join(res.output.replace("│", " ").split())
    # a name given twice would silently keep only its last value: refused, with the list form
    res = runner.invoke(app, ["eval", "test/guess-v0", "--policy", "tiny", "-p", "high=3", "-p", "high=4"])
    said = " ".join(res.output.replace("│", " ").split())
    assert res.exit_code == 2 and "'high' given twice" in said and "NAME=[v1,v2]" in said


def test_demos_writes_training_demonstrations_a_warm_start_reads(tmp_path, chat):
    from agentgym.rollout.demos import load_demos

    out = tmp_path / "demos.jsonl"
    res = runner.invoke(app, ["demos", "test/guess-v0", "-o", str(out), "--n", "5", "-p", "high=[4]"])
    assert res.exit_code == 0, res.output
    assert "5 demonstrations of 5 tasks" in res.output
    eps = load_demos(out, chat)
    assert len(eps) == 5 and all(e.task.params["high"] == 4 and e.success for e in eps)
    res = runner.invoke(app, ["demos", "test/guess-v0", "-o", str(out), "-p", "nosuch=[1]"])
    assert res.exit_code == 2 and "nosuch" in res.output


def test_sft_runs_the_warm_start_alone(tmp_path):
    demos = tmp_path / "d.jsonl"
    assert runner.invoke(app, ["demos", "test/guess-v0", "-o", str(demos), "--n", "8"]).exit_code == 0
    run = tmp_path / "run"
    res = runner.invoke(
        app,
        [
            "sft",
            f"run_dir={run}",
            "model.name=tiny",
            "env.id=test/guess-v0",
            "warmup.source=file",
            f"warmup.file={demos}",
            "warmup.steps=2",
            "warmup.batch_size=4",
            "train.eval_tasks=2",
            "train.eval_max_new_tokens=4",
        ],
    )
    assert res.exit_code == 0, res.output
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in rows if r["kind"] in ("sft", "train")] == ["sft", "sft"]
    assert "before" in res.output and "after" in res.output


def test_play_and_rollout_a_game():
    """Games are PettingZoo envs (reset returns nothing): play and rollout drive them as games."""
    import re

    from agentgym import make
    from agentgym.env import TaskSpec

    params = {"heaps": 1, "max_heap": 3, "opponent": "optimal", "seat": 0}
    env = make("multiagent/nim-v0")
    env.reset(options={"task": TaskSpec(params, 3)})
    heap = int(re.search(r"heap 1 has (\d+)", env.observe("player_0")["messages"][-1]["content"]).group(1))
    args = ["play", "multiagent/nim-v0", "--seed", "3"] + [x for k, v in params.items() for x in ("-p", f"{k}={v}")]
    res = runner.invoke(app, args, input=f"take {heap} from heap 1\n\n")
    assert res.exit_code == 0, res.output
    returns = dict(re.findall(r"(player_\d) return (-?[\d.]+)", res.output))
    assert float(returns["player_0"]) > float(returns["player_1"]), res.output  # taking the whole heap wins
    res = runner.invoke(app, ["rollout", "multiagent/nim-v0", "--policy", "tiny", "--n", "1", "--max-new-tokens", "4"])
    assert res.exit_code == 0, res.output
    # self-play: the policy's seats each get an Episode (a seat the game ended before it moved has none)
    assert "seat player_0" in res.output and "end: terminated" in res.output


def test_eval_streams_samples_and_progress_outside_a_terminal(tmp_path):
    """Every sample is a JSON line written as its batch ends; progress is plain lines in a log."""
    out = tmp_path / "eval.json"
    res = runner.invoke(
        app,
        ["eval", "test/guess-v0", "--policy", "tiny", "--tasks", "3", "--max-new-tokens", "3", "--out", str(out)],
    )
    assert res.exit_code == 0, res.output
    # the plain progress line (CliRunner is no terminal): 3 tasks, a sampled and a greedy pass
    assert "test/guess-v0: 6/6" in res.output
    rows = [json.loads(line) for line in out.with_suffix(".samples.jsonl").read_text().splitlines()]
    sampled = [r for r in rows if r["pass"] == "sampled"]
    assert len(sampled) == 3 * 4 and len(rows) == 3 * 4 + 3 and {r["task_index"] for r in rows} == {0, 1, 2}
    assert all(r["messages"][0]["role"] in ("system", "user") and "reward_parts" in r for r in rows)
    report = json.loads(out.read_text())["envs"][0]
    assert [r["success"] for r in sampled] == [s for t in report["tasks"] for s in t["successes"]]


def test_evaluate_env_hands_over_each_batch_as_it_ends():
    from agentgym.eval import evaluate_env
    from agentgym.policies import make_policy

    batches: list[int] = []
    report = evaluate_env(
        make_policy("tiny"),
        "test/guess-v0",
        n_tasks=5,
        batch_tasks=2,
        on_samples=lambda rows: batches.append(len(rows)),
    )
    assert batches == [2, 2, 1] and len(report.tasks) == 5  # a stop after the first batch keeps 2 samples


def test_eval_reports_standard_errors_in_its_table_json_and_plot(tmp_path):
    out = tmp_path / "eval.json"
    args = ["eval", "math/arithmetic-v0", "--policy", "tiny", "--tasks", "3", "--max-new-tokens", "3"]
    res = runner.invoke(app, [*args, "--k", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    said = " ".join(res.output.replace("│", " ").split())
    assert "mean@2 at T=1 (primary), pass@2, greedy; ± s.e. [95% CI] over tasks" in said
    assert "± " in said and "[" in said  # value ± s.e. [low, high] cells
    rep = json.loads(out.read_text())["envs"][0]
    overall = rep["overall"]
    assert rep["k"] == 2 and rep["temperature"] == 1.0 and overall["tasks"] == 3
    for name in ("mean_at_k", "pass_at_k", "greedy"):
        assert set(overall[name]) == {"value", "se", "low", "high", "tasks"} and overall[name]["tasks"] == 3
    assert overall["success"] == overall["mean_at_k"]["value"]
    # mean@2 and greedy from their own passes: each task's 2 sampled and 1 greedy outcomes
    per_task = [sum(t["successes"]) / 2 for t in rep["tasks"]]
    assert overall["mean_at_k"]["value"] == pytest.approx(sum(per_task) / 3)
    assert overall["greedy"]["value"] == pytest.approx(sum(t["greedy_successes"][0] for t in rep["tasks"]) / 3)
    assert out.with_suffix(".png").stat().st_size > 0 and f"wrote {out.with_suffix('.png')}" in said
    res = runner.invoke(app, [*args, "--k", "1", "--no-greedy", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["envs"][0]["overall"]["greedy"] is None
    res = runner.invoke(app, [*args, "--k", "2", "--temperature", "0", "--out", str(out)])
    assert res.exit_code == 2 and "--k 1" in res.output


def test_import_finds_a_module_in_the_current_folder(tmp_path, monkeypatch):
    """``--import my_envs`` from my_envs.py's own folder works without PYTHONPATH (as ``python -m``)."""
    import os
    import sys

    (tmp_path / "here_envs_mod.py").write_text("LOADED = True\n")
    monkeypatch.chdir(tmp_path)
    # the console script has no '' or cwd on sys.path; pytest run as ``python -m`` does
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", os.getcwd(), str(tmp_path))])
    monkeypatch.delitem(sys.modules, "here_envs_mod", raising=False)
    res = runner.invoke(app, ["--import", "here_envs_mod", "envs", "--json"])
    assert res.exit_code == 0, res.output
    assert sys.modules["here_envs_mod"].LOADED
    monkeypatch.delitem(sys.modules, "here_envs_mod")
    res = runner.invoke(app, ["--import", "not_here_mod_xyz", "envs"])
    assert res.exit_code == 2 and "PYTHONPATH" in res.output and "not_here_mod_xyz.py" in res.output, res.output
    res = runner.invoke(app, ["--import", "here_envs_mod.py", "envs"])
    assert res.exit_code == 2 and "give a module name, not a file: 'here_envs_mod'" in res.output, res.output


@pytest.mark.parametrize("command", ["rollout", "eval", "sft", "generate-server"])
def test_an_unknown_model_name_fails_at_once_without_the_network(command, tmp_path, monkeypatch):
    """rollout / eval / sft / generate-server refuse a model that is not here before anything loads:
    no hub retries (a minute without a network), and the error names what works."""
    import time

    import transformers

    def no_load(*args, **kwargs):
        raise AssertionError("a model load was tried")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_load)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", no_load)
    monkeypatch.chdir(tmp_path)
    name = "nobody/no-such-model-xyz"
    args = {
        "rollout": ["rollout", "test/guess-v0", "--policy", name],
        "eval": ["eval", "test/guess-v0", "--policy", name, "--tasks", "2"],
        "sft": [
            "sft",
            f"model.name={name}",
            "env.id=test/guess-v0",
            "env.params={}",
            "warmup.source=oracle",
            "warmup.steps=1",
        ],
        "generate-server": ["generate-server", name],
    }[command]
    start = time.monotonic()
    res = runner.invoke(app, args)
    assert res.exit_code == 2, (res.output, res.exception)
    assert time.monotonic() - start < 10
    text = " ".join(res.output.split())
    assert name in text and "smollm2-135m" in text and "tiny" in text and "A folder path works too" in text, text
    if command in ("rollout", "eval"):
        assert "random" in text and "openai:" in text


def test_run_time_warnings_are_plain_lines_and_still_python_warnings(tmp_path):
    """A warning during a run prints as one 'warning: ...' line (no source path, no code line
    that reads like a traceback); outside the CLI it stays a Python warning."""
    import warnings

    from agentgym.grpo.trainer import train_from_config

    over = [
        "model.name=tiny",
        "env.id=test/guess-v0",
        "rollout.tasks_per_step=1",
        "rollout.group_size=2",
        "rollout.max_new_tokens=1",
        "train.steps=1",
        "train.eval_tasks=1",
        "train.eval_max_new_tokens=1",
    ]
    before = warnings.showwarning
    res = runner.invoke(app, ["train", *over, f"run_dir={tmp_path / 'cli'}"])
    assert res.exit_code == 0, res.output
    lines = [line for line in res.output.splitlines() if "trained on no tokens" in line]
    assert len(lines) == 1 and lines[0].startswith("warning: step 1 trained on no tokens"), res.output
    assert "RuntimeWarning" not in res.output and "warnings.warn(" not in res.output, res.output
    assert ".py:" not in res.output, res.output
    assert warnings.showwarning is before  # only for the command
    with pytest.warns(RuntimeWarning, match="trained on no tokens"):
        train_from_config(None, [*over, f"run_dir={tmp_path / 'lib'}"], quiet=True)


def test_help_reads_as_text_flags_without_types_and_brackets_kept():
    """Help is rendered as markdown: docstring paragraphs reflow, ``code`` is not shown with
    its backticks, NAME=[v1,v2] survives (rich markup would eat [v1,v2]), and a flag has no
    `<bool>` type beside it while a value names its type as click does."""
    import re

    res = CliRunner().invoke(app, ["eval", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"}, color=False)
    text = re.sub(r"\s+", " ", res.output)
    assert res.exit_code == 0 and "NAME=[v1,v2]" in text
    assert "<bool>" not in text and "<int>" not in text and "<list[str]>" not in text
    assert "--tasks INTEGER" in text and "--greedy --no-greedy Also play" in text
    # The docstring's hard line breaks do not survive as ragged lines.
    assert "(the training temperature) and a greedy pass" in text
    top = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"}, color=False).output
    assert "``" not in top and "The agentgym command" in re.sub(r"\s+", " ", top)
