"""Generation with vLLM on a CUDA GPU, behind the :class:`~agentgym.policies.base.Policy` protocol.

The trainer keeps the weights (a transformers model); a vLLM engine samples the
rollouts and receives the weights after every optimizer step (:meth:`VLLMPolicy.sync_weights`).
Token ids in, token ids and log-probs out, exactly as the transformers backend: prompts
go in as ids (``TokensPrompt``), never as text, and the ids that come back are trained on
as they are.

Importing this module never needs vLLM; constructing :class:`VLLMPolicy` does (and a
CUDA GPU). NOT EXECUTED in this repository's CI (CPU only): written against vLLM's
documented API, with the glue tested on a fake engine (tests/test_vllm_policy.py).

The vLLM API used, and where it is documented:

- ``LLM(model=..., seed=..., enable_sleep_mode=True, logprobs_mode="processed_logprobs",
  gpu_memory_utilization=...)``. ``logprobs_mode`` is an engine argument
  (``ModelConfig.logprobs_mode`` in vllm/config/model.py; vllm-project/vllm PR #22387,
  in vLLM 0.10.2): "Processed means the values after applying all processors, including
  temperature and top_k/top_p". The default ``raw_logprobs`` is *before* temperature,
  which is not what the trainer recomputes; hence ``vllm>=0.10.2``.
- ``LLM.generate([TokensPrompt(prompt_token_ids=ids)], sampling_params=SamplingParams(n=1,
  temperature=T, max_tokens=N, logprobs=0, stop_token_ids=eos))``: with ``logprobs=0``
  each position carries the sampled token's log-prob only
  (https://docs.vllm.ai/en/stable/serving/offline_inference/ ;
  https://docs.vllm.ai/en/stable/api/vllm/sampling_params/).
- ``LLM.sleep(level=1)`` offloads the weights to CPU memory and drops the KV cache;
  ``LLM.wake_up(tags=["weights"])`` then ``wake_up(tags=["kv_cache"])`` brings them back
  in two stages, so weights can be loaded before the cache is reallocated
  (https://docs.vllm.ai/en/latest/features/sleep_mode/).
- ``LLM.apply_model(func)`` runs ``func(model)`` inside every worker ("Run a function
  directly on the model inside each worker", ``LLM.apply_model`` in
  vllm/entrypoints/llm.py); vLLM models' ``load_weights(iterable of (name, tensor))``
  takes Hugging Face parameter names and loads in place.
- ``LLM.reset_prefix_cache()``: cached KV blocks were computed with the old weights.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from agentgym.policies.base import ChatFormat, Completion, PolicyBase, SamplingParams

INSTALL_HINT = "the vllm backend needs a CUDA GPU and `pip install agentgym[vllm]`"


def vllm_unavailable_reason() -> str | None:
    """Why vLLM cannot run here (None when it can): no package, or no CUDA GPU."""
    missing = importlib.util.find_spec("vllm") is None
    try:
        import torch

        cuda = bool(torch.cuda.is_available())
    except Exception:  # a broken torch install: no GPU for us
        cuda = False
    if missing and not cuda:
        return f"{INSTALL_HINT}: vllm is not installed and no CUDA GPU is visible"
    if missing:
        return f"{INSTALL_HINT}: vllm is not installed"
    if not cuda:
        return f"{INSTALL_HINT}: no CUDA GPU is visible (torch.cuda.is_available() is False)"
    return None


class VLLMUnavailable(RuntimeError):
    """vLLM or a CUDA GPU is missing."""


def vllm_model_path(name: str, *, seed: int = 0) -> str:
    """A path (or hub id) vLLM can load for an agentgym model name.

    ``smollm2-135m`` is the converted checkpoint in the cache; ``tiny`` is written there
    once per seed (vLLM loads folders, not in-memory models).
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
        gpu_memory_utilization: float = 0.3,
        enable_sleep_mode: bool = True,
        dtype: str = "auto",
        max_model_len: int | None = None,
        **llm_kwargs: Any,
    ):
        why = vllm_unavailable_reason()
        if why is not None:
            raise VLLMUnavailable(why)
        from vllm import LLM

        kwargs: dict[str, Any] = dict(
            model=model,
            seed=seed,
            gpu_memory_utilization=gpu_memory_utilization,
            enable_sleep_mode=enable_sleep_mode,
            dtype=dtype,
            logprobs_mode="processed_logprobs",
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
        self.sleep_enabled = enable_sleep_mode
        self.sleeping = False

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

        Tensors are copied to the CPU first: ``apply_model`` ships the function (and what
        it holds) to vLLM's worker processes.
        """
        items = [(name, t.detach().to("cpu")) for name, t in weights]
        woke_weights_only = False
        if self.sleeping:  # bring only the weights back, load, then the KV cache
            self.llm.wake_up(tags=["weights"])
            woke_weights_only = True

        def load(model: Any) -> int:
            model.load_weights(weights=items)
            return len(items)

        self.llm.apply_model(load)
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
