"""A policy served over an OpenAI-compatible HTTP API (a vLLM server, SGLang, a hosted model).

For evaluation, and for rollouts of games against a fixed opponent: nothing trains it.
The conversation is rendered by the local chat template of the served model's tokenizer
(the same ids the trainer would use), and sent as token ids to ``/v1/completions``,
which vLLM and SGLang accept (``prompt`` as a list of ints). Completion ids come from
the server where it returns them (vLLM's ``return_tokens_as_token_ids``: logprob tokens
``"token_id:123"``), else from encoding the returned text with the local tokenizer.

    policy = OpenAIPolicy("http://127.0.0.1:8000", model="HuggingFaceTB/SmolLM2-135M-Instruct",
                          tokenizer="smollm2-135m")

On the command line: ``--policy openai:http://127.0.0.1:8000/MODEL?tokenizer=smollm2-135m``.
An API key comes from ``$OPENAI_API_KEY`` unless given.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlsplit

from agentgym.httpclient import ResponseTooLarge, error_text, request_json
from agentgym.policies.base import ChatFormat, Completion, PolicyBase, SamplingParams, checked_completion


class APIError(RuntimeError):
    """The server refused or failed a request (its message is kept)."""


class OpenAIPolicy(PolicyBase):
    """A served model as a :class:`~agentgym.policies.base.Policy` (not trainable). Answers are
    read up to ``max_answer_bytes``; token ids from the server are range-checked against the
    local tokenizer; the API key never follows a redirect to another origin."""

    max_answer_bytes = 16 << 20

    def __init__(
        self,
        base_url: str,
        model: str,
        tokenizer: str = "smollm2-135m",
        api_key: str | None = None,
        timeout: float = 120.0,
        concurrency: int = 8,
        seed: int = 0,
    ):
        from agentgym.policies.models import load_tokenizer

        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.model = model
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.timeout = float(timeout)
        self.concurrency = int(concurrency)
        self.seed = int(seed)
        self.chat = ChatFormat(load_tokenizer(tokenizer))
        self.version = 0
        self.requests = 0
        #: Answers that carried no token ids and were encoded again from their text.
        self.retokenized = 0

    @classmethod
    def from_spec(cls, spec: str, seed: int = 0) -> OpenAIPolicy:
        """``openai:http://host:port/MODEL?tokenizer=NAME`` (the CLI's ``--policy`` form)."""
        url = urlsplit(spec.removeprefix("openai:"))
        if not url.scheme or not url.netloc or not url.path.strip("/"):
            raise ValueError(f"policy {spec!r}: use openai:http://HOST:PORT/MODEL[?tokenizer=NAME]")
        query = parse_qs(url.query)
        tokenizer = query.get("tokenizer", ["smollm2-135m"])[0]
        return cls(f"{url.scheme}://{url.netloc}", url.path.strip("/"), tokenizer=tokenizer, seed=seed)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.base_url + path, data=json.dumps(body).encode(), headers=headers)
        try:
            out = request_json(req, self.timeout, self.max_answer_bytes)
        except urllib.error.HTTPError as e:
            raise APIError(f"{self.base_url}{path}: HTTP {e.code}: {error_text(e)}") from None
        except urllib.error.URLError as e:
            raise APIError(f"{self.base_url}{path}: {e.reason}") from None
        except (ResponseTooLarge, ValueError, RecursionError) as e:
            raise APIError(f"{self.base_url}{path}: {type(e).__name__}: {str(e)[:300]}") from None
        if not isinstance(out, dict):
            raise APIError(f"{self.base_url}{path}: the answer is not a JSON object")
        return out

    def _one(self, prompt: Sequence[int], sampling: SamplingParams, seed: int) -> Completion:
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": [int(t) for t in prompt],
            "max_tokens": sampling.max_new_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "seed": seed,
            "logprobs": 1,
            "return_tokens_as_token_ids": True,
            "skip_special_tokens": False,
        }
        if sampling.top_k:
            body["top_k"] = sampling.top_k
        out = self._post("/completions", body)
        self.requests += 1
        choices = out.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else None
        if not isinstance(choice, dict):
            raise APIError(f"{self.base_url}/completions: the answer has no choices[0] object")
        text = choice.get("text")
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise APIError(f"{self.base_url}/completions: choices[0].text is {type(text).__name__}, not text")
        try:
            ids, logprobs = _server_ids(choice.get("logprobs"))
        except (ValueError, TypeError) as e:
            raise APIError(f"{self.base_url}/completions: unreadable logprobs: {e}") from None
        if ids is None:
            # No ids (a server without vLLM's return_tokens_as_token_ids, e.g. vLLM before
            # 0.6, SGLang, a hosted API): the text is encoded again. Fine for evaluation;
            # what was sampled may differ from these ids, so it is said once.
            if not self.retokenized:
                warnings.warn(
                    f"{self.base_url} answers text without token ids: replies are re-tokenized, which may not "
                    "give the ids the model sampled. On vLLM, serve with a version that takes "
                    "return_tokens_as_token_ids (0.6 or later).",
                    RuntimeWarning,
                    stacklevel=3,
                )
            self.retokenized += 1
            ids = self.chat.tokenizer.encode(text, add_special_tokens=False)
            logprobs = [0.0] * len(ids)
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        if finish == "stop" and (not ids or ids[-1] not in self.chat.eos_token_ids):
            ids = ids + [min(self.chat.eos_token_ids)]  # the turn ended: close it as a local model would
            logprobs = logprobs + [0.0]
        try:
            return checked_completion(ids, logprobs, finish, self.chat.vocab_size, f"{self.base_url}/completions")
        except ValueError as e:
            raise APIError(str(e)) from None

    def generate(
        self, prompts: Sequence[Sequence[int]], sampling: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[Completion]:
        if not prompts:
            return []
        # A server takes a 32-bit-or-so seed per request: the row's own when given.
        row_seeds = [self.seed + i for i in range(len(prompts))] if seeds is None else [s % 2**31 for s in seeds]
        with ThreadPoolExecutor(max_workers=max(1, min(self.concurrency, len(prompts)))) as pool:
            return list(pool.map(lambda ps: self._one(ps[0], sampling, ps[1]), zip(prompts, row_seeds)))


def _server_ids(logprobs: Any) -> tuple[list[int] | None, list[float]]:
    """Token ids from vLLM-style logprobs (``"token_id:123"`` tokens), else None."""
    if not isinstance(logprobs, dict):
        return None, []
    tokens = logprobs.get("tokens")
    values = logprobs.get("token_logprobs") or []
    if not isinstance(tokens, list) or not tokens:
        return None, []
    if not all(isinstance(t, str) and t.startswith("token_id:") for t in tokens):
        return None, []
    if not isinstance(values, list):
        raise ValueError("token_logprobs is not a list")
    ids = [int(t.split(":", 1)[1]) for t in tokens]
    return ids, [float(v) if v is not None else 0.0 for v in values][: len(ids)] + [0.0] * (len(ids) - len(values))
