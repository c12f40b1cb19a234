"""Weight sync into vLLM's worker processes: a worker extension and the file it reads.

vLLM V1 runs the engine in another process and sends ``collective_rpc`` arguments through
its msgpack encoder: a closure is refused, and a tensor inside an untyped argument
arrives as a bare ``[dtype, shape, data]`` list (its decoder rebuilds tensors only where a
field is typed as one). Sending the weights as bytes through that channel works but is
slow (3.3 s for the default model's 520 MB on this CPU, against 0.4 s for the load
itself). So the trainer writes the weights once as a safetensors file in shared memory
(``/dev/shm`` where it exists: the workers run on the same machine) and sends its path;
this extension, mixed into every worker by the engine argument ``worker_extension_cls``
(vllm/config/parallel.py), maps the file and hands the tensors to the worker's own
``reload_weights(weights_iterator=...)``. That path re-runs vLLM's weight processing
after loading, which the CPU build needs (it repacks linear weights for its kernels, so
a bare ``model.load_weights`` fails there).

This module is imported inside vLLM's worker processes: it must not import vLLM at the
top, nor anything of agentgym's that does.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: The engine argument that mixes :class:`WeightSyncExtension` into vLLM's workers.
EXTENSION = "agentgym.policies.vllm_worker.WeightSyncExtension"
#: The worker method :meth:`VLLMPolicy.sync_weights` calls through ``collective_rpc``.
METHOD = "agentgym_load_weights"


def sync_dir() -> Path:
    """A fresh private folder for weight files: in shared memory where there is some."""
    shm = Path("/dev/shm")
    base = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="agentgym-vllm-sync-", dir=base))


def write_weights(weights: Iterable[tuple[str, Any]], path: Path) -> int:
    """Save Hugging Face-named tensors as one safetensors file; returns how many.

    A tensor sharing storage with one already written (tied embeddings: ``lm_head.weight``
    is ``embed_tokens.weight``) is left out: vLLM ties it the same way from the config.
    """
    from safetensors.torch import save_file

    out: dict[str, Any] = {}
    seen: set[tuple[int, int, tuple[int, ...]]] = set()
    for name, t in weights:
        t = t.detach()
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
        if key in seen:
            continue
        seen.add(key)
        out[name] = t.to("cpu").contiguous()
    tmp = path.with_suffix(".partial")
    save_file(out, str(tmp))
    tmp.replace(path)
    return len(out)


class WeightSyncExtension:
    """Methods vLLM adds to its worker class (``self`` is the worker)."""

    def agentgym_load_weights(self, path: str) -> int:
        """Load the tensors of the safetensors file at ``path`` in place; returns how many."""
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            items = [(name, f.get_tensor(name)) for name in f.keys()]
        self.reload_weights(weights_iterator=items, is_checkpoint_format=True)  # type: ignore[attr-defined]
        return len(items)
