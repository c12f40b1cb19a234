"""`agentgym serve --openenv`: OpenEnv's own client, unmodified, plays agentgym envs.

The server runs in its own process, as a user starts it; the client is
``openenv.core.GenericEnvClient`` from the ``openenv`` package. Hostile input gets a clear
error and the server keeps serving.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

openenv_core = pytest.importorskip("openenv.core", reason="openenv is not installed (pip install -e '.[test]')")
websockets_sync = pytest.importorskip("websockets.sync.client")

import agentgym  # noqa: E402
from agentgym import TaskSpec  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ENV_ID = "math/arithmetic-retry-v0"  # multi-turn: a wrong answer gets feedback and another try
TASK = TaskSpec({"digits": 2, "n_operands": 3, "operators": "+-", "negatives": False}, 11)


@pytest.fixture(scope="module")
def served():
    """`agentgym serve ENV --openenv` in its own process, on a free loopback port."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentgym.cli", "serve", ENV_ID, "--port", "0", "--openenv"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    line = proc.stdout.readline()
    assert line.startswith(f"serving {ENV_ID} at http://127.0.0.1:"), proc.stderr.read()
    assert line.rstrip().endswith("(OpenEnv protocol)")
    yield line.split(" at ")[1].split()[0]
    proc.terminate()
    proc.wait(timeout=10)


def _local_episode(replies):
    env = agentgym.make(ENV_ID)
    obs, info = env.reset(options={"task": TASK})
    steps = [(obs, None, False, info)]
    for reply in replies:
        obs, reward, term, trunc, info = env.step(reply)
        steps.append((obs, reward, term or trunc, {**info, "terminated": term, "truncated": trunc}))
        if term or trunc:
            break
    return steps, [dict(m) for m in env.unwrapped._transcript]


def _oracle():
    env = agentgym.make(ENV_ID)
    env.reset(options={"task": TASK})
    return env.unwrapped.oracle()


def test_openenv_client_plays_the_same_episode_as_in_process(served):
    from openenv.core import GenericEnvClient

    replies = ["I think it is 5.", "\\boxed{nonsense}", _oracle()]
    want, want_transcript = _local_episode(replies)
    assert want[-1][2] and want[-1][3]["success"], "the oracle's answer ends the local episode with success"
    with GenericEnvClient(base_url=served).sync() as client:
        got = [client.reset(options={"task": TASK.to_dict()})]
        for reply in replies:
            got.append(client.step({"message": reply}))
            if got[-1].done:
                break
        state = client.state()
    assert len(got) == len(want) == 4
    for result, (obs, reward, done, info) in zip(got, want):
        assert result.observation["messages"] == json.loads(json.dumps(obs))
        assert result.reward == reward and result.done == done
        info = json.loads(json.dumps(info))
        if reward is None:  # reset: no terminated/truncated in the in-process info
            info = {**info, "terminated": False, "truncated": False}
        assert result.metadata == info
    assert state["transcript"] == want_transcript
    assert state["task"] == TASK.to_dict() and state["done"] and state["step_count"] == 3


def test_sessions_are_separate_and_seeds_travel(served):
    from openenv.core import GenericEnvClient

    a = GenericEnvClient(base_url=served).sync()
    b = GenericEnvClient(base_url=served).sync()
    with a, b:
        ra = a.reset(options={"task": {"params": TASK.to_dict()["params"], "seed": 1}})
        rb = b.reset(options={"task": {"params": TASK.to_dict()["params"], "seed": 2}})
        assert ra.metadata["task"]["seed"] == 1 and rb.metadata["task"]["seed"] == 2
        assert ra.observation["messages"] != rb.observation["messages"]
        a.step({"message": "0"})
        assert a.state()["step_count"] == 1 and b.state()["step_count"] == 0
        # A plain seed (no task) draws a training task from it: the same seed, the same task.
        assert a.reset(seed=7).metadata["task"] == b.reset(seed=7).metadata["task"]


def test_http_endpoints_describe_the_env(served):
    get = lambda path: json.loads(urllib.request.urlopen(served + path, timeout=10).read())  # noqa: E731
    assert get("/health") == {"status": "healthy"}
    assert get("/metadata")["name"] == ENV_ID
    schema = get("/schema")
    assert schema["action"]["required"] == ["message"] and "messages" in schema["observation"]["properties"]
    assert {p["name"] for p in get("/spec")["params"]} >= {"digits", "n_operands"}
    # HTTP reset is stateless, as on OpenEnv's servers: it answers the opening and keeps nothing.
    req = urllib.request.Request(
        served + "/reset",
        data=json.dumps({"options": {"task": TASK.to_dict()}}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},  # as OpenEnv's HTTP client sends (json=...)
    )
    opening = json.loads(urllib.request.urlopen(req, timeout=10).read())
    assert opening["done"] is False and opening["observation"]["messages"] == _local_episode([])[0][0][0]


