"""What this machine can run: the probes a run makes before any model loads.

A config is valid or not wherever it is read (:mod:`agentgym.config`); whether Ray, vLLM,
a CUDA GPU, torchrun's processes, a generation server or a metrics logger are there is
a fact about this machine, asked here, so a missing one is named at once instead of
after minutes of setup.
"""

from __future__ import annotations

from agentgym.config import ConfigError, RunConfig


def check_backends(cfg: RunConfig) -> None:
    """Raise :class:`ConfigError` when a chosen backend cannot run on this machine.

    Called by the trainer before any model loads, so a missing package or GPU is named
    at once instead of after minutes of setup.
    """
    import importlib.util

    if cfg.rollout.backend == "ray" and importlib.util.find_spec("ray") is None:
        raise ConfigError(
            "rollout.backend=ray needs Ray, which is not installed: pip install agentgym[ray] "
            "(or set rollout.backend=inprocess)"
        )
    if cfg.train.fsdp:
        _check_fsdp(cfg)
    if cfg.train.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("train.device=cuda, but torch sees no CUDA GPU here (or set train.device=auto)")
    if cfg.model.backend == "vllm":
        from agentgym.policies.vllm_policy import engine_options, vllm_device, vllm_unavailable_reason

        why = vllm_unavailable_reason()
        if why is not None:
            raise ConfigError(f"model.backend=vllm: {why} (or set model.backend=transformers)")
        vo = cfg.model.vllm
        try:
            engine_options(
                vllm_device(),
                gpu_memory_utilization=vo.gpu_memory_utilization,
                enable_sleep_mode=vo.enable_sleep_mode,
                dtype=vo.dtype,
                kv_cache_gib=vo.kv_cache_gib,
            )
        except ValueError as exc:
            raise ConfigError(f"model.vllm.{exc}") from None
    if cfg.model.backend == "remote":
        from agentgym.policies.remote import RemoteGenerationError, RemotePolicy

        try:
            RemotePolicy.ping(cfg.model.remote.server_url(), timeout_s=min(cfg.model.remote.timeout_s, 30.0))
        except RemoteGenerationError as exc:
            raise ConfigError(f"model.backend=remote: {exc}") from None


def _check_fsdp(cfg: RunConfig) -> None:
    """What train.fsdp cannot be combined with yet, named before anything loads."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) < 2:
        raise ConfigError(
            "train.fsdp shards the model over torchrun's processes, and this is one process: launch with "
            "torchrun --nproc-per-node N -m agentgym train ... (N >= 2), or set train.fsdp=false"
        )
    why = None
    if cfg.model.lora is not None:
        why = "model.lora (train the adapters data parallel: train.fsdp=false)"
    elif cfg.rollout.off_policy_steps > 0:
        why = "rollout.off_policy_steps > 0 (its sampler is a second whole copy of the model)"
    if why is not None:
        raise ConfigError(f"train.fsdp is not implemented together with {why}")


def check_report_to(cfg: RunConfig) -> None:
    """Each of ``train.report_to`` must be importable (before any model loads)."""
    import importlib.util

    for module in cfg.train.report_to:
        if module == "tensorboard":
            continue  # optional: without it, metrics.jsonl and the plots still work
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"train.report_to: {module} is not installed (pip install {module}), or leave it out")
