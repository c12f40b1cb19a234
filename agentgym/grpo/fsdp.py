"""FSDP2 sharding of the trained model under ``torchrun`` (``train.fsdp: true``).

:func:`shard` applies ``torch.distributed.fsdp.fully_shard`` to every decoder layer and
then to the whole model, over all ranks: between steps each rank keeps 1/N of every
parameter, of its gradient and of the AdamW state (the optimizer is built on the shards).

A GRPO step needs the whole model twice: to generate (every rank its own episodes, each
of a different length, so different numbers of forward passes) and to run its own
micro-batches (different counts too: ranks hold different rows, prompts and roles).
FSDP's usual schedule, an all-gather before each layer's forward and a reduce-scatter
after each layer's backward, is a collective per pass, and ranks with different numbers
of passes would wait on each other forever. So :func:`gathered` all-gathers every
layer's parameters once (a collective on every rank), runs whatever passes this rank
has without any communication, accumulating gradients locally, and on leaving sums the
accumulated gradients over ranks with one zero-loss pass (every rank exactly one, so
the reduce-scatters pair up) before the parameters go back to their shards. The
gradient divide factor is 1: each rank's loss is already its share of the one step loss
(:mod:`agentgym.grpo.update`), so summing gives the single-process gradient, and
clipping and AdamW then act on shards exactly as on the whole.

Memory: the whole parameters (and, inside an update, whole gradients) exist on each
rank during a rollout or an optimizer step's micro-batches; the AdamW state (two
tensors per weight) and the gradients between steps stay sharded. That is ZeRO-3 for
the optimizer state and ZeRO-1-like during the step: it fits a model whose weights and
gradients fit one device but whose optimizer state does not.

Checkpoints keep the single-process format: the trainable weights and the optimizer
state gathered to whole tensors (:func:`full_weights`, :func:`full_optimizer_state`,
collectives every rank joins), written by rank 0, and scattered back to shards on
resume (:func:`load_full_weights`, :func:`shard_optimizer_state`). A two-process FSDP
checkpoint resumes in one process and the other way round.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

import torch

from agentgym.grpo.distributed import World

if TYPE_CHECKING:  # torch.distributed may be missing at run time (see is_sharded)
    from torch.distributed.fsdp import FSDPModule


def _fsdp():
    from torch.distributed.fsdp import FSDPModule, fully_shard

    return FSDPModule, fully_shard


def _dtensor():
    from torch.distributed.tensor import DTensor, distribute_tensor

    return DTensor, distribute_tensor


def is_sharded(model: torch.nn.Module) -> bool:
    """Whether ``model`` went through :func:`shard`."""
    if not torch.distributed.is_available():
        return False
    return isinstance(model, _fsdp()[0])


def _units(model: torch.nn.Module) -> list[Any]:
    FSDPModule, _ = _fsdp()
    return [m for m in model.modules() if isinstance(m, FSDPModule)]


def layer_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The model's repeated blocks: the classes transformers names in ``_no_split_modules``
    (``LlamaDecoderLayer`` ...), else any ``*DecoderLayer`` / ``*Block``."""
    names = set(getattr(model, "_no_split_modules", None) or [])
    found = [m for m in model.modules() if type(m).__name__ in names]
    if not found:
        found = [m for m in model.modules() if type(m).__name__.endswith(("DecoderLayer", "Block"))]
    return found


def shard(model: torch.nn.Module, world: World) -> torch.nn.Module:
    """Shard ``model`` over every rank of ``world`` (in place; returns it)."""
    from torch.distributed.device_mesh import init_device_mesh

    _, fully_shard = _fsdp()
    device_type = world.device.split(":")[0]
    mesh = init_device_mesh(device_type, (world.size,))
    layers = layer_modules(model)
    if not layers:
        raise ValueError(f"train.fsdp: found no decoder layers to shard in {type(model).__name__}")
    for layer in layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    for unit in _units(model):
        unit.set_gradient_divide_factor(1.0)  # sum: each rank's loss is its share of the step loss
        unit.set_force_sum_reduction_for_comms(True)  # a plain SUM (gloo has no PREMUL_SUM)
    # FSDP makes the first module forwarded its root; the trainer's log-prob pass calls
    # the decoder directly, so forward the whole model once now, every rank together.
    with torch.no_grad():
        model(input_ids=torch.zeros((1, 1), dtype=torch.long, device=world.device), use_cache=False)
    for unit in _units(model):  # the root keeps its weights whole after a forward: shard them
        unit.reshard()
    return model


