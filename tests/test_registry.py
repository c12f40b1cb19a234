import textwrap
import warnings

import pytest

import agentgym
from agentgym.registry import EnvNotFound
from tests.conftest import fake_installed_dist, run_isolated


def test_unknown_id_suggests_close_matches():
    with pytest.raises(EnvNotFound, match=r"Did you mean \['test/guess-v0'"):
        agentgym.make("test/gues-v0")


def test_register_rejects_bad_ids_and_warns_on_replace():
    with pytest.raises(ValueError):
        agentgym.register("has space", "x:y")
    from tests.conftest import GuessEnv

    agentgym.register("test/tmp-v0", GuessEnv)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        agentgym.register("test/tmp-v0", GuessEnv)  # the same registration again: silent
    with pytest.warns(UserWarning, match="re-registering"):
        agentgym.register("test/tmp-v0", GuessEnv, kwargs={"max_turns": 1})
    assert agentgym.make("test/tmp-v0").max_turns == 1


def test_make_refuses_non_text_envs():
    agentgym.register("test/not-text-v0", lambda: object(), gymnasium_id=False)
    with pytest.raises(TypeError, match="neither an agentgym TextEnv"):
        agentgym.make("test/not-text-v0")


def test_builtin_math_envs_come_from_their_own_package():
    specs = {s.id: s for s in agentgym.list_envs()}
    assert "math/arithmetic-v0" in specs
    assert specs["math/arithmetic-v0"].source == "agentgym-math"


