"""Checkpoints written atomically: a temporary folder renamed into place.

A checkpoint folder ``checkpoints/step_000010/`` holds the trainable weights
(``weights.safetensors``: every parameter for full fine-tuning, only the adapter for
LoRA), ``optimizer.pt`` (read back with ``torch.load(weights_only=True)``: tensors and
plain containers only), and the rest of the state (step, RNG states, policy and teacher
state) as ``state.json`` with its tensors in ``state.safetensors``. Nothing in a run
folder is unpickled, so a crafted checkpoint cannot run code on ``--resume``.

A run killed at any moment leaves either the previous complete checkpoint or the new
one, never a torn one: only folders with a ``COMPLETE`` marker count, and the temporary
folder a killed write leaves is removed by the next save or resume.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

COMPLETE = "COMPLETE"


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parameters that training changes, by name (tied weights appear once)."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            out[name] = p.detach().contiguous().clone()
    return out


def rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


# ----- state as JSON: tensors beside it in safetensors, nothing pickled ----------------------


def _encode(obj: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype), "shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _encode(v, tensors, f"{where}.{k}") for k, v in obj.items()}
        return {
            "__items__": [[_encode(k, tensors, where), _encode(v, tensors, f"{where}[{k!r}]")] for k, v in obj.items()]
        }
    raise TypeError(
        f"checkpoint state at {where} is a {type(obj).__name__}; state_dict() must return JSON-like values "
        "(numbers, strings, lists, tuples, dicts, numpy arrays, tensors), never pickled objects"
    )


def _decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__ndarray__" in obj:
        return np.asarray(obj["__ndarray__"], dtype=np.dtype(obj["dtype"])).reshape(obj["shape"])
    if "__tuple__" in obj:
        return tuple(_decode(v, tensors) for v in obj["__tuple__"])
    if "__items__" in obj:
        return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__items__"]}
    return {k: _decode(v, tensors) for k, v in obj.items()}


def save_state(folder: Path, state: dict[str, Any]) -> None:
    tensors: dict[str, torch.Tensor] = {}
    encoded = _encode(state, tensors, "state")
    (folder / "state.json").write_text(json.dumps(encoded))
    save_file(tensors, str(folder / "state.safetensors"))


def load_state(folder: Path) -> dict[str, Any]:
    if not (folder / "state.json").exists():
        if (folder / "state.pt").exists():
            raise RuntimeError(
                f"{folder} holds its state as a pickle (state.pt, written by an older agentgym); unpickling can run "
                "code, so it is not read. Start the run again, or resume it with the agentgym version that wrote it."
            )
        raise RuntimeError(f"{folder} has no state.json")
    from agentgym.state_check import check_state_file

    # Bounded and typed before anything is built from it (a crafted file is a StateFileError).
    data = check_state_file(folder / "state.json")
    tensors = load_file(str(folder / "state.safetensors"))
    return _decode(data, tensors)


def remove_stale_temporaries(root: Path) -> None:
    """Temporary folders of checkpoint writes that a kill interrupted."""
    if root.exists():
        for tmp in root.glob(".step_*"):
            shutil.rmtree(tmp, ignore_errors=True)


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (a full disk, most often); nothing earlier was lost."""


def save_checkpoint(
    root: Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    keep: int = 2,
    files: dict[str, str] | None = None,
    weights: dict[str, torch.Tensor] | None = None,
    optimizer_state: dict[str, Any] | None = None,
) -> Path:
    """Write ``root/step_<step>`` atomically; ``files`` are extra text files (name -> text) in it.

    ``weights`` and ``optimizer_state`` replace the model's and the optimizer's own (a
    sharded model's, gathered to whole tensors beforehand: :mod:`agentgym.grpo.fsdp`)."""
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(root)
    final = root / f"step_{step:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".step_{step:06d}.", dir=root))
    try:
        save_file(weights if weights is not None else trainable_state(model), str(tmp / "weights.safetensors"))
        torch.save(optimizer_state if optimizer_state is not None else optimizer.state_dict(), tmp / "optimizer.pt")
        save_state(tmp, {**state, "step": step, "rng": rng_state()})
        for name, text in (files or {}).items():
            (tmp / name).write_text(text)
        (tmp / COMPLETE).write_text(f"{step}\n")
        _fsync_dir(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(root)
    except (OSError, RuntimeError) as exc:  # torch reports a full disk as a RuntimeError
        free = shutil.disk_usage(root).free / 2**20
        last = latest_checkpoint(root)
        kept = f"the last complete checkpoint ({last.name}) is intact" if last else "no earlier checkpoint exists"
        raise CheckpointWriteError(
            f"writing checkpoint step {step} under {root} failed: {exc}. {free:.0f} MiB are free on that disk; "
            f"{kept}. Free some space, then continue with: agentgym train --resume {root.parent}"
        ) from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(root: Path) -> list[Path]:
    if not root.exists():
        return []
    return sorted(p for p in root.glob("step_*") if (p / COMPLETE).exists())


def latest_checkpoint(root: Path) -> Path | None:
    cks = list_checkpoints(root)
    return cks[-1] if cks else None


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    from agentgym.grpo import fsdp

    weights = load_file(str(path / "weights.safetensors"))
    if fsdp.is_sharded(model):  # whole tensors scattered to this rank's shards
        fsdp.load_full_weights(model, weights)
        state = load_state(path)
        full = torch.load(path / "optimizer.pt", weights_only=True)
        optimizer.load_state_dict(fsdp.shard_optimizer_state(optimizer, full))
        set_rng_state(state["rng"])
        return state
    params = dict(model.named_parameters())
    missing = [n for n in weights if n not in params]
    if missing:
        raise RuntimeError(f"checkpoint {path} has weights this model lacks: {missing[:5]}")
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)
    state = load_state(path)
    # weights_only: tensors and plain containers only, no arbitrary unpickling.
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    set_rng_state(state["rng"])
    return state


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
