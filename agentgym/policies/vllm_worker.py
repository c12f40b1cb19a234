"""Weight sync into vLLM's worker processes: a worker extension and its wire format.

vLLM V1 runs the engine in another process and sends ``collective_rpc`` arguments through
its msgpack encoder: a closure is refused, and a tensor inside an untyped argument
arrives as a bare ``[dtype, shape, data]`` list (its decoder rebuilds tensors only where a
field is typed as one). So the trainer sends each tensor as plain values, ``(name, dtype,
shape, bytes)``, and this extension, mixed into every worker by the engine argument
``worker_extension_cls`` (vllm/config/parallel.py), rebuilds the tensors there and hands
them to the worker's own ``reload_weights(weights_iterator=...)``. That path re-runs
vLLM's weight processing after loading, which the CPU build needs (it repacks linear
weights for its kernels, so a bare ``model.load_weights`` fails there).

This module is imported inside vLLM's worker processes: it must not import vLLM at the
top, nor anything of agentgym's that does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

#: The engine argument that mixes :class:`WeightSyncExtension` into vLLM's workers.
EXTENSION = "agentgym.policies.vllm_worker.WeightSyncExtension"
#: The worker method :meth:`VLLMPolicy.sync_weights` calls through ``collective_rpc``.
METHOD = "agentgym_load_weights"

Packed = tuple[str, str, list[int], bytes]


def pack(weights: Iterable[tuple[str, Any]]) -> list[Packed]:
    """Tensors as ``(name, dtype, shape, raw bytes)``: plain values any encoder carries."""
    import torch

    out: list[Packed] = []
    for name, t in weights:
        t = t.detach().to("cpu").contiguous()
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes()
        out.append((name, str(t.dtype).removeprefix("torch."), list(t.shape), raw))
    return out


def unpack(packed: Iterable[Any]) -> Iterator[tuple[str, Any]]:
    """The tensors :func:`pack` sent (sequences may arrive as lists, bytes as memoryviews)."""
    import torch

    for name, dtype, shape, raw in packed:
        buf = bytearray(raw)  # writable, owned: torch.frombuffer warns on read-only memory
        flat = torch.frombuffer(buf, dtype=torch.uint8) if buf else torch.empty(0, dtype=torch.uint8)
        yield name, flat.view(getattr(torch, dtype)).reshape(list(shape))


class WeightSyncExtension:
    """Methods vLLM adds to its worker class (``self`` is the worker)."""

    def agentgym_load_weights(self, tensors: list[Any]) -> int:
        """Load packed Hugging Face-named tensors in place; returns how many were sent."""
        items = list(unpack(tensors))
        self.reload_weights(weights_iterator=items, is_checkpoint_format=True)  # type: ignore[attr-defined]
        return len(items)
