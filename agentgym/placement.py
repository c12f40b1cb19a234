"""Where a run's model lives and in which numerics (``train.device``, ``train.precision``)."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: this rank's GPU when torch sees one (``LOCAL_RANK`` under torchrun), else the CPU."""
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("train.device=cuda, but torch sees no CUDA GPU")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


def resolve_precision(precision: str, device: torch.device) -> tuple[torch.dtype, torch.dtype | None]:
    """``(weights dtype, autocast dtype or None)`` of a ``train.precision`` on ``device``."""
    if precision == "auto":
        precision = "bf16-mixed" if device.type == "cuda" else "fp32"
    if precision == "fp32":
        return torch.float32, None
    if precision == "bf16-mixed":
        return torch.float32, torch.bfloat16
    if precision == "bf16":
        return torch.bfloat16, None
    raise ValueError(f"unknown precision {precision!r}: use auto, fp32, bf16-mixed or bf16")


def autocast(device: torch.device | str, dtype: torch.dtype | None) -> Any:
    """Autocast to ``dtype`` on ``device`` (nothing when ``dtype`` is None)."""
    if dtype is None:
        return contextlib.nullcontext()
    kind = device.type if isinstance(device, torch.device) else str(device).split(":")[0]
    return torch.autocast(device_type=kind, dtype=dtype)
