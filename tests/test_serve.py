"""A served env driven by a remote client gives the local env's transcript for the same TaskSpec."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import agentgym
from agentgym import TaskSpec
from agentgym.serve import RemoteEnv, RemoteEnvError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def served():
    """`agentgym serve` in its own process, on a free loopback port."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentgym.cli", "serve", "math/arithmetic-v0", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    line = proc.stdout.readline()
    assert line.startswith("serving math/arithmetic-v0 at http://127.0.0.1:"), proc.stderr.read()
    yield line.split(" at ")[1].strip()
    proc.terminate()
    proc.wait(timeout=10)


def _play(env, task, replies):
    obs, info = env.reset(options={"task": task})
    steps = [(obs, info)]
    for reply in replies:
        obs, reward, term, trunc, info = env.step(reply)
        steps.append((obs, reward, term, trunc, info))
        if term or trunc:
            break
    return steps


def test_remote_transcript_equals_local(served):
    task = TaskSpec({"digits": 2, "n_operands": 3, "operators": "+-", "negatives": False}, 11)
    local = agentgym.make("math/arithmetic-v0")
    local.reset(options={"task": task})
    right = local.unwrapped.oracle()
    for replies in (["I think it is 5."], [right], ["\\boxed{nonsense}", right]):
        remote = RemoteEnv(served)
        got = _play(remote, task, replies)
        want = json.loads(json.dumps(_play(agentgym.make("math/arithmetic-v0"), task, replies)))
        assert [list(s) for s in got] == [list(s) for s in want]
        state = remote.state()
        assert state["task"] == task.to_dict() and state["done"]
        remote.close()


def test_many_sessions_and_clear_errors(served):
    a, b = RemoteEnv(served), RemoteEnv(served)
    a.reset(options={"task": TaskSpec({"digits": 1, "n_operands": 2, "operators": "+", "negatives": False}, 1)})
    b.reset(options={"task": TaskSpec({"digits": 1, "n_operands": 2, "operators": "+", "negatives": False}, 2)})
    assert a.session != b.session and a.state()["task"]["seed"] == 1 and b.state()["task"]["seed"] == 2
    with pytest.raises(RemoteEnvError, match="unknown parameter"):
        a.reset(options={"task": TaskSpec({"nope": 1}, 0)})
    a.close()
    with pytest.raises(RemoteEnvError, match="no session"):
        a._call("POST", "/step", {"session": "missing", "action": "1"})
    spec = json.loads(urllib.request.urlopen(served + "/spec").read())
    assert spec["env_id"] == "math/arithmetic-v0" and {p["name"] for p in spec["params"]} >= {"digits"}
    b.close()


def test_reset_fills_left_out_params_as_play_does(served):
    """`/reset` with some params: the rest come from a training task drawn with the seed,
    the task `agentgym play -p digits=2 --seed 5` plays."""
    from agentgym.cli import _task

    remote = RemoteEnv(served)
    remote.reset(options={"task": TaskSpec({"digits": 2}, 5)})
    got = remote.state()["task"]
    assert got == _task("math/arithmetic-v0", {"digits": 2}, 5).to_dict() and got["params"]["digits"] == 2
    with pytest.raises(RemoteEnvError, match="digits"):
        remote.reset(options={"task": TaskSpec({"digits": 9}, 5)})
    remote.close()


def test_games_are_served_as_seats_taking_turns():
    """A game vs a scripted opponent plays through RemoteEnv like a single-agent env; a
    self-play game answers whose turn it is and takes moves by seat."""
    from agentgym.rollout.seats import seat_env
    from agentgym.serve import EnvServer

    server = EnvServer("multiagent/nim-v0").start()
    try:
        vs = TaskSpec({"heaps": 2, "max_heap": 4, "opponent": "optimal", "seat": 1}, 3)
        remote = RemoteEnv(server.url)
        replies = ["take 1 from heap 1", "take 1 from heap 2", "take 1 from heap 1", "take 1 from heap 2"]
        got = _play(remote, vs, replies)
        assert got[-1][2] and got[-1][1] == -1.0  # the optimal first player wins
        local = seat_env(agentgym.make("multiagent/nim-v0"))
        turn = local.reset(vs)
        assert got[0][0] == turn.observations["player_1"]
        for step, reply in zip(got[1:], replies):
            turn = local.step(reply)
            assert step[0] == turn.observations["player_1"]
        assert turn.done and remote.state()["done"]
        remote.close()

        def post(path, body):
            req = urllib.request.Request(
                server.url + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
            )
            return json.loads(urllib.request.urlopen(req).read())

        self_play = TaskSpec({"heaps": 1, "max_heap": 3, "opponent": "self", "seat": 0}, 2)
        out = post("/reset", {"task": self_play.to_dict()})
        turn = out["turn"]
        assert (
            "observation" not in out
            and turn["movers"] == ["player_0"]
            and set(turn["observations"])
            == {
                "player_0",
                "player_1",
            }
        )
        while not turn["done"]:
            (seat,) = turn["movers"]
            turn = post("/step", {"session": out["session"], "moves": {seat: "take 1 from heap 1"}})["turn"]
        assert {c[0] for c in turn["credits"]} == {"player_0", "player_1"}
        with pytest.raises(urllib.error.HTTPError):  # over: no more moves
            post("/step", {"session": out["session"], "moves": {"player_0": "take 1 from heap 1"}})
        spec = json.loads(urllib.request.urlopen(server.url + "/spec").read())
        assert spec["agents"] == ["player_0", "player_1"]
    finally:
        server.close()
    with pytest.raises(ValueError, match="OpenEnv"):
        EnvServer("multiagent/nim-v0", protocol="openenv")
