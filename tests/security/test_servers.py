"""Attacks on `agentgym serve` and `agentgym generate-server` (issue 33), replayed on real servers.

Each test sends what an attacker would send over a socket and checks the answer and what
the server holds afterwards (sessions, threads, weights), not only a status code.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
import torch

from agentgym.policies.models import load_model
from agentgym.policies.remote import GenerationServer
from agentgym.policies.transformers_policy import TransformersPolicy
from agentgym.serve import EnvServer, RemoteEnv, RemoteEnvError

MATH = "math/arithmetic-v0"


def _raw(url: str, request: bytes, timeout: float = 10.0) -> str:
    """Send ``request`` as it is and read the answer until the server closes or goes quiet."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(request)
        answer = b""
        try:
            while chunk := s.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer:
                    head, _, rest = answer.partition(b"\r\n\r\n")
                    length = [ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length:")]
                    if length and len(rest) >= int(length[0].split(b":")[1]):
                        break
        except TimeoutError:
            pass
    return answer.decode("utf-8", "replace")


def _post(url: str, path: str, body: bytes, headers: dict[str, str]) -> str:
    host = url.removeprefix("http://")
    head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": host, **headers}.items())
    return _raw(url, f"POST {path} HTTP/1.1\r\n{head}\r\n".encode() + body)


@pytest.fixture()
def env_server():
    server = EnvServer(MATH).start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def gen_server():
    model, tok = load_model("tiny", seed=0)
    server = GenerationServer(TransformersPolicy(model, tok, seed=0), model="tiny").start()
    yield server, model
    server.close()


# ----- length, content type, depth ------------------------------------------------------------
@pytest.mark.parametrize("which", ["serve", "generate"])
@pytest.mark.parametrize("length", ["-1", "abc", "1e9", "+5", " 12 x"])
def test_a_bad_content_length_is_refused_with_a_clear_error(which, length, env_server, gen_server):
    url, path = (env_server.url, "/reset") if which == "serve" else (gen_server[0].url, "/generate")
    answer = _post(url, path, b"{}" + b"x" * 4096, {"Content-Length": length, "Content-Type": "application/json"})
    assert answer.startswith("HTTP/1.1 400") and "bad Content-Length" in answer, answer[:300]


@pytest.mark.parametrize("which", ["serve", "generate"])
def test_a_very_deep_json_body_is_a_400_not_a_traceback(which, env_server, gen_server):
    url, path = (env_server.url, "/reset") if which == "serve" else (gen_server[0].url, "/generate")
    body = b"[" * 100_000 + b"]" * 100_000
    answer = _post(url, path, body, {"Content-Length": str(len(body)), "Content-Type": "application/json"})
    assert answer.startswith("HTTP/1.1 400") and "bad JSON body" in answer, answer[:300]


def test_a_chunked_body_is_refused(env_server):
    body = b"2\r\n{}\r\n0\r\n\r\n"
    answer = _post(env_server.url, "/reset", body, {"Transfer-Encoding": "chunked", "Content-Type": "application/json"})
    assert answer.startswith("HTTP/1.1 411")
    assert len(env_server.sessions) == 0


# ----- CSRF and DNS rebinding -----------------------------------------------------------------
def test_a_cross_site_text_plain_request_runs_nothing(env_server):
    """The shape of a browser CSRF: a simple (no preflight) text/plain POST from another site."""
    body = json.dumps({}).encode()
    own = env_server.url.removeprefix("http://")
    for headers, status in [
        ({"Content-Type": "text/plain", "Origin": "http://evil.example"}, "403"),  # foreign page
        ({"Content-Type": "text/plain"}, "415"),  # no Origin (an old browser): the type alone is refused
        ({"Content-Type": "application/json", "Origin": "http://evil.example"}, "403"),
        ({"Content-Type": "application/json", "Origin": "null"}, "403"),  # a sandboxed frame, file://
        ({"Content-Type": "application/json", "Origin": f"http://127.0.0.1:{int(own.split(':')[1]) + 1}"}, "403"),
    ]:
        answer = _post(env_server.url, "/reset", body, {"Content-Length": str(len(body)), **headers})
        assert answer.startswith(f"HTTP/1.1 {status}"), (headers, answer[:200])
    assert len(env_server.sessions) == 0  # no env was made: nothing ran
    ok = _post(env_server.url, "/reset", body, {"Content-Length": str(len(body)), "Content-Type": "application/json"})
    assert ok.startswith("HTTP/1.1 200") and len(env_server.sessions) == 1


@pytest.mark.parametrize("which", ["serve", "generate"])
def test_a_rebound_host_name_is_refused(which, env_server, gen_server):
    url = env_server.url if which == "serve" else gen_server[0].url
    for host in ("evil.example", f"evil.example:{url.rsplit(':', 1)[1]}", "127.0.0.1.evil.example"):
        answer = _raw(url, f"GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        assert answer.startswith("HTTP/1.1 403") and "Host" in answer, (host, answer[:200])
    two = _raw(url, b"GET /health HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n")
    assert two.startswith("HTTP/1.1 400")
    assert _raw(url, b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n").startswith("HTTP/1.1 200")


def test_servers_off_loopback_need_a_token():
    with pytest.raises(ValueError, match="needs a token"):
        EnvServer(MATH, host="0.0.0.0")
    with pytest.raises(ValueError, match="replace the weights: give a token"):
        GenerationServer(object(), host="0.0.0.0")


def test_the_env_server_token_gates_every_request():
    server = EnvServer(MATH, token="s3cret").start()
    try:
        with pytest.raises(RemoteEnvError, match="missing or wrong bearer token"):
            RemoteEnv(server.url, token="wrong")
        env = RemoteEnv(server.url, token="s3cret")
        env.reset(seed=1)
        assert len(server.sessions) == 1
        env.close()
    finally:
        server.close()


# ----- sessions -------------------------------------------------------------------------------
def test_idle_sessions_expire_and_free_their_sandboxes():
    pytest.importorskip("agentgym_tools")
    server = EnvServer("tools/python-v0", max_sessions=3, idle_seconds=1.0).start()
    try:
        envs = [RemoteEnv(server.url) for _ in range(3)]
        for env in envs:
            env.reset(seed=0)
            env.step('<tool_call>{"name": "python", "arguments": {"code": "print(1)"}}</tool_call>')
        workers = [play.env.unwrapped._sandbox.worker_pid for _, play, _ in server.sessions._entries.values()]
        assert len(workers) == 3 and all(pid and _alive(pid) for pid in workers)
        with pytest.raises(RemoteEnvError, match="3 sessions are open"):
            RemoteEnv(server.url).reset(seed=0)  # the cap
        deadline = time.monotonic() + 10
        while len(server.sessions) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(server.sessions) == 0  # the reaper closed them without any request
        assert not any(_alive(pid) for pid in workers)  # and their sandbox workers are gone
        with pytest.raises(RemoteEnvError, match="expired after 1 s idle"):
            envs[0].step("1")
        fresh = RemoteEnv(server.url)
        fresh.reset(seed=0)
        assert len(server.sessions) == 1
    finally:
        server.close()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_a_session_in_use_is_not_expired(env_server):
    env_server.sessions.idle_seconds = 0.2
    env = RemoteEnv(env_server.url)
    env.reset(seed=3)
    lock, _ = env_server.sessions.get(env.session)
    with lock:  # a step in progress for longer than the idle time
        time.sleep(0.3)
        assert env_server.sessions.expire() == 0 and len(env_server.sessions) == 1
    assert env_server.sessions.expire() == 1 and len(env_server.sessions) == 0


# ----- half-sent requests ---------------------------------------------------------------------
def test_half_sent_requests_hold_a_bounded_number_of_threads_and_time_out():
    server = EnvServer(MATH, max_connections=8).start()
    server.httpd.read_timeout = 2.0
    before = threading.active_count()
    host, port = server.url.removeprefix("http://").split(":")
    socks = []
    try:
        for _ in range(40):
            s = socket.create_connection((host, int(port)), timeout=5)
            s.sendall(b"POST /reset HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")  # never finished
            socks.append(s)
            time.sleep(0.005)
        time.sleep(0.3)
        assert threading.active_count() - before <= 8  # not one thread per socket
        busy = _raw(server.url, b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert busy.startswith("HTTP/1.1 503")
        time.sleep(2.5)  # the read timeout frees the slots
        assert _raw(server.url, b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n").startswith("HTTP/1.1 200")
        assert threading.active_count() - before <= 2
    finally:
        for s in socks:
            s.close()
        server.close()


# ----- weight uploads -------------------------------------------------------------------------
def _upload(url: str, query: str, data: bytes) -> tuple[int, str]:
    req = urllib.request.Request(
        url + "/weights?" + query, data=data, method="POST", headers={"Content-Type": "application/octet-stream"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_an_upload_of_the_wrong_shape_is_refused_and_generation_is_unchanged(gen_server):
    from safetensors.torch import save

    server, model = gen_server
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for bad in (
        torch.zeros(1),  # the attack: broadcast into every row
        torch.zeros(before["model.embed_tokens.weight"].shape[::-1]),  # transposed
        torch.zeros(before["model.embed_tokens.weight"].shape, dtype=torch.int64),  # integer data
    ):
        status, text = _upload(server.url, "version=5&part=0&parts=1", save({"model.embed_tokens.weight": bad}))
        assert status == 400 and "model.embed_tokens.weight" in text, text
    assert server.version == 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_parts_are_bounded_and_a_tensor_comes_once(gen_server):
    from safetensors.torch import save

    server, model = gen_server
    emb = model.state_dict()["model.embed_tokens.weight"].clone()
    status, text = _upload(server.url, "version=6&part=0&parts=1000000", save({"model.embed_tokens.weight": emb}))
    assert status == 400 and "1000000" in text and str(len(model.state_dict())) in text
    # The same tensor in every part would hold K copies until the last arrives: refused.
    blob = save({"model.embed_tokens.weight": emb})
    assert _upload(server.url, "version=6&part=0&parts=3", blob)[0] == 200
    status, text = _upload(server.url, "version=6&part=1&parts=3", blob)
    assert status == 400 and "two parts" in text
    assert server._parts == {} and server.version == 0


def test_a_weights_upload_needs_its_content_type(gen_server):
    """A browser can send text/plain cross-site without asking; weights never come that way."""
    server, _ = gen_server
    req = urllib.request.Request(server.url + "/weights?version=1&part=0&parts=1", data=b"x", method="POST")
    req.add_header("Content-Type", "text/plain")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 415


def test_the_generate_server_command_makes_a_token_by_default(monkeypatch):
    from typer.testing import CliRunner

    import agentgym.policies.remote as remote
    from agentgym.cli import app

    seen = {}

    class Fake:
        url = "http://127.0.0.1:1"

        def serve_forever(self):
            pass

        def close(self):
            pass

    def fake_serve_model(name, **kw):
        seen.update(kw)
        return Fake()

    monkeypatch.setattr(remote, "serve_model", fake_serve_model)
    monkeypatch.delenv("AGENTGYM_SERVER_TOKEN", raising=False)
    out = CliRunner().invoke(app, ["generate-server", "tiny"])
    assert out.exit_code == 0, out.output
    assert seen["token"] and len(seen["token"]) >= 24 and f"AGENTGYM_SERVER_TOKEN={seen['token']}" in out.output
    out = CliRunner().invoke(app, ["generate-server", "tiny", "--no-token", "--host", "0.0.0.0"])
    assert out.exit_code == 2 and "loopback" in out.output
    assert os.environ.get("AGENTGYM_SERVER_TOKEN") is None
