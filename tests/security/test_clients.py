"""Hostile servers against agentgym's HTTP clients (issue 33): redirects that would carry
credentials to another host, answers without token ids or with ids out of range, huge answers."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agentgym.policies import SamplingParams
from agentgym.policies.models import load_tokenizer
from agentgym.policies.openai_policy import APIError, OpenAIPolicy
from agentgym.policies.remote import RemoteGenerationError, RemotePolicy
from agentgym.serve import RemoteEnv, RemoteEnvError


class Fake:
    """A server whose answer to every request is ``answer(handler) -> (status, headers, body)``;
    it records each request's path and headers."""

    def __init__(self, answer: Callable[[BaseHTTPRequestHandler], tuple[int, dict, bytes]]):
        self.seen: list[tuple[str, str, dict]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                fake.seen.append((self.command, self.path, dict(self.headers)))
                status, headers, body = answer(self)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if "Content-Length" not in headers:
                    self.send_header("Connection", "close")
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass

            do_GET = do_POST = _any  # noqa: N815

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _json(payload, status=200):
    data = json.dumps(payload).encode()
    return status, {"Content-Type": "application/json", "Content-Length": str(len(data))}, data


@pytest.fixture()
def tok():
    return load_tokenizer("tiny")


@pytest.fixture()
def elsewhere():
    """The host a redirect leads to: another origin (``localhost`` and another port)."""
    health = {"ok": True, "model": "tiny", "backend": "x", "version": 0, "env_id": "x", "max_turns": 1}
    completion = {"choices": [{"text": "", "finish_reason": "length"}]}
    server = Fake(lambda h: _json(completion if h.path.endswith("/completions") else health))
    yield server
    server.close()


def _redirector(target: str, code: int = 302):
    return Fake(lambda h: (code, {"Location": target + h.path, "Content-Length": "0"}, b""))


def _authorizations(server: Fake) -> list[str | None]:
    return [headers.get("Authorization") for _, _, headers in server.seen]


def test_the_generation_token_does_not_follow_a_redirect_to_another_host(elsewhere, tok):
    front = _redirector(elsewhere.url("localhost"))
    try:
        RemotePolicy(front.url(), tok, token="s3cret-gen")
        assert _authorizations(front) == ["Bearer s3cret-gen"]
        assert elsewhere.seen and _authorizations(elsewhere) == [None]
    finally:
        front.close()


def test_the_env_server_token_does_not_follow_a_redirect_to_another_host(elsewhere):
    front = _redirector(elsewhere.url("localhost"))
    try:
        RemoteEnv(front.url(), token="s3cret-env")
        assert _authorizations(front) == ["Bearer s3cret-env"] and _authorizations(elsewhere) == [None]
    finally:
        front.close()


def test_the_openai_key_does_not_follow_a_redirect_to_another_host(elsewhere, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    front = _redirector(elsewhere.url("localhost"), code=303)
    try:
        policy = OpenAIPolicy(front.url(), model="m", tokenizer="tiny")
        policy.generate([[1, 2]], SamplingParams(max_new_tokens=2))
        assert _authorizations(front) == ["Bearer sk-secret"]
        assert elsewhere.seen and _authorizations(elsewhere) == [None]
    finally:
        front.close()


def test_a_same_origin_redirect_keeps_the_token(tok):
    server = Fake(
        lambda h: (
            _json({"ok": True, "model": "tiny", "backend": "x", "version": 0})
            if h.path == "/moved/health"
            else (302, {"Location": "/moved/health", "Content-Length": "0"}, b"")
        )
    )
    try:
        RemotePolicy(server.url(), tok, token="s3cret")
        assert _authorizations(server) == ["Bearer s3cret", "Bearer s3cret"]
    finally:
        server.close()


# ----- what an OpenAI-compatible server answers ------------------------------------------------
def _completion_server(choice: dict) -> Fake:
    return Fake(lambda h: _json({"choices": [choice]}))


def test_an_answer_without_token_ids_is_encoded_again_with_a_warning(tok):
    """vLLM's usual answer without return_tokens_as_token_ids: text, finish_reason stop."""
    server = _completion_server({"text": "hello there", "finish_reason": "stop", "logprobs": None})
    try:
        policy = OpenAIPolicy(server.url(), model="m", tokenizer="tiny")
        with pytest.warns(RuntimeWarning, match="without token ids"):
            (c,) = policy.generate([[1, 2]], SamplingParams(max_new_tokens=8))
        text_ids = tok.encode("hello there", add_special_tokens=False)
        assert c.token_ids[:-1] == text_ids and c.token_ids[-1] in policy.chat.eos_token_ids
        assert c.finish_reason == "stop" and policy.retokenized == 1
    finally:
        server.close()


@pytest.mark.parametrize("bad", [-1, 10**9, "vocab"])
def test_token_ids_out_of_range_are_refused(bad, tok):
    token = f"token_id:{len(tok) + 5}" if bad == "vocab" else f"token_id:{bad}"
    server = _completion_server(
        {"text": "x", "finish_reason": "length", "logprobs": {"tokens": [token], "token_logprobs": [-0.1]}}
    )
    try:
        policy = OpenAIPolicy(server.url(), model="m", tokenizer="tiny")
        with pytest.raises(APIError, match="outside the tokenizer's"):
            policy.generate([[1, 2]], SamplingParams(max_new_tokens=2))
    finally:
        server.close()


@pytest.mark.parametrize(
    "answer",
    [
        {"choices": None},
        {"choices": []},
        {"choices": [{"text": 5}]},
        {"choices": [{"text": "x", "logprobs": {"tokens": ["token_id:1"], "token_logprobs": [float("nan")]}}]},
        {"choices": [{"text": "x", "logprobs": {"tokens": ["token_id:1"], "token_logprobs": [3.0]}}]},
    ],
)
def test_malformed_answers_are_clear_errors(answer):
    server = Fake(lambda h: _json(answer))
    try:
        policy = OpenAIPolicy(server.url(), model="m", tokenizer="tiny")
        with pytest.raises(APIError, match="/v1/completions"):
            policy.generate([[1, 2]], SamplingParams(max_new_tokens=2))
    finally:
        server.close()


def test_a_generation_server_with_ids_out_of_range_is_refused(tok):
    def answer(h):
        if h.command == "GET":
            return _json({"ok": True, "model": "tiny", "backend": "x", "version": 0})
        return _json(
            {"version": 0, "completions": [{"token_ids": [len(tok)], "logprobs": [0.0], "finish_reason": "length"}]}
        )

    server = Fake(answer)
    try:
        policy = RemotePolicy(server.url(), tok)
        with pytest.raises(RemoteGenerationError, match="outside the tokenizer's"):
            policy.generate([[1]], SamplingParams(max_new_tokens=1))
    finally:
        server.close()


# ----- huge answers ----------------------------------------------------------------------------
def test_a_huge_declared_answer_is_refused_before_reading():
    big = Fake(lambda h: (200, {"Content-Type": "application/json", "Content-Length": str(300 << 20)}, b"{"))
    try:
        policy = OpenAIPolicy(big.url(), model="m", tokenizer="tiny", timeout=10)
        with pytest.raises(APIError, match="over the 16777216-byte cap"):
            policy.generate([[1, 2]], SamplingParams(max_new_tokens=2))
    finally:
        big.close()


def test_a_huge_undeclared_answer_is_cut_at_the_cap(monkeypatch):
    """No Content-Length: the client stops reading at the cap instead of reading 300 MiB."""
    monkeypatch.setattr(RemoteEnv, "max_answer_bytes", 1 << 20)
    big = Fake(lambda h: (200, {"Content-Type": "application/json"}, b'{"a": "' + b"x" * (8 << 20) + b'"}'))
    try:
        with pytest.raises(RemoteEnvError, match="over the 1048576-byte cap"):
            RemoteEnv(big.url())
    finally:
        big.close()