def _zero_pass(model: torch.nn.Module) -> None:
    """One forward/backward through every layer with a zero loss: its backward carries the
    gradients accumulated so far into FSDP's reduce-scatter (adding zeros)."""
    device = next(model.parameters()).device
    ids = torch.zeros((1, 1), dtype=torch.long, device=device)
    model.eval()
    out = model(input_ids=ids, use_cache=False)
    (out.logits.float().sum() * 0.0).backward()


@contextmanager
def gathered(model: torch.nn.Module, reduce_grads: bool = False) -> Iterator[None]:
    """Inside: this rank holds the whole model and runs any passes without collectives.

    Every rank must enter and leave together (the entry all-gathers, and with
    ``reduce_grads`` the exit sums the gradients accumulated inside). Without FSDP it does
    nothing."""
    if not is_sharded(model):
        yield
        return
    units = _units(model)
    root = cast("FSDPModule", model)  # is_sharded: fully_shard gave it a Module+FSDPModule class
    root.set_reshard_after_forward(False)
    root.set_reshard_after_backward(False)
    root.set_requires_gradient_sync(False)
    for unit in units:
        unit.unshard()
    try:
        yield
        if reduce_grads:
            root.set_requires_gradient_sync(True)
            _zero_pass(model)
    finally:
        root.set_requires_gradient_sync(True)
        for unit in units:
            unit.reshard()
        root.set_reshard_after_forward(True)
        root.set_reshard_after_backward(True)


def _full(t: torch.Tensor) -> torch.Tensor:
    DTensor, _ = _dtensor()
    return t.full_tensor() if isinstance(t, DTensor) else t


def full_weights(model: torch.nn.Module, trainable_only: bool = True) -> dict[str, torch.Tensor]:
    """Whole tensors of the (trainable) parameters, on the CPU, on every rank (a collective)."""
    return {
        name: _full(p.detach()).cpu() for name, p in model.named_parameters() if p.requires_grad or not trainable_only
    }


def full_optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """``optimizer.state_dict()`` with every sharded tensor made whole (a collective)."""
    sd = optimizer.state_dict()
    state = {
        k: {name: _full(v).cpu() if torch.is_tensor(v) else v for name, v in per_param.items()}
        for k, per_param in sd["state"].items()
    }
    return {"state": state, "param_groups": sd["param_groups"]}


def _like(value: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    DTensor, distribute_tensor = _dtensor()
    if isinstance(param, DTensor) and value.shape == param.shape:
        return distribute_tensor(value.to(param.dtype), param.device_mesh, param.placements)
    return value


def load_full_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Copy whole tensors into the (sharded) parameters of the same names."""
    params = dict(model.named_parameters())
    missing = [n for n in weights if n not in params]
    if missing:
        raise RuntimeError(f"checkpoint has weights this model lacks: {missing[:5]}")
    with torch.no_grad():
        for name in params:  # the same order on every rank: the scatters pair up
            if name in weights:
                params[name].copy_(_like(weights[name], params[name]))


def shard_optimizer_state(optimizer: torch.optim.Optimizer, sd: dict[str, Any]) -> dict[str, Any]:
    """A whole-tensor optimizer state made into this rank's shards, ready for ``load_state_dict``."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state = {}
    for k in sorted(sd["state"], key=int):
        p = params[int(k)]
        state[k] = {name: _like(v, p) if torch.is_tensor(v) else v for name, v in sd["state"][k].items()}
    return {"state": state, "param_groups": sd["param_groups"]}


def local_tensor(t: torch.Tensor) -> torch.Tensor:
    """This rank's shard of a sharded tensor (the tensor itself when it is not sharded)."""
    if not torch.distributed.is_available():
        return t
    DTensor, _ = _dtensor()
    return t.to_local() if isinstance(t, DTensor) else t
