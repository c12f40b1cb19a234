"""Generation on another process or machine: a generation server and the policy that talks to it.

The trainer keeps the weights and computes the loss; a server (``agentgym generate-server``)
holds a second copy of the model on other GPUs (vLLM) or another CPU (transformers) and
samples the rollouts. After every optimizer step the trainer pushes its weights to the
server, which swaps them in between two generation calls, never during one. Token ids go
both ways, as with the in-process backends: prompts as ids, completions as ids with the
sampled tokens' log-probs, so what is trained on is exactly what was sampled.

=============================  ================================================================
``GET /health``                ``{"ok", "model", "backend", "version"}``
``POST /generate``             JSON ``{"prompts": [[id, ...], ...], "sampling": {max_new_tokens,
                               temperature, top_p, top_k}, "seeds": [n, ...] | null}``; answers
                               ``{"version", "completions": [{"token_ids", "logprobs",
                               "finish_reason"}]}``
``POST /weights?version=V``    the body is one part of the new weights in safetensors format
``&part=i&parts=K``            (``application/octet-stream``); when all K parts of version V
                               are in, they are loaded at once; answers ``{"version",
                               "applied", "received"}``
=============================  ================================================================

A new version's first part drops the unfinished parts of an older one, and a part whose
tensors the served model does not have is refused (400) before anything is loaded, so a
trainer that crashed mid-upload leaves the server on its last whole weights. Anyone who can
reach the port can replace the weights: the server listens on 127.0.0.1 unless told
otherwise, and a token (``--token`` or ``AGENTGYM_SERVER_TOKEN``; the command makes a
fresh one by default, and any address but loopback requires one) makes every request
carry ``Authorization: Bearer <token>``. Every uploaded tensor must have a served
tensor's name, shape and kind of dtype (floating or not), each tensor comes once per
upload, and an upload has at most as many parts as the model has tensors: what a
half-sent upload holds stays within one copy of the model.

Under torchrun every rank sends its own prompts; rank 0 alone uploads the weights and the
other ranks wait until the server reports that version (:meth:`RemotePolicy.sync_weights`).
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from agentgym.httpclient import ResponseTooLarge, error_text, request_json
from agentgym.httpserve import (
    MAX_CONNECTIONS,
    GuardedHandler,
    GuardedHTTPServer,
    HTTPRefusal,
    check_token,
    is_loopback_host,
    parse_json_object,
    read_body,
)
from agentgym.policies.base import ChatFormat, Completion, PolicyBase, SamplingParams, checked_completion

_MAX_JSON = 256 << 20  # prompts of a large batch, as JSON
_MAX_PART = 4 << 30  # one part of the weights
_MAX_ANSWER = 256 << 20  # a batch's completions, as JSON, read by the client
_MAX_PARTS = 4096  # parts of one upload when the served model's tensors are not known


class RemoteGenerationError(RuntimeError):
    """The generation server is unreachable or answered with an error (its message is kept)."""


# ----- the server ----------------------------------------------------------------------------
class GenerationServer:
    """Serves ``policy`` (any :class:`~agentgym.policies.base.Policy` that can take weights)
    on ``host:port``; ``serve_forever()`` blocks, ``start()`` runs it in a thread.

    ``param_names``: the served model's state dict (name -> tensor: every uploaded
    tensor's name, shape and kind of dtype are checked against it) or only its names.
    Without it the policy's own ``model.state_dict()`` is used where it has one. The
    HTTP side is :mod:`agentgym.httpserve`'s (valid lengths, content types, no foreign
    Origin or Host, bounded connections); a bind address other than loopback needs a
    ``token``.
    """

    def __init__(
        self,
        policy: Any,
        *,
        model: str = "",
        backend: str = "",
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        param_names: Iterable[str] | Mapping[str, Any] | None = None,
        max_connections: int = MAX_CONNECTIONS,
    ):
        if not is_loopback_host(host) and not token:
            raise ValueError(
                f"serving on {host} lets anyone who reaches it replace the weights: give a token "
                "(--token or $AGENTGYM_SERVER_TOKEN)"
            )
        self.policy = policy
        self.model, self.backend = model, backend
        self.token = token or None
        if param_names is None and hasattr(getattr(policy, "model", None), "state_dict"):
            param_names = policy.model.state_dict()
        #: name -> (shape, floating?) of the served model's tensors, or name -> None where
        #: only the names are known; None: nothing known (every part is taken as it is).
        self.param_specs: dict[str, tuple[tuple[int, ...], bool] | None] | None = None
        if isinstance(param_names, Mapping):
            self.param_specs = {k: _spec_of(v) for k, v in param_names.items()}
        elif param_names is not None:
            self.param_specs = dict.fromkeys(param_names)
        self.param_names = None if self.param_specs is None else frozenset(self.param_specs)
        self._gen_lock = threading.Lock()  # generation and a weight swap never overlap
        self._parts_lock = threading.Lock()
        self._parts: dict[int, Any] = {}
        self._upload: tuple[int, int] | None = None  # (version, parts) being received
        self.version = int(getattr(policy, "version", 0))
        self.httpd = GuardedHTTPServer((host, port), self._handler(), token=token, max_connections=max_connections)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        # typeshed types the address bind() accepts (bytes too); a bound socket's host is a str.
        return f"http://{host}:{port}"  # type: ignore[str-bytes-safe]

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def start(self) -> GenerationServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="agentgym-generate", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def max_parts(self) -> int:
        """Parts one upload may have: one tensor each at least, so the model's tensor count."""
        return len(self.param_specs) if self.param_specs else _MAX_PARTS

    # ----- the API ---------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        return {"ok": True, "model": self.model, "backend": self.backend, "version": self.version}

    def generate(self, body: dict[str, Any]) -> dict[str, Any]:
        prompts = body.get("prompts")
        if not isinstance(prompts, list) or not all(isinstance(p, list) for p in prompts):
            raise ValueError("prompts must be a list of token id lists")
        prompts = [[int(t) for t in p] for p in prompts]
        sampling = SamplingParams(**dict(body.get("sampling") or {}))
        seeds = body.get("seeds")
        if seeds is not None:
            seeds = [int(s) for s in seeds]
        with self._gen_lock:
            done = self.policy.generate(prompts, sampling, seeds)
            version = self.version
        return {
            "version": version,
            "completions": [
                {"token_ids": c.token_ids, "logprobs": c.logprobs, "finish_reason": c.finish_reason} for c in done
            ],
        }

    def _check_tensors(self, tensors: dict[str, Any]) -> None:
        """Every tensor is one the served model has, with its shape and kind of dtype (ValueError)."""
        if self.param_specs is None:
            return
        unknown = sorted(set(tensors) - self.param_specs.keys())
        if unknown:
            raise ValueError(
                f"the served model ({self.model or 'unnamed'}) has no tensor {unknown[0]!r}"
                f"{f' (and {len(unknown) - 1} more)' if len(unknown) > 1 else ''}: "
                "is the server running the model the trainer trains?"
            )
        for name, t in tensors.items():
            want = self.param_specs[name]
            if want is None:
                continue
            shape, floating = want
            if tuple(t.shape) != shape:
                raise ValueError(
                    f"tensor {name!r} has shape {tuple(t.shape)}, the served model's has {shape}: "
                    "is the server running the model the trainer trains?"
                )
            if t.is_floating_point() != floating:
                raise ValueError(
                    f"tensor {name!r} is {t.dtype}, the served model's is {'' if floating else 'not '}floating point"
                )

    def receive(self, version: int, part: int, parts: int, data: bytes) -> dict[str, Any]:
        """One part of version ``version``'s weights; the last one loads them all."""
        from safetensors.torch import load

        if not 1 <= parts <= self.max_parts or not 0 <= part < parts:
            raise ValueError(f"part {part} of {parts} does not exist (an upload has 1 to {self.max_parts} parts)")
        try:
            tensors = load(data)
        except Exception as exc:  # a truncated or foreign body
            raise ValueError(f"the body is not safetensors data: {exc}") from None
        self._check_tensors(tensors)
        with self._parts_lock:
            if self._upload != (version, parts):  # a new upload: whatever was half-sent is dropped
                self._upload, self._parts = (version, parts), {}
            earlier = {n for i, p in self._parts.items() if i != part for n in p}
            twice = sorted(earlier & set(tensors))
            if twice:  # each tensor once: what an upload holds stays within one model's size
                self._upload, self._parts = None, {}
                raise ValueError(f"tensor {twice[0]!r} came in two parts of version {version}; the upload is dropped")
            self._parts[part] = tensors
            if len(self._parts) < parts:
                return {"version": self.version, "applied": False, "received": len(self._parts)}
            pieces, self._parts, self._upload = self._parts, {}, None
        items = [(name, t) for i in range(parts) for name, t in pieces[i].items()]
        with self._gen_lock:
            self.policy.sync_weights(items, version=version)
            self.version = int(version)
        return {"version": self.version, "applied": True, "received": parts}

    def _authorized(self, headers: Any) -> bool:
        try:
            check_token(headers, self.token)
        except HTTPRefusal:
            return False
        return True

    def _handler(self) -> type[GuardedHandler]:
        server = self

        class Handler(GuardedHandler):
            def _run(self, fn: Any, *args: Any) -> None:
                try:
                    self.reply(HTTPStatus.OK, fn(*args))
                except (ValueError, TypeError, KeyError) as e:
                    self.reply(HTTPStatus.BAD_REQUEST, {"error": f"{type(e).__name__}: {e}"})
                except Exception as e:  # the engine failed: say so, keep serving
                    self.reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(e).__name__}: {e}"})

            def do_GET(self) -> None:  # noqa: N802 (the http.server API)
                self.handle_one(self._get)

            def do_POST(self) -> None:  # noqa: N802
                self.handle_one(self._post)

            def _get(self) -> None:
                if urlsplit(self.path).path == "/health":
                    self.reply(HTTPStatus.OK, server.health())
                else:
                    self.reply(HTTPStatus.NOT_FOUND, {"error": f"no endpoint GET {self.path}"})

            def _post(self) -> None:
                parts = urlsplit(self.path)
                if parts.path == "/weights":
                    q = parse_qs(parts.query)
                    try:
                        version, part, total = (int(q[k][0]) for k in ("version", "part", "parts"))
                    except (KeyError, ValueError):
                        self.reply(HTTPStatus.BAD_REQUEST, {"error": "POST /weights needs ?version=&part=&parts="})
                        return
                    data = read_body(self, _MAX_PART, "application/octet-stream")
                    self._run(server.receive, version, part, total, data)
                elif parts.path == "/generate":
                    body = parse_json_object(read_body(self, _MAX_JSON, "application/json"))
                    self._run(server.generate, body)
                else:
                    self.reply(HTTPStatus.NOT_FOUND, {"error": f"no endpoint POST {parts.path}"})

        return Handler