def test_third_party_package_registers_through_the_entry_point_group(tmp_path):
    """A package installed outside agentgym (a dist-info on sys.path, exactly what pip
    writes) is discovered, and both agentgym.make and gymnasium.make find its env."""
    pkg = tmp_path / "toy_plugin"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        textwrap.dedent("""
        import agentgym
        from agentgym import Feedback, Integer, ParamSpace, TextEnv

        class Echo(TextEnv):
            param_space = ParamSpace([Integer("n", 1, 3)])
            def _reset(self, params, rng):
                self.n = params["n"]
                return [{"role": "user", "content": f"say {self.n}"}]
            def _step(self, action):
                ok = action.strip() == str(self.n)
                return Feedback([], {"correct": float(ok)}, terminated=True, success=ok)

        def register():
            agentgym.register("toy/echo-v0", "toy_plugin:Echo", description="echo a number")
    """)
    )
    fake_installed_dist(tmp_path, "toy-plugin", "[agentgym.envs]\ntoy = toy_plugin:register\n")
    code = textwrap.dedent("""
        import gymnasium, agentgym
        from gymnasium.utils.env_checker import check_env
        env = agentgym.make("toy/echo-v0")
        check_env(env)
        obs, info = env.reset(options={"task": {"params": {"n": 2}, "seed": 0}})
        _, r, term, _, info = env.step("2")
        assert r == 1.0 and term and info["success"]
        assert [s.source for s in agentgym.list_envs() if s.id == "toy/echo-v0"] == ["toy-plugin"]
        gymnasium.make("toy/echo-v0").reset(seed=0)
        print("OK")
    """)
    res = run_isolated(code, tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith("OK")


def test_broken_plugin_only_warns(tmp_path):
    fake_installed_dist(tmp_path, "broken", "[agentgym.envs]\nbroken = no_such_module:register\n")
    code = "import warnings\nwarnings.simplefilter('always')\nimport agentgym\nprint(len(agentgym.list_envs()))"
    res = run_isolated(code, tmp_path)
    assert res.returncode == 0, res.stderr
    assert "no_such_module" in res.stderr and "failed" in res.stderr


def test_gymnasium_make_in_a_fresh_interpreter():
    """Gymnasium 1.x has no plugin hook: its ``module:id`` form imports agentgym first, and
    ``gymnasium.register_envs(agentgym)`` makes the plain ids work, for every single-agent id."""
    import subprocess
    import sys

    from agentgym.registry import list_envs

    # the installed families' ids (other tests register more in this process only)
    ids = [
        s.id
        for s in list_envs()
        if s.source.startswith("agentgym-") and not s.id.startswith("multiagent/") and s.id != "web/page-v0"
    ]
    code = (  # nothing of agentgym is imported before gymnasium.make
        "import gymnasium, json, sys\n"
        f"ids = {ids!r}\n"
        "assert 'agentgym' not in sys.modules\n"
        "made = [type(gymnasium.make('agentgym:' + i).unwrapped).__name__ for i in ids]\n"
        "print(json.dumps({'n': len(ids), 'made': len(made)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    import json

    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["n"] >= 25 and got["made"] == got["n"]
    plain = "import gymnasium, agentgym\ngymnasium.register_envs(agentgym)\nprint(gymnasium.make('math/linear-v0'))"
    out = subprocess.run([sys.executable, "-c", plain], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "LinearEnv" in out.stdout, out.stderr[-2000:]


def test_a_plain_register_call_is_usable_from_the_cli_and_configs(tmp_path, monkeypatch):
    """An env registered at import time (no entry point): --import / imports: make it usable."""
    from typer.testing import CliRunner

    from agentgym.cli import app
    from agentgym.config import load_config
    from agentgym.grpo.setup import check_config

    (tmp_path / "plain_envs_mod.py").write_text(
        "import agentgym\n"
        "from agentgym import Feedback, Integer, ParamSpace, TextEnv\n"
        "class Echo(TextEnv):\n"
        "    param_space = ParamSpace([Integer('n', 1, 9)])\n"
        "    def _reset(self, params, rng):\n"
        "        self.n = params['n']\n"
        "        return [{'role': 'user', 'content': f'Say {self.n}.'}]\n"
        "    def _step(self, action):\n"
        "        ok = action.strip() == str(self.n)\n"
        "        return Feedback([], {'ok': float(ok)}, terminated=True, success=ok)\n"
        "agentgym.register('plain/echo-v0', 'plain_envs_mod:Echo')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    runner = CliRunner()
    res = runner.invoke(app, ["--import", "plain_envs_mod", "play", "plain/echo-v0", "-p", "n=4"], input="4\n\n")
    assert res.exit_code == 0 and "episode over: success" in res.output, res.output
    res = runner.invoke(app, ["--import", "no_such_module_xyz", "envs"])
    assert res.exit_code == 2 and "cannot import 'no_such_module_xyz'" in res.output
    cfg = load_config(None, ["imports=[plain_envs_mod]", "env.id=plain/echo-v0", "env.params={}", "model.name=tiny"])
    tasks, teacher, facts = check_config(cfg)
    assert facts.max_turns >= 1 and tasks.space.dims[0].name == "n"


def test_training_an_env_registered_as_a_factory_function_is_a_config_error():
    """A run reads the task space off the registered class; a factory function has none.
    It said so with a bare AttributeError ('function' object has no attribute 'param_space')."""
    from agentgym.config import ConfigError, load_config
    from agentgym.grpo.setup import check_config
    from tests.conftest import GuessEnv

    agentgym.register("test/factory-v0", lambda **kw: GuessEnv(**kw), gymnasium_id=False)
    try:
        assert isinstance(agentgym.make("test/factory-v0"), GuessEnv)  # building one still works
        cfg = load_config(None, ["env.id=test/factory-v0", "env.params={}", "model.name=tiny"])
        with pytest.raises(ConfigError, match="env.id: .*test/factory-v0.* is not a TextEnv or multi-agent game class"):
            check_config(cfg)
    finally:
        agentgym.registry._REGISTRY.pop("test/factory-v0", None)


def test_an_env_registered_by_a_plain_module_names_that_module_as_its_source(tmp_path, monkeypatch):
    """`agentgym envs` shows where an env comes from: a user's module, not "agentgym"."""
    import importlib
    import sys

    (tmp_path / "my_plain_envs.py").write_text(
        "import agentgym\nagentgym.register('plain/echo-v0', 'tests.conftest:NoEEnv')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        importlib.import_module("my_plain_envs")
        assert agentgym.registry.spec("plain/echo-v0").source == "module my_plain_envs"
        assert agentgym.registry.spec("math/chain-v0").source == "agentgym-math"
    finally:
        import gymnasium

        agentgym.registry._REGISTRY.pop("plain/echo-v0", None)
        gymnasium.registry.pop("plain/echo-v0", None)
        sys.modules.pop("my_plain_envs", None)
