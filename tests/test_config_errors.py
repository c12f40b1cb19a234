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
        (b"a: &x [*x]\n", "aliases (*name) are not allowed"),
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


def test_trl_names_land_where_they_mean():
    from agentgym.config import load_config

    cfg = load_config(
        QUICKSTART,
        [
            "grpo.learning_rate=3e-6",
            "num_generations=4",
            "grpo.epsilon=0.1",
            "epsilon_high=0.3",
            "loss_type=grpo",
            "scale_rewards=none",
            "max_steps=7",
            "max_completion_length=32",
            "num_iterations=2",
        ],
    )
    g = cfg.grpo
    assert (g.lr, cfg.rollout.group_size, g.eps_low, g.eps_high) == (3e-6, 4, 0.1, 0.3)
    assert (g.loss_agg, g.scale_std, cfg.train.steps) == ("seq_mean_token_mean", False, 7)
    assert (cfg.rollout.max_new_tokens, g.updates_per_batch) == (32, 2)
    assert load_config(QUICKSTART, ["epsilon=0.15"]).grpo.eps_high == 0.15  # TRL: epsilon_high defaults to epsilon
    assert load_config(QUICKSTART, ["loss_type=dapo"]).grpo.loss_agg == "token_mean"


def test_trl_names_in_a_yaml_file(tmp_path):
    from agentgym.config import ConfigError, load_config

    path = tmp_path / "trl.yaml"
    path.write_text("grpo: {learning_rate: 2.0e-6, epsilon_high: 0.25, epsilon: 0.1}\nmax_steps: 3\n")
    cfg = load_config(path)
    assert (cfg.grpo.lr, cfg.grpo.eps_low, cfg.grpo.eps_high, cfg.train.steps) == (2e-6, 0.1, 0.25, 3)
    with pytest.raises(ConfigError, match="scale_rewards 'batch'"):
        load_config(QUICKSTART, ["scale_rewards=batch"])


def test_print_config_shows_every_default_and_mapped_names(tmp_path):
    import yaml

    res = runner.invoke(app, ["train", QUICKSTART, "learning_rate=2e-6", "--print-config"])
    assert res.exit_code == 0, res.output
    shown = yaml.safe_load(res.output)
    assert shown["grpo"]["lr"] == 2e-6 and "learning_rate" not in shown["grpo"]
    assert shown["grpo"]["eps_high"] == 0.28 and "kl_estimator" in shown["grpo"]  # defaults are there


def test_games_take_pettingzoo_max_cycles():
    import agentgym

    env = agentgym.make("multiagent/nim-v0", max_cycles=3)
    assert env.max_turns == 6  # two seats, three rounds
    with pytest.raises(ValueError, match="max_cycles must be an integer"):
        agentgym.make("multiagent/nim-v0", max_cycles=0)


def test_a_run_that_trains_on_nothing_says_so(tmp_path):
    """Every completion cut at max_new_tokens and masked: the step has no loss token; a warning names why."""
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
        f"run_dir={tmp_path / 'run'}",
    ]
    with pytest.warns(RuntimeWarning, match=r"trained on no tokens: 2 of 2 completions were cut"):
        train_from_config(None, over, quiet=True)


def test_report_to_a_missing_tracker_is_a_config_error(tmp_path):
    import importlib.util

    if importlib.util.find_spec("trackio") is not None:
        pytest.skip("trackio is installed here")
    res, lines, run = _train(tmp_path, "train.report_to=[tensorboard, trackio]")
    assert res.exit_code == 2 and "train.report_to: trackio is not installed" in lines[0] and not run.exists()


def test_report_to_wandb_logs_every_step_with_the_config(tmp_path, monkeypatch):
    """A stand-in wandb module (the real one is not installed here) sees init, one log per record, finish."""
    import importlib.machinery
    import sys
    import types

    from agentgym.grpo.trainer import train_from_config

    calls: list[tuple[str, object]] = []
    fake = types.ModuleType("wandb")
    fake.__spec__ = importlib.machinery.ModuleSpec("wandb", None)
    fake.init = lambda **kw: calls.append(("init", kw))
    fake.log = lambda data, step: calls.append(("log", (step, dict(data))))
    fake.finish = lambda: calls.append(("finish", None))
    monkeypatch.setitem(sys.modules, "wandb", fake)
    run = tmp_path / "run"
    over = [
        "model.name=tiny",
        "env.id=test/guess-v0",
        "rollout.tasks_per_step=1",
        "rollout.group_size=2",
        "rollout.max_new_tokens=3",
        "train.steps=2",
        "train.eval_tasks=1",
        "train.eval_max_new_tokens=3",
        "grpo.mask_truncated=false",
        "train.report_to=[wandb]",
        "train.project=demo",
        f"run_dir={run}",
    ]
    train_from_config(None, over, quiet=True)
    kinds = [c[0] for c in calls]
    assert kinds[0] == "init" and kinds[-1] == "finish"
    init = calls[0][1]
    assert init["project"] == "demo" and init["config"]["rollout"]["group_size"] == 2 and init["resume"] == "allow"
    logged_steps = [c[1][0] for c in calls if c[0] == "log"]
    assert 1 in logged_steps and 2 in logged_steps
    assert not (run / "tb").exists()  # tensorboard was not asked for


@pytest.mark.parametrize(
    "override, says, not_says",
    [
        ("save_steps=5", "(TRL/transformers' save_steps is 'train.save_every' here)", "'seed'"),
        ("train.save_steps=5", "(did you mean 'save_every'?)", "'steps'?"),
        ("warmup.path=demos.jsonl", "(did you mean 'file'?)", "'batch_size'"),
        ("per_device_train_batch_size=4", "rollout.tasks_per_step x rollout.group_size", "did you mean"),
        ("gradient_accumulation_steps=2", "grpo.micro_batch_size sequences at a time", "did you mean"),
        ("lr=1e-5", "(did you mean 'grpo.lr' or 'warmup.lr'?)", "'seed'"),
        ("grpo.learning_rat=1e-5", "(did you mean 'learning_rate'? TRL's name for grpo.lr)", "'mini_batches'"),
        ("grpo.zzz_qqq=1", "unknown config key 'grpo.zzz_qqq'", "did you mean"),  # close to nothing: no guess
    ],
)
def test_unknown_keys_get_a_mapping_or_a_close_match_only(override, says, not_says):
    """A TRL/transformers name gets where it lives here; an alias its field; a far guess is not made."""
    from agentgym.config import ConfigError, load_config

    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    hint = str(info.value).rsplit("]", 1)[-1]  # after the list of valid keys
    assert says in str(info.value) and not_says not in hint, str(info.value)


def test_unknown_keys_in_a_yaml_file_get_the_same_hints(tmp_path):
    from agentgym.config import ConfigError, load_config

    path = tmp_path / "run.yaml"
    path.write_text("save_steps: 5\nwarmup:\n  path: demos.jsonl\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert "(TRL/transformers' save_steps is 'train.save_every' here)" in text and "(did you mean 'file'?)" in text
    assert "did you mean 'seed'" not in text and "did you mean 'batch_size'" not in text, text


def test_a_section_check_names_its_values_not_the_whole_config(tmp_path):
    res, lines, run = _train(tmp_path, "rollout.max_new_tokens=2000", "rollout.max_episode_tokens=1500")
    assert res.exit_code == 2 and len(lines) == 1, res.output
    assert "rollout.max_new_tokens (2000) must be smaller than rollout.max_episode_tokens (1500)" in lines[0]
    assert "got" not in lines[0] and "env" not in lines[0], lines[0]