def _spec_of(tensor: Any) -> tuple[tuple[int, ...], bool] | None:
    shape = getattr(tensor, "shape", None)
    if shape is None:
        return None
    return tuple(int(n) for n in shape), bool(tensor.is_floating_point())


def serve_model(
    name: str,
    *,
    backend: str = "transformers",
    host: str = "127.0.0.1",
    port: int = 8001,
    seed: int = 0,
    device: str = "auto",
    token: str | None = None,
    vllm_options: dict[str, Any] | None = None,
) -> GenerationServer:
    """A :class:`GenerationServer` for model ``name`` (same names as ``model.name``)."""
    from agentgym.policies.models import load_model

    model, tok = load_model(name, seed=seed)
    names = {k: _ShapeOnly(tuple(v.shape), v.is_floating_point()) for k, v in model.state_dict().items()}
    if backend == "vllm":
        from agentgym.policies.vllm_policy import VLLMPolicy, vllm_device, vllm_model_path

        del model  # vLLM loads its own copy from the folder
        options = {k: v for k, v in (vllm_options or {}).items() if v is not None}
        if vllm_device() == "cuda":  # a server's GPU is its own: most of it by default
            options.setdefault("gpu_memory_utilization", 0.9)
        policy: Any = VLLMPolicy(vllm_model_path(name, seed=seed), tok, seed=seed, enable_sleep_mode=False, **options)
    elif backend == "transformers":
        import torch

        from agentgym.policies.transformers_policy import TransformersPolicy

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        policy = TransformersPolicy(model.to(device).requires_grad_(False), tok, seed=seed)
    else:
        raise ValueError(f"backend must be transformers or vllm, not {backend!r}")
    return GenerationServer(policy, model=name, backend=backend, host=host, port=port, token=token, param_names=names)


