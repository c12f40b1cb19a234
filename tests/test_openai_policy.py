"""A model behind an OpenAI-compatible server evaluates like the same model in process.

The server here is a stand-in written for the test (the /v1/completions route that vLLM
and SGLang serve, token-id prompts in), backed by the tiny model; real servers are not
reachable from CI.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agentgym.eval import evaluate_env
from agentgym.policies import SamplingParams, make_policy
from agentgym.policies.openai_policy import APIError, OpenAIPolicy


def _server(with_ids: bool):
    backing = make_policy("tiny", seed=0)
    eos = set(backing.chat.eos_token_ids)
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body)
            if self.path != "/v1/completions" or not all(isinstance(t, int) for t in body["prompt"]):
                self.send_response(400)
                self.end_headers()
                return
            sp = SamplingParams(max_new_tokens=body["max_tokens"], temperature=body["temperature"])
            (c,) = backing.generate([body["prompt"]], sp)
            ids = [t for t in c.token_ids if t not in eos]  # as vLLM: the stop token is not in the output
            choice = {"text": backing.chat.tokenizer.decode(ids), "finish_reason": c.finish_reason}
            if with_ids:
                choice["logprobs"] = {
                    "tokens": [f"token_id:{t}" for t in ids],
                    "token_logprobs": c.logprobs[: len(ids)],
                }
            data = json.dumps({"choices": [choice]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, seen


@pytest.mark.parametrize("with_ids", [True, False], ids=["server-token-ids", "text-only"])
def test_a_served_model_evaluates_like_the_local_one(with_ids):
    httpd, seen = _server(with_ids)
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        remote = make_policy(f"openai:{url}/tiny-model?tokenizer=tiny")
        assert isinstance(remote, OpenAIPolicy) and remote.model == "tiny-model"
        sampling = SamplingParams(max_new_tokens=6, temperature=0.0)
        # Without the server's ids a reply is re-encoded from its text, which a random model's
        # gibberish does not survive exactly: later turns would differ, so one turn there.
        kw = {"env_kwargs": {"max_turns": 4 if with_ids else 1}, "n_tasks": 4, "sampling": sampling}
        local = evaluate_env(make_policy("tiny"), "test/guess-v0", **kw)
        served = evaluate_env(remote, "test/guess-v0", **kw)
        assert [t["reply"] for t in served.tasks] == [t["reply"] for t in local.tasks]
        assert [t["rewards"] for t in served.tasks] == [t["rewards"] for t in local.tasks]
        assert seen and all(isinstance(b["prompt"], list) and b["model"] == "tiny-model" for b in seen)
    finally:
        httpd.shutdown()


def test_server_errors_are_clear():
    policy = OpenAIPolicy("http://127.0.0.1:9", model="m", tokenizer="tiny", timeout=2)
    with pytest.raises(APIError, match="127.0.0.1:9/v1/completions"):
        policy.generate([[1, 2, 3]], SamplingParams(max_new_tokens=2))
    with pytest.raises(ValueError, match="use openai:http://HOST:PORT/MODEL"):
        OpenAIPolicy.from_spec("openai:nonsense")
