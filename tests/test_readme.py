"""The README's examples run as written."""

import re
import textwrap
from pathlib import Path

import numpy as np

import agentgym
from agentgym.curriculum import TrainingTasks
from tests.conftest import fake_installed_dist, run_isolated

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _block(marker: str) -> str:
    for block in re.findall(r"```(?:python|toml)\n(.*?)```", README, re.DOTALL):
        if block.startswith(marker):
            return block
    raise AssertionError(f"no README block starts with {marker!r}")


def test_register_a_new_environment_example_works(tmp_path):
    pkg = tmp_path / "my_envs"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(_block("# my_envs/__init__.py"))
    toml = _block("# pyproject.toml beside the my_envs/ folder")
    group, line = re.search(r'\[project\.entry-points\."(.+?)"\]\n(.+)', toml).groups()
    fake_installed_dist(tmp_path, "my-envs", f"[{group}]\n{line.replace(chr(34), '')}\n")
    code = textwrap.dedent("""
        import agentgym, gymnasium
        from gymnasium.utils.env_checker import check_env
        env = agentgym.make("mine/reverse-v0")
        check_env(env)
        env.reset(seed=1)
        _, r, term, _, info = env.step(env.oracle())
        assert r == 1.0 and term and info["success"]
        gymnasium.make("mine/reverse-v0").reset(seed=0)
        print("OK")
    """)
    res = run_isolated(code, tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith("OK")


def test_the_pyproject_excerpt_builds_a_package_with_the_entry_point(tmp_path):
    import subprocess
    import sys
    import zipfile

    (tmp_path / "my_envs").mkdir()
    (tmp_path / "my_envs" / "__init__.py").write_text(_block("# my_envs/__init__.py"))
    (tmp_path / "pyproject.toml").write_text(_block("# pyproject.toml beside the my_envs/ folder"))
    out = tmp_path / "dist"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    (wheel,) = out.glob("my_envs-0.1.0-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        entry = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "my_envs/__init__.py" in names and "[agentgym.envs]" in entry and "mine = my_envs:register" in entry


def test_python_quickstart_snippet_runs():
    snippet = _block("import agentgym\nfrom agentgym import TaskSpec")
    exec(compile(snippet.replace("print(", "(lambda *a: None)("), "README", "exec"), {})


def test_every_python_block_runs_or_is_run_elsewhere():
    """Each README Python block runs, pasted alone: the rollout-and-eval one here, with the
    tiny model and a smaller evaluation; the others in the tests named beside them."""
    elsewhere = {
        # the quickstart and the multi-agent snippet (test_multiagent_snippet_plays_a_whole_game)
        "import agentgym\nfrom agentgym import TaskSpec": "test_python_quickstart_snippet_runs",
        "# my_envs/__init__.py": "test_register_a_new_environment_example_works",
        "# OpenEnv's client on an agentgym env": "test_interop_snippets_run",
        "# Other frameworks' envs here, by id": "test_interop_snippets_run",
    }
    blocks = re.findall(r"```python\n(.*?)```", README, re.DOTALL)
    rest = [b for b in blocks if not any(b.startswith(m) for m in elsewhere)]
    assert len(rest) == 1 and "RolloutRunner" in rest[0], [b[:60] for b in rest]
    code = rest[0].replace('make_policy("smollm2-135m")', 'make_policy("tiny")').replace("n_tasks=100", "n_tasks=3")
    code = code.replace("max_new_tokens=128", "max_new_tokens=4").replace("print(", "(lambda *a: None)(")
    ns: dict = {}
    exec(compile(code, "README", "exec"), ns)  # a fresh namespace: nothing from another block
    assert len(ns["episodes"]) == 32 and ns["report"].overall.tasks == 3


def test_restricted_training_tasks_never_hold_out():
    """The trainer's task source with a restriction that overlaps the held-out region."""
    cls = agentgym.spec("math/arithmetic-v0").load_class()
    tt = TrainingTasks(cls.param_space, cls.held_out, {"digits": [2, 3], "n_operands": [3, 4]})
    rng = np.random.default_rng(0)
    for _ in range(100_000):
        spec = tt.spec(rng)
        assert not cls.held_out.is_held_out(spec.params, spec.seed)
        assert spec.params["digits"] in (2, 3) and spec.params["n_operands"] in (3, 4)
    evals = tt.held_out_specs(200, seed=0)
    assert all(s.seed in cls.held_out.seeds for s in evals)
    assert any(cls.held_out.region.contains(s.params) for s in evals)  # the unseen region is evaluated


def test_multiagent_snippet_plays_a_whole_game():
    (snippet,) = [b for b in re.findall(r"```python\n(.*?)```", README, re.DOTALL) if "multiagent/nim-v0" in b]
    printed = []
    ns = {"print": lambda *a: printed.append(a)}
    exec(compile(snippet, "README", "exec"), ns)
    # The scripted players moved in turn until the last object was taken.
    assert [a for a, _ in printed[:3]] == ["player_0", "player_1", "player_0"]
    assert "You move first." in printed[0][1] and "Your move." in printed[-1][1]
    assert not ns["env"].agents


def test_interop_snippets_run(tmp_path):
    """The "Use agentgym envs elsewhere / use other envs here" blocks: OpenEnv's client on a
    served env (the README's server command, on a free port), and a TextArena game by id."""
    import subprocess
    import sys

    import pytest

    pytest.importorskip("openenv.core")
    pytest.importorskip("textarena")
    command = re.search(r"```bash\n(agentgym serve \S+ --port 8000 --openenv)\n```", README).group(1)
    args = command.replace("--port 8000", "--port 0").split()[1:]
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentgym.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=root,
    )
    try:
        url = proc.stdout.readline().split(" at ")[1].split()[0]
        client = _block("# OpenEnv's client on an agentgym env").replace("http://127.0.0.1:8000", url)
        printed: list = []
        exec(compile(client, "README", "exec"), {"print": lambda *a: printed.append(a)})
        assert printed[0][0].startswith("What is") and printed[1][1] is True  # the episode ended
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    printed = []
    exec(
        compile(_block("# Other frameworks' envs here, by id"), "README", "exec"),
        {"print": lambda *a: printed.append(a)},
    )
    assert printed[0][0] == "player_0" and "Available Moves" in printed[0][1]