class _ShapeOnly:
    """A tensor's shape and kind without its data (the vLLM backend frees the model)."""

    def __init__(self, shape: tuple[int, ...], floating: bool):
        self.shape, self._floating = shape, floating

    def is_floating_point(self) -> bool:
        return self._floating


# ----- the client ----------------------------------------------------------------------------
class RemotePolicy(PolicyBase):
    """A :class:`~agentgym.policies.base.Policy` whose generation runs on a :class:`GenerationServer`.

    ``writer``: whether :meth:`sync_weights` uploads (rank 0 under torchrun) or only waits
    until the server holds that version (the other ranks). ``chunk_mb`` bounds one upload
    request; a model of any size goes up in parts of about that size.
    """

    #: sync_weights reads the tensors (the trainer gathers FSDP shards first).
    copies_weights = True

    def __init__(
        self,
        url: str,
        tokenizer: Any,
        *,
        timeout_s: float = 600.0,
        chunk_mb: int = 256,
        writer: bool = True,
        token: str | None = None,
    ):
        self.url = url.rstrip("/")
        self.timeout_s = float(timeout_s)
        self.chunk_bytes = max(1, int(chunk_mb)) << 20
        self.writer = writer
        self.token = token if token is not None else os.environ.get("AGENTGYM_SERVER_TOKEN")
        self.chat = ChatFormat(tokenizer)
        self.served = self.health()
        self.version = int(self.served["version"])

    def _call(self, method: str, path: str, data: bytes | None = None, json_body: bool = True) -> Any:
        headers = {"Content-Type": "application/json" if json_body else "application/octet-stream"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            return request_json(req, self.timeout_s, _MAX_ANSWER)
        except urllib.error.HTTPError as e:
            message = error_text(e)
            raise RemoteGenerationError(f"generation server {self.url}: {method} {path}: {message}") from None
        except ResponseTooLarge as e:
            raise RemoteGenerationError(f"generation server {self.url}: {method} {path}: {e}") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise RemoteGenerationError(
                f"no generation server answers at {self.url} ({reason}); start one with "
                "`agentgym generate-server MODEL --port PORT` and set model.remote.url"
            ) from None

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    @classmethod
    def ping(cls, url: str, timeout_s: float = 30.0, token: str | None = None) -> dict[str, Any]:
        """The server's ``/health`` answer (a clear :class:`RemoteGenerationError` when none)."""
        probe = cls.__new__(cls)
        probe.url, probe.timeout_s = url.rstrip("/"), float(timeout_s)
        probe.token = token if token is not None else os.environ.get("AGENTGYM_SERVER_TOKEN")
        return probe.health()

    def generate(
        self, prompts: Sequence[Sequence[int]], sampling: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[Completion]:
        if not prompts:
            return []
        if seeds is not None and len(seeds) != len(prompts):
            raise ValueError(f"got {len(seeds)} seeds for {len(prompts)} prompts")
        body = {
            "prompts": [[int(t) for t in p] for p in prompts],
            "sampling": {
                "max_new_tokens": sampling.max_new_tokens,
                "temperature": sampling.temperature,
                "top_p": sampling.top_p,
                "top_k": sampling.top_k,
            },
            "seeds": None if seeds is None else [int(s) for s in seeds],
        }
        out = self._call("POST", "/generate", json.dumps(body).encode())
        if self.writer and int(out["version"]) != self.version:
            raise RemoteGenerationError(
                f"the generation server holds weights version {out['version']}, the trainer {self.version}: "
                "another trainer is pushing weights to the same server"
            )
        done = out.get("completions") if isinstance(out, dict) else None
        if not isinstance(done, list) or len(done) != len(prompts):
            got = len(done) if isinstance(done, list) else "no list of"
            raise RemoteGenerationError(f"asked for {len(prompts)} completions, got {got}")
        try:
            return [
                checked_completion(
                    c.get("token_ids"), c.get("logprobs"), c.get("finish_reason"), self.chat.vocab_size, self.url
                )
                if isinstance(c, dict)
                else checked_completion(None, None, None, 0, self.url)
                for c in done
            ]
        except ValueError as e:
            raise RemoteGenerationError(f"generation server {e}") from None

    def sync_weights(self, weights: Iterable[tuple[str, Any]], version: int | None = None) -> None:
        """Upload the weights (writer) or wait until the server holds ``version`` (the others)."""
        version = self.version + 1 if version is None else int(version)
        if not self.writer:
            self._wait_for(version)
            self.version = version
            return
        parts = list(_parts(weights, self.chunk_bytes))
        answer: dict[str, Any] = {}
        for i, blob in enumerate(parts):
            path = f"/weights?version={version}&part={i}&parts={len(parts)}"
            answer = self._call("POST", path, blob, json_body=False)
        if not answer.get("applied"):
            raise RemoteGenerationError(f"the server did not load weights version {version}: {answer}")
        self.version = version

    def _wait_for(self, version: int) -> None:
        deadline = time.monotonic() + self.timeout_s
        delay = 0.01
        while True:
            held = int(self.health()["version"])
            if held == version:
                return
            if time.monotonic() > deadline:
                raise RemoteGenerationError(
                    f"waited {self.timeout_s:.0f} s for rank 0 to upload weights version {version} "
                    f"to {self.url}; the server still holds version {held}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def _parts(weights: Iterable[tuple[str, Any]], chunk_bytes: int) -> Iterator[bytes]:
    """The weights as safetensors blobs of about ``chunk_bytes`` each (at least one tensor each)."""
    from safetensors.torch import save

    group: dict[str, Any] = {}
    size = 0
    seen: set[tuple[int, int]] = set()
    for name, tensor in weights:
        t = tensor.detach()
        if hasattr(t, "full_tensor"):
            raise TypeError(f"{name} is a shard (FSDP): gather the whole weights on every rank first")
        key = (t.untyped_storage().data_ptr(), t.storage_offset())
        if key in seen:  # a tied tensor (lm_head = embeddings): sent once, loaded once
            continue
        seen.add(key)
        t = t.to("cpu").contiguous()
        if group and size + t.numel() * t.element_size() > chunk_bytes:
            yield save(group)
            group, size = {}, 0
        group[name] = t
        size += t.numel() * t.element_size()
    yield save(group)
