"""The vLLM generation backend.

Without vLLM or a CUDA GPU (this project's CI machine): importing works, constructing it
and choosing it in a config are clear errors, and the glue (prompts as token ids, the
sampling parameters sent, log-probs read back, weight sync, sleep/wake) is checked
against a fake engine. The tests that run the real engine skip with the reason.
"""

from __future__ import annotations

import re
import sys
import types
from types import SimpleNamespace

import pytest
import torch

from agentgym import TaskSpec
from agentgym.config import ConfigError, load_config
from agentgym.policies import SamplingParams
from agentgym.policies import vllm_policy as vp
from agentgym.policies import vllm_worker as vp_worker
from agentgym.rollout import RolloutRunner

HINT = vp.INSTALL_HINT
REASON = vp.vllm_unavailable_reason()
# The tiny model's head_dim 16 is below the CPU attention kernels' minimum (32): on vLLM's CPU
# build the real-engine tests are tests/test_vllm_cpu.py, on the default model.
needs_vllm_cuda = pytest.mark.skipif(
    REASON is not None or vp.vllm_device() != "cuda",
    reason=f"needs vLLM on a CUDA GPU: {REASON or 'the CPU build runs tests/test_vllm_cpu.py instead'}",
)


def test_the_module_imports_without_vllm():
    assert vp.VLLMPolicy and "bench/vllm_cpu_setup.sh" in HINT and "agentgym[vllm]" in HINT
    assert REASON is None or REASON.startswith(HINT)


@pytest.mark.skipif(REASON is None, reason="vLLM and a GPU are available here")
def test_constructing_it_without_vllm_or_cuda_is_a_clear_error(tiny):
    with pytest.raises(vp.VLLMUnavailable, match=re.escape(HINT)):
        vp.VLLMPolicy("unused", tiny[1])


