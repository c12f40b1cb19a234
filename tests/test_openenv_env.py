"""An OpenEnv server by URL as an agentgym env (``openenv:http://host:port``).

Two servers, each in its own process: one written with OpenEnv's own server classes
(``Environment`` + ``create_app``, served by uvicorn, as OpenEnv documents), and
``agentgym serve --openenv``. The env plays, trains 2 GRPO steps and evaluates.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("openenv.core", reason="openenv is not installed (pip install -e '.[test]')")
pytest.importorskip("uvicorn")

import agentgym  # noqa: E402
from agentgym import TaskSpec  # noqa: E402
from agentgym.registry import EnvNotFound  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

# A counting game as an OpenEnv environment: the server names a number and the agent
# replies with the next one; three right answers in a row win (reward 1 each).
SERVER = textwrap.dedent(
    """
    import random

    from openenv.core.env_server import Action, Environment, Observation, State, create_app


    class CountAction(Action):
        answer: str


    class CountObservation(Observation):
        prompt: str


    class CountEnv(Environment):
        SUPPORTS_CONCURRENT_SESSIONS = True

        def reset(self, seed=None, episode_id=None, **kwargs):
            self.n, self.right = random.Random(seed).randint(1, 50), 0
            self._state = State(episode_id=episode_id, step_count=0)
            return CountObservation(prompt=f"Count on from {self.n}.")

        def step(self, action, timeout_s=None, **kwargs):
            self._state.step_count += 1
            ok = action.answer.strip() == str(self.n + 1)
            self.n, self.right = (self.n + 1, self.right + 1) if ok else (self.n, self.right)
            return CountObservation(
                prompt=f"{'Yes' if ok else 'No'}. Now {self.n}.", reward=float(ok), done=self.right == 3
            )

        @property
        def state(self):
            return self._state


    app = create_app(CountEnv, CountAction, CountObservation, env_name="count", max_concurrent_envs=8)
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read())
        try:
            urllib.request.urlopen(url + "/health", timeout=2)
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the server did not start")


@pytest.fixture(scope="module")
def openenv_server(tmp_path_factory):
    """OpenEnv's own server code for the counting game, under uvicorn."""
    root = tmp_path_factory.mktemp("count_env")
    (root / "count_server.py").write_text(SERVER)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "count_server:app", "--port", str(port), "--log-level", "warning"],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    _wait(url, proc)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def agentgym_server():
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentgym.cli", "serve", "math/arithmetic-retry-v0", "--port", "0", "--openenv"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    line = proc.stdout.readline()
    assert " at http://" in line, proc.stderr.read()
    yield line.split(" at ")[1].split()[0]
    proc.terminate()
    proc.wait(timeout=10)


def test_an_openenv_server_plays_as_an_agentgym_env(openenv_server):
    env = agentgym.make(f"openenv:{openenv_server}")
    assert env.action_field == "answer" and env.param_space.names == []
    obs, info = env.reset(seed=4)
    start = int(obs[0]["content"].split()[-1].rstrip("."))
    assert obs == [{"role": "user", "content": f"Count on from {start}."}]
    msgs, reward, term, _, info = env.step("nine")
    assert reward == 0.0 and not term and msgs[0]["content"] == f"No. Now {start}."
    for i in range(1, 4):
        msgs, reward, term, trunc, info = env.step(str(start + i))
        assert reward == 1.0 and info["reward_parts"] == {"reward": 1.0}
    assert term and not trunc and info["success"] and info["turn"] == 4
    # The same seed, the same start: the seed travels to the server.
    assert env.reset(seed=4)[0] == obs
    # Bad input: the env's error observation, the session goes on.
    _, reward, term, _, info = env.step(None)
    assert info["error"] and not term
    env.close()
    # Absent, not invented: no parameters, held-out tasks are held-out seeds, no oracle.
    cls = agentgym.spec(f"openenv:{openenv_server}").load_class()
    assert all(t.seed in cls.held_out.seeds and t.params == {} for t in cls.held_out_tasks(3))
    with pytest.raises(NotImplementedError):
        env.oracle()


def test_agentgym_served_env_round_trips_its_episode(agentgym_server):
    remote = agentgym.make(f"openenv:{agentgym_server}")
    assert remote.action_field == "message"
    local = agentgym.make("math/arithmetic-retry-v0")
    obs_remote, info = remote.reset(seed=9)
    # The server is sent the task's seed and draws its task from it, as reset(seed=) does here.
    obs_local, _ = local.reset(seed=info["task"]["seed"])
    assert obs_remote == obs_local  # the chat messages come back as they were
    right = local.unwrapped.oracle()
    for reply in ["41", right]:
        want = local.step(reply)
        got = remote.step(reply)
        assert got[0] == want[0] and got[1] == want[1] and got[2] == want[2]
    assert got[4]["success"] == want[4]["success"] is True
    remote.close()


def test_bad_urls_are_clear_errors():
    with pytest.raises(EnvNotFound, match="openenv:<server url>"):
        agentgym.spec("openenv:localhost:9")
    port = _free_port()
    with pytest.raises(ValueError, match="no OpenEnv server answers"):
        agentgym.make(f"openenv:http://127.0.0.1:{port}")


def test_grpo_trains_two_steps_on_an_openenv_server_and_evaluates(openenv_server, tmp_path):
    from agentgym.config import load_config
    from agentgym.grpo.trainer import GRPOTrainer

    cfg = load_config(
        None,
        [
            f"run_dir={tmp_path / 'run'}",
            "model.name=tiny",
            f"env.id=openenv:{openenv_server}",
            "env.kwargs={max_turns: 2}",
            "rollout.tasks_per_step=2",
            "rollout.group_size=2",
            "rollout.max_new_tokens=4",
            "rollout.max_episode_tokens=128",
            "grpo.mask_truncated=false",
            "train.steps=2",
            "train.eval_tasks=2",
            "train.eval_max_new_tokens=4",
        ],
    )
    trainer = GRPOTrainer(cfg, quiet=True)
    assert trainer.train().steps_done == 2
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len([x for x in lines if "loss" in x]) == 2 and any(any(k.startswith("eval/") for k in x) for x in lines)
    assert TaskSpec({}, trainer.eval_tasks[0].seed).seed in agentgym.spec(cfg.env.id).load_class().held_out.seeds
