"""Generation on a server (model.backend: remote), checked end to end on the CPU.

The server here wraps the transformers backend on the tiny model; on GPUs it wraps vLLM
with the same protocol. What is checked: served samples are the local ones, weights go up
in parts and are swapped in whole or not at all, a foreign tensor is refused, the other
ranks wait for rank 0's upload, the token gate, clear errors for a missing server, and a
training run through the server ends with the weights of the same run in one process.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import urllib.error
import urllib.request

import pytest
import torch
from safetensors.torch import load

from agentgym.config import ConfigError, load_config
from agentgym.grpo.setup import importance_weights_on
from agentgym.grpo.trainer import GRPOTrainer
from agentgym.policies import SamplingParams
from agentgym.policies.models import load_model
from agentgym.policies.remote import GenerationServer, RemoteGenerationError, RemotePolicy, _parts
from agentgym.policies.transformers_policy import TransformersPolicy
from tests.test_grpo_train import tiny_cfg


@pytest.fixture
def served():
    """A server on the tiny model (seed 0) and the model it serves."""
    model, tok = load_model("tiny", seed=0)
    model.requires_grad_(False)
    server = GenerationServer(
        TransformersPolicy(model, tok, seed=0), model="tiny", backend="transformers", param_names=model.state_dict()
    ).start()
    yield server, model, tok
    server.close()


def _prompts(tok):
    policy = TransformersPolicy(load_model("tiny", seed=0)[0], tok, seed=0)
    texts = ["Say something.", "Count to three, please.", "Hi"]
    return [policy.chat.prompt_ids([{"role": "user", "content": t}]) for t in texts]


def test_served_samples_are_the_local_samples(served):
    server, model, tok = served
    prompts = _prompts(tok)
    sampling = SamplingParams(max_new_tokens=7, temperature=1.0)
    local = TransformersPolicy(copy.deepcopy(model), tok, seed=0).generate(prompts, sampling, seeds=[11, 12, 13])
    remote = RemotePolicy(server.url, tok).generate(prompts, sampling, seeds=[11, 12, 13])
    assert [c.token_ids for c in remote] == [c.token_ids for c in local]
    assert [c.logprobs for c in remote] == [c.logprobs for c in local]  # JSON floats round-trip exactly
    assert [c.finish_reason for c in remote] == [c.finish_reason for c in local]
    other = RemotePolicy(server.url, tok).generate(prompts, sampling, seeds=[21, 22, 23])
    assert [c.token_ids for c in other] != [c.token_ids for c in remote]  # the seeds do reach the server


def test_weights_go_up_in_parts_and_are_loaded_together(served):
    server, model, tok = served
    trained, _ = load_model("tiny", seed=1)  # other weights than the server's
    client = RemotePolicy(server.url, tok)
    client.chunk_bytes = 40_000  # force several parts out of the tiny model
    blobs = list(_parts(trained.state_dict().items(), client.chunk_bytes))
    assert len(blobs) >= 3
    # tied tensors (lm_head = embeddings) go up once
    names = [n for b in blobs for n in load(b)]
    assert len(names) == len(set(names)) == len({p.data_ptr() for p in trained.state_dict().values()})

    before = {k: v.clone() for k, v in model.state_dict().items()}
    # half an upload (2 parts of 3) changes nothing
    for i in range(2):
        _post(server.url + f"/weights?version=4&part={i}&parts={len(blobs)}", blobs[i])
    assert server.version == 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())

    client.sync_weights(trained.state_dict().items(), version=5)  # a whole one replaces it
    assert client.version == server.version == 5
    for name, tensor in trained.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    prompts = _prompts(tok)
    sampling = SamplingParams(max_new_tokens=6, temperature=1.0)
    want = TransformersPolicy(trained, tok, seed=0).generate(prompts, sampling, seeds=[1, 2, 3])
    got = client.generate(prompts, sampling, seeds=[1, 2, 3])
    assert [c.token_ids for c in got] == [c.token_ids for c in want]


def test_a_tensor_the_served_model_lacks_is_refused_before_anything_loads(served):
    server, model, tok = served
    client = RemotePolicy(server.url, tok)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    weights = [("model.embed_tokens.weight", torch.zeros_like(before["model.embed_tokens.weight"]))]
    weights.append(("vision_tower.weight", torch.ones(3)))
    with pytest.raises(RemoteGenerationError, match="has no tensor 'vision_tower.weight'"):
        client.sync_weights(weights, version=1)
    assert server.version == 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(RemoteGenerationError, match="not safetensors"):
        _post(server.url + "/weights?version=2&part=0&parts=1", b"garbage")


def test_other_ranks_wait_until_rank_0_has_uploaded(served):
    server, model, tok = served
    writer = RemotePolicy(server.url, tok)
    reader = RemotePolicy(server.url, tok, writer=False, timeout_s=10)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    later = threading.Timer(0.3, lambda: writer.sync_weights(state.items(), version=3))
    later.start()
    t0 = time.monotonic()
    reader.sync_weights(iter(()), version=3)  # returns once the server holds version 3
    assert time.monotonic() - t0 >= 0.25 and server.version == 3 == reader.version
    later.join()
    impatient = RemotePolicy(server.url, tok, writer=False, timeout_s=0.2)
    with pytest.raises(RemoteGenerationError, match="waited 0 s for rank 0 to upload weights version 9"):
        impatient.sync_weights(iter(()), version=9)


def test_the_token_gates_every_request():
    model, tok = load_model("tiny", seed=0)
    server = GenerationServer(TransformersPolicy(model, tok), model="tiny", token="s3cret").start()
    try:
        with pytest.raises(RemoteGenerationError, match="missing or wrong bearer token"):
            RemotePolicy(server.url, tok, token="wrong")
        assert RemotePolicy(server.url, tok, token="s3cret").health()["model"] == "tiny"
    finally:
        server.close()


def test_a_missing_server_is_a_config_error_before_the_model_loads(tmp_path, monkeypatch):
    import agentgym.grpo.setup as setup_mod

    monkeypatch.setattr(setup_mod, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    with pytest.raises(ConfigError, match="model.backend=remote needs model.remote.url"):
        tiny_cfg(tmp_path, "model.backend=remote")
    cfg = tiny_cfg(tmp_path, "model.backend=remote", "model.remote.url=http://127.0.0.1:9")
    with pytest.raises(ConfigError, match=r"no generation server answers at http://127.0.0.1:9 .*generate-server"):
        GRPOTrainer(cfg, quiet=True)
    with pytest.raises(ConfigError, match="model.lora cannot be combined with model.backend=remote"):
        tiny_cfg(tmp_path, "model.backend=remote", "model.remote.url=http://x", "model.lora.r=4")


def test_training_through_a_server_ends_with_the_in_process_weights(tmp_path, served):
    server, served_model, _ = served
    common = ("grpo.importance_weights=false", "rollout.temperature=1.0")
    local = GRPOTrainer(tiny_cfg(tmp_path / "local", *common), quiet=True)
    local.train()
    cfg = tiny_cfg(tmp_path / "remote", *common, "model.backend=remote", f"model.remote.url={server.url}")
    remote = GRPOTrainer(cfg, quiet=True)
    assert isinstance(remote.policy, RemotePolicy)
    remote.train()
    assert server.version == remote.step == 2
    for name, tensor in local.model.state_dict().items():
        assert torch.equal(remote.model.state_dict()[name], tensor), name  # the same two steps
        assert torch.equal(served_model.state_dict()[name], tensor), name  # and the server holds them
    rows = [json.loads(line) for line in (tmp_path / "remote" / "run" / "metrics.jsonl").read_text().splitlines()]
    local_rows = [json.loads(line) for line in (tmp_path / "local" / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("reward/mean") for r in rows] == [r.get("reward/mean") for r in local_rows]
    # by default another engine samples, so the truncated importance weight is on
    assert importance_weights_on(load_config(None, ["model.backend=remote", "model.remote.url=http://x"]))


def _post(url: str, data: bytes) -> dict:
    req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/octet-stream"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:
        raise RemoteGenerationError(json.loads(e.read())["error"]) from None


def test_parts_refuse_a_shard():
    class Shard(torch.Tensor):
        def full_tensor(self):  # what a DTensor has
            return self

    t = torch.zeros(2).as_subclass(Shard)
    with pytest.raises(TypeError, match="gather the whole weights"):
        list(_parts([("w", t)], 1 << 20))
    assert load(next(_parts([("w", torch.ones(2))], 1 << 20)))["w"].tolist() == [1.0, 1.0]


def test_serve_model_builds_a_server_for_a_model_name():
    from agentgym.policies.remote import serve_model

    with pytest.raises(ValueError, match="backend must be transformers or vllm, not 'sglang'"):
        serve_model("tiny", backend="sglang", port=0)
    server = serve_model("tiny", port=0, device="cpu").start()
    try:
        _, tok = load_model("tiny", seed=0)
        client = RemotePolicy(server.url, tok)
        assert client.served == {"ok": True, "model": "tiny", "backend": "transformers", "version": 0}
        (done,) = client.generate(_prompts(tok)[:1], SamplingParams(max_new_tokens=3, temperature=0.0))
        assert len(done.token_ids) == len(done.logprobs) == 3
    finally:
        server.close()