@pytest.mark.skipif(REASON is None, reason="vLLM and a GPU are available here")
def test_choosing_vllm_on_this_machine_is_a_config_error_before_the_model_loads(tmp_path, monkeypatch):
    import agentgym.grpo.setup as setup_mod
    import agentgym.grpo.trainer as trainer_mod

    monkeypatch.setattr(setup_mod, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    cfg = load_config(None, [f"run_dir={tmp_path}", "model.name=tiny", "model.backend=vllm"])
    with pytest.raises(ConfigError, match=r"model.backend=vllm: " + re.escape(HINT)):
        trainer_mod.GRPOTrainer(cfg, quiet=True)


def test_vllm_config_is_validated():
    cfg = load_config(None, ["model.backend=vllm", "model.vllm.gpu_memory_utilization=0.5"])
    assert cfg.model.backend == "vllm" and cfg.model.vllm.enable_sleep_mode is None
    assert cfg.model.vllm.kv_cache_gib is None
    with pytest.raises(ConfigError, match="model.backend"):
        load_config(None, ["model.backend=sglang"])
    with pytest.raises(ConfigError, match="gpu_memory_utilization"):
        load_config(None, ["model.vllm.gpu_memory_utilization=1.5"])
    with pytest.raises(ConfigError, match="model.lora cannot be combined with model.backend=vllm"):
        load_config(None, ["model.backend=vllm", "model.lora.r=4"])


# ----- the glue, against a fake engine -----------------------------------------------------
class FakeLLM:
    """Records what VLLMPolicy asks of vLLM and answers like ``LLM.generate`` does."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.calls: list[tuple] = []
        self.model = SimpleNamespace(
            loaded=None, load_weights=lambda weights: setattr(self.model, "loaded", list(weights))
        )

    def generate(self, prompts, sampling_params=None, use_tqdm=True):
        self.calls.append(("generate", prompts, sampling_params))
        outs = []
        for i, p in enumerate(prompts):
            ids = [100 + i, 101 + i] + ([2] if i % 2 == 0 else [])  # even prompts end with eos (2)
            lps = [{t: SimpleNamespace(logprob=-0.5 * (k + 1), rank=1)} for k, t in enumerate(ids)]
            reason = "stop" if i % 2 == 0 else "length"
            outs.append(
                SimpleNamespace(
                    prompt_token_ids=p["prompt_token_ids"],
                    outputs=[SimpleNamespace(token_ids=tuple(ids), logprobs=lps, finish_reason=reason)],
                )
            )
        return outs

    def collective_rpc(self, method, timeout=None, args=(), kwargs=None):
        # V1 serialises what it sends to its engine process: a closure, or a tensor in an
        # untyped argument, would not arrive; plain values only, as msgpack carries them.
        assert isinstance(method, str), "only a worker method's name crosses to the engine process"
        self.calls.append(("collective_rpc", method))
        wire = msgpack_roundtrip(kwargs)
        worker = SimpleNamespace(
            reload_weights=lambda weights_iterator, is_checkpoint_format: self.model.load_weights(weights_iterator)
        )
        assert self.kwargs["worker_extension_cls"] == vp_worker.EXTENSION
        return [getattr(vp_worker.WeightSyncExtension, method)(worker, **wire)]

    def reset_prefix_cache(self):
        self.calls.append(("reset_prefix_cache",))

    def sleep(self, level=1):
        self.calls.append(("sleep", level))

    def wake_up(self, tags=None):
        self.calls.append(("wake_up", tags))


def msgpack_roundtrip(obj):
    """What crosses to vLLM's engine process: msgpack-native values (no tensors, no closures).
    vLLM encodes with msgspec; the main test install has msgpack (either does here)."""
    try:
        from msgspec import msgpack as mp

        return mp.decode(mp.encode(obj))
    except ImportError:
        import msgpack

        return msgpack.unpackb(msgpack.packb(obj), raw=False)


@pytest.fixture
def fake_vllm(monkeypatch):
    mod = types.ModuleType("vllm")
    mod.LLM = FakeLLM
    mod.SamplingParams = lambda **kw: SimpleNamespace(**kw)
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = lambda prompt_token_ids: {"prompt_token_ids": prompt_token_ids}
    mod.inputs = inputs
    monkeypatch.setitem(sys.modules, "vllm", mod)
    monkeypatch.setitem(sys.modules, "vllm.inputs", inputs)
    monkeypatch.setattr(vp, "vllm_unavailable_reason", lambda: None)
    monkeypatch.setattr(vp, "vllm_device", lambda: "cuda")
    return mod


def test_generate_sends_token_ids_and_reads_the_sampled_logprobs(fake_vllm, chat):
    pol = vp.VLLMPolicy("some/model", chat.tokenizer, seed=7, gpu_memory_utilization=0.4)
    llm = pol.llm
    assert llm.kwargs["logprobs_mode"] == "processed_logprobs" and llm.kwargs["enable_sleep_mode"] is True
    assert llm.kwargs["seed"] == 7 and llm.kwargs["gpu_memory_utilization"] == 0.4
    comps = pol.generate([[5, 6, 7], [8]], SamplingParams(max_new_tokens=3, temperature=0.7))
    _, prompts, sp = llm.calls[-1]
    assert prompts == [{"prompt_token_ids": [5, 6, 7]}, {"prompt_token_ids": [8]}]
    assert (sp.n, sp.temperature, sp.max_tokens, sp.logprobs) == (1, 0.7, 3, 0)
    assert sp.stop_token_ids == sorted(chat.eos_token_ids)
    assert comps[0].token_ids == [100, 101, 2] and comps[0].logprobs == [-0.5, -1.0, -1.5]
    assert comps[0].finish_reason == "stop" and comps[1].finish_reason == "length"
    assert pol.generate([], SamplingParams()) == []
    with pytest.raises(ValueError, match="top_p=1 and top_k=0"):
        pol.generate([[5]], SamplingParams(top_p=0.9))


def test_sync_weights_loads_resets_the_prefix_cache_and_bumps_the_version(fake_vllm, chat):
    pol = vp.VLLMPolicy("some/model", chat.tokenizer)
    w = torch.ones(2, 2, requires_grad=True)
    pol.sync_weights([("model.embed_tokens.weight", w)])
    loaded = pol.llm.model.loaded
    assert [n for n, _ in loaded] == ["model.embed_tokens.weight"]
    assert loaded[0][1].device.type == "cpu" and not loaded[0][1].requires_grad
    assert torch.equal(loaded[0][1], w.detach())
    assert pol.llm.calls == [("collective_rpc", vp_worker.METHOD), ("reset_prefix_cache",)] and pol.version == 1
    # Asleep (the trainer's update): weights wake first, then the KV cache; generate wakes it all.
    pol.sleep()
    pol.sync_weights([("x", w)])
    assert pol.llm.calls[2:] == [
        ("sleep", 1),
        ("wake_up", ["weights"]),
        ("collective_rpc", vp_worker.METHOD),
        ("wake_up", ["kv_cache"]),
        ("reset_prefix_cache",),
    ]
    assert pol.version == 2 and not pol.sleeping
    pol.sleep()
    pol.generate([[5]], SamplingParams(max_new_tokens=2))
    assert pol.llm.calls[-2] == ("wake_up", None)


def test_runner_plays_episodes_with_the_vllm_policy(fake_vllm, chat):
    pol = vp.VLLMPolicy("some/model", chat.tokenizer)
    eps = RolloutRunner(pol, SamplingParams(max_new_tokens=3)).run(
        "test/no-e-v0", [TaskSpec({"level": 0}, 1)], group_size=2
    )
    assert len(eps) == 2
    for e in eps:
        sampled = [t for t, m in zip(e.token_ids, e.loss_mask) if m]
        assert sampled[:2] in ([100, 101], [101, 102])
        assert [lp for lp, m in zip(e.logprobs, e.loss_mask) if m][:2] == [-0.5, -1.0]


# ----- the real engine (CUDA + vllm only) --------------------------------------------------
@needs_vllm_cuda
def test_real_vllm_logprobs_match_the_trainer_recomputation(tiny):
    from agentgym.grpo.batch import collate, policy_logprobs

    model, tok = tiny
    pol = vp.VLLMPolicy(vp.vllm_model_path("tiny", seed=0), tok, seed=0, dtype="float32", enforce_eager=True)
    eps = RolloutRunner(pol, SamplingParams(max_new_tokens=8, temperature=0.7)).run(
        "test/no-e-v0", [TaskSpec({"level": 0}, s) for s in range(4)], group_size=2
    )
    batch = collate(eps, [0.0] * len(eps), pol.chat.pad_token_id)
    with torch.no_grad():
        logp, _ = policy_logprobs(model, batch, temperature=0.7)
    m = batch.loss_mask > 0
    assert torch.allclose(logp[m], batch.sampler_logp[m], atol=2e-2)


@needs_vllm_cuda
def test_real_vllm_sync_weights_changes_generation(tiny):
    model, tok = tiny
    pol = vp.VLLMPolicy(vp.vllm_model_path("tiny", seed=0), tok, seed=0, dtype="float32", enforce_eager=True)
    prompt = pol.chat.prompt_ids([{"role": "user", "content": "Say something."}])
    greedy = SamplingParams(max_new_tokens=5, temperature=0.0)
    before = pol.generate([prompt], greedy)[0].token_ids
    changed = {n: p.detach() * 0.5 for n, p in model.state_dict().items()}
    pol.sleep()
    pol.sync_weights(changed.items())
    assert pol.version == 1 and pol.generate([prompt], greedy)[0].token_ids != before


def test_under_torchrun_each_rank_builds_its_own_engine_on_its_gpu(fake_vllm, tiny, monkeypatch):
    """vLLM's torchrun mode: one engine in each rank's process, tensor parallel 1, on that
    rank's GPU, with a seed of its own; tensor parallel engines under torchrun are refused."""
    from agentgym.grpo import setup
    from agentgym.grpo.distributed import World

    placed = []
    monkeypatch.setattr(torch.cuda, "set_device", placed.append)
    cfg = load_config(None, ["model.name=tiny", "model.backend=vllm", "seed=5", "model.vllm.tensor_parallel_size=1"])
    model, tok = tiny
    pol = setup._policy(cfg, model, tok, None, World(rank=1, size=2), torch.device("cuda", 1))
    kw = pol.llm.kwargs
    assert kw["distributed_executor_backend"] == "external_launcher" and kw["tensor_parallel_size"] == 1
    assert kw["seed"] == 6 and placed == [torch.device("cuda", 1)]
    alone = setup._policy(cfg, model, tok, None, World(), torch.device("cuda", 0)).llm.kwargs
    assert "distributed_executor_backend" not in alone and alone["seed"] == 5 and len(placed) == 1
    wide = load_config(None, ["model.name=tiny", "model.backend=vllm", "model.vllm.tensor_parallel_size=2"])
    with pytest.raises(ConfigError, match="tensor_parallel_size > 1 under torchrun is not implemented"):
        setup._check_distributed(wide, None)


# ----- where the engine runs: CUDA or vLLM's CPU build ------------------------------------
def test_the_cpu_build_counts_as_available_without_a_gpu(monkeypatch):
    monkeypatch.setattr(vp.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(vp, "_cuda_visible", lambda: False)
    monkeypatch.setattr(vp, "_cpu_build", lambda: True)
    assert vp.vllm_unavailable_reason() is None and vp.vllm_device() == "cpu"
    monkeypatch.setattr(vp, "_cpu_build", lambda: False)  # the CUDA build, no GPU
    assert vp.vllm_unavailable_reason() == f"{HINT}: this vllm is a CUDA build and no CUDA GPU is visible"
    monkeypatch.setattr(vp, "_cuda_visible", lambda: True)
    assert vp.vllm_unavailable_reason() is None and vp.vllm_device() == "cuda"
    monkeypatch.setattr(vp.importlib.util, "find_spec", lambda name: None)
    assert vp.vllm_unavailable_reason() == f"{HINT}: vllm is not installed"


def test_engine_defaults_fit_the_device():
    cpu = vp.engine_options("cpu")
    assert cpu == {"enable_sleep_mode": False, "kv_cache_memory_bytes": 2**30, "dtype": "float32"}
    assert vp.engine_options("cpu", dtype="bfloat16", kv_cache_gib=0.5)["kv_cache_memory_bytes"] == 2**29
    assert vp.engine_options("cpu", dtype="bfloat16")["dtype"] == "bfloat16"
    assert vp.engine_options("cpu", enable_sleep_mode=False)["enable_sleep_mode"] is False
    cuda = vp.engine_options("cuda")
    assert cuda == {"enable_sleep_mode": True, "gpu_memory_utilization": 0.3, "dtype": "auto"}
    assert vp.engine_options("cuda", enable_sleep_mode=False, kv_cache_gib=2)["kv_cache_memory_bytes"] == 2 * 2**30
    with pytest.raises(ValueError, match="enable_sleep_mode: vLLM's CPU build has no sleep mode"):
        vp.engine_options("cpu", enable_sleep_mode=True)
    with pytest.raises(ValueError, match="gpu_memory_utilization does not apply to vLLM's CPU build"):
        vp.engine_options("cpu", gpu_memory_utilization=0.9)


def test_a_setting_the_cpu_build_cannot_apply_is_a_config_error(monkeypatch):
    from agentgym.machine import check_backends

    monkeypatch.setattr(vp, "vllm_unavailable_reason", lambda: None)
    monkeypatch.setattr(vp, "vllm_device", lambda: "cpu")
    check_backends(load_config(None, ["model.backend=vllm"]))  # the defaults fit
    sleepy = load_config(None, ["model.backend=vllm", "model.vllm.enable_sleep_mode=true"])
    with pytest.raises(ConfigError, match=r"model.vllm.enable_sleep_mode: vLLM's CPU build has no sleep mode"):
        check_backends(sleepy)
    share = load_config(None, ["model.backend=vllm", "model.vllm.gpu_memory_utilization=0.9"])
    with pytest.raises(ConfigError, match=r"model.vllm.gpu_memory_utilization does not apply.*kv_cache_gib"):
        check_backends(share)


def test_on_the_cpu_build_the_engine_is_built_fp32_without_sleep_mode(fake_vllm, chat, monkeypatch):
    monkeypatch.setattr(vp, "vllm_device", lambda: "cpu")
    pol = vp.VLLMPolicy("some/model", chat.tokenizer)
    kw = pol.llm.kwargs
    assert kw["dtype"] == "float32" and kw["enable_sleep_mode"] is False and "gpu_memory_utilization" not in kw
    assert kw["kv_cache_memory_bytes"] == 2**30 and pol.device == "cpu"
    pol.sleep()  # no sleep mode: the engine is left as it is
    assert not pol.sleeping and pol.llm.calls == []


def test_a_vllm_policy_name_builds_the_engine_on_the_named_model(fake_vllm, chat, monkeypatch):
    from agentgym.policies import check_policy_name, make_policy
    from agentgym.policies.models import ModelNotAvailable

    monkeypatch.setattr(vp, "vllm_model_path", lambda name, seed=0: f"/models/{name}")
    monkeypatch.setattr("agentgym.policies.models.load_tokenizer", lambda name="x": chat.tokenizer)
    pol = make_policy("vllm:tiny", seed=3)
    assert isinstance(pol, vp.VLLMPolicy) and pol.llm.kwargs["model"] == "/models/tiny" and pol.llm.kwargs["seed"] == 3
    monkeypatch.setattr(vp, "vllm_unavailable_reason", lambda: "no vllm here")
    with pytest.raises(ModelNotAvailable, match="vllm:tiny: no vllm here"):
        check_policy_name("vllm:tiny")


def test_the_weight_file_keeps_every_dtype_and_writes_tied_tensors_once(tmp_path):
    emb = torch.randn(5, 3)
    ts = [
        ("model.embed_tokens.weight", emb),
        ("lm_head.weight", emb),  # tied: the same storage
        ("a", torch.randn(3, 4, dtype=torch.bfloat16)),
        ("b", torch.arange(6, dtype=torch.float32).reshape(2, 3).t()),  # not contiguous
        ("c", torch.tensor(2.5, dtype=torch.float16)),
    ]
    path = tmp_path / "w.safetensors"
    assert vp_worker.write_weights(ts, path) == 4 and not path.with_suffix(".partial").exists()
    got = []
    worker = SimpleNamespace(reload_weights=lambda weights_iterator, is_checkpoint_format: got.extend(weights_iterator))
    assert vp_worker.WeightSyncExtension.agentgym_load_weights(worker, str(path)) == 4
    back = dict(got)
    assert "lm_head.weight" not in back
    for name, t in ts:
        if name in back:
            assert back[name].dtype == t.dtype and torch.equal(back[name], t)


def test_sync_weights_leaves_no_weight_file_behind(fake_vllm, chat):
    pol = vp.VLLMPolicy("some/model", chat.tokenizer)
    pol.sync_weights([("x", torch.ones(2))])
    folder = pol._sync_dir
    assert folder.is_dir() and list(folder.iterdir()) == []
    del pol
    import gc

    gc.collect()
    assert not folder.exists()