def _raw_ws(served, headers=()):
    """Open a WebSocket with the ``websockets`` library (the transport OpenEnv's client uses)."""
    return websockets_sync.connect(served.replace("http", "ws") + "/ws", additional_headers=list(headers))


def _ask(ws, payload):
    ws.send(payload if isinstance(payload, str) else json.dumps(payload))
    return json.loads(ws.recv(timeout=10))


def test_hostile_messages_get_clear_errors_and_the_session_goes_on(served):
    with _raw_ws(served) as ws:
        bad = [
            ("{not json", "INVALID_JSON", "Invalid JSON"),
            ("[1, 2]", "VALIDATION_ERROR", "JSON object"),
            ({"type": "explode"}, "UNKNOWN_TYPE", "Unknown message type"),
            ({"type": "step", "data": {"message": "1"}}, "EXECUTION_ERROR", "reset before the first step"),
            ({"type": "reset", "data": "nope"}, "VALIDATION_ERROR", "'data' must be a JSON object"),
            ({"type": "reset", "data": {"seed": "x"}}, "VALIDATION_ERROR", "seed must be an integer"),
            ({"type": "reset", "data": {"options": {"task": {"params": {"nope": 1}}}}}, "EXECUTION_ERROR", "nope"),
            ("[" * 100_000 + "]" * 100_000, "INVALID_JSON", "Invalid JSON"),
        ]
        for payload, code, says in bad:
            answer = _ask(ws, payload)
            assert answer["type"] == "error" and answer["data"]["code"] == code, (payload, answer)
            assert says in answer["data"]["message"]
        opening = _ask(ws, {"type": "reset", "data": {"options": {"task": TASK.to_dict()}}})
        assert opening["type"] == "observation"
        # Unknown fields are refused; a non-string reply is the env's own error observation.
        assert "unknown field" in _ask(ws, {"type": "step", "data": {"message": "1", "x": 2}})["data"]["message"]
        step = _ask(ws, {"type": "step", "data": {"message": {"not": "text"}}})
        assert step["type"] == "observation" and "must be text" in step["data"]["metadata"]["error"]
        with pytest.raises(Exception, match="1009|too big|larger"):
            ws.send("x" * (5 << 20))  # over the 4 MiB cap: closed with 1009 (message too big)
            ws.recv(timeout=10)
    with _raw_ws(served) as ws:  # the server still serves
        assert _ask(ws, {"type": "reset", "data": {}})["type"] == "observation"


def _handshake(served, host, origin=None):
    """The status line the server answers a WebSocket handshake with, sent byte by byte as given."""
    address, port = served.removeprefix("http://").split(":")
    lines = [
        "GET /ws HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    ] + ([f"Origin: {origin}"] if origin else [])
    with socket.create_connection((address, int(port)), timeout=10) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return s.recv(4096).decode()


def test_cross_site_and_rebinding_handshakes_are_refused(served):
    own = served.removeprefix("http://")
    ok = _handshake(served, own)
    # RFC 6455's own example key and answer.
    assert ok.startswith("HTTP/1.1 101") and "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in ok
    assert _handshake(served, own, origin="http://evil.example").startswith("HTTP/1.1 403")  # a page elsewhere
    assert _handshake(served, "evil.example:80").startswith("HTTP/1.1 403")  # DNS rebinding
    assert _handshake(served, own, origin=served).startswith("HTTP/1.1 101")  # a page served from here may


def test_malformed_http_gets_a_clear_error(served):
    host, port = served.removeprefix("http://").split(":")
    for length in ("-1", "abc"):
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(f"POST /reset HTTP/1.1\r\nHost: {host}\r\nContent-Length: {length}\r\n\r\n{{}}".encode())
            answer = b""
            while chunk := s.recv(4096):  # the server closes the connection after the answer
                answer += chunk
            answer = answer.decode()
        assert answer.startswith("HTTP/1.1 400") and "bad Content-Length" in answer
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(
            urllib.request.Request(
                served + "/step", data=b'{"action": {}}', method="POST", headers={"Content-Type": "application/json"}
            )
        )
    assert err.value.code == 400 and "/ws" in json.loads(err.value.read())["error"]
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(served + "/ws", timeout=10)  # no upgrade
    assert err.value.code == 400
