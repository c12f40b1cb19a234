"""Data-parallel training over processes with ``torch.distributed`` (launched by ``torchrun``).

``torchrun --nproc-per-node N -m agentgym train CONFIG`` starts N copies of the trainer.
torchrun does the rendezvous (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` ...); this module
only joins the process group it describes and names the few collectives a step needs.
What each rank does, one step:

1. Rank 0's teacher samples the step's tasks; the specs are broadcast, so every rank
   sees the same list (:class:`BroadcastTeacher`).
2. Each rank plays a contiguous share of those tasks, whole groups only, so a group's
   advantages never need another rank (:meth:`World.share`). Every episode samples from
   its own seeded stream (``Runner.run(seeds=...)``): the tokens do not depend on which
   rank played them or with whom.
3. The ranks exchange each group's rewards (not its tokens): every rank then knows the
   same results, applies the same filters (dynamic sampling) and asks for the same refill;
   rank 0's teacher is updated with all of them.
4. The update: the loss normalizer (token and sequence counts of the optimizer step) is
   summed over ranks, each rank backpropagates its own rows' share of the one step loss,
   and the gradients are summed (``all_reduce``) before clipping and the optimizer step.
   The sum of every rank's share is the single-process loss, so the step is the
   single-process step up to float summation order. Ranks with fewer rows (or none)
   still take part in every collective.
5. Rank 0 writes metrics, checkpoints and held-out evaluations; the others wait at a
   barrier and read the same checkpoint on ``--resume``.

With ``train.fsdp`` the weights, gradients and AdamW state are sharded (FSDP2, see
:mod:`agentgym.grpo.fsdp`); step 4's gradient sum is then FSDP's reduce-scatter instead
of :meth:`World.all_reduce_grads`. Not yet: vLLM under torchrun (refused).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from agentgym.curriculum.base import GroupResult, Teacher
from agentgym.tasks import TaskSpec


@dataclass
class World:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    #: The process group's backend ("gloo" on CPUs, "nccl" on CUDA), None alone.
    backend: str | None = None
    #: This rank's device for collectives ("cpu" with gloo, its own CUDA device with NCCL).
    device: str = "cpu"
    #: The process group of these collectives (None: the default group).
    group: Any = None
    #: A second view on its own gloo group, for the rollout (which runs in a background
    #: thread off-policy, beside the update's collectives on the default group).
    rollout: World | None = None

    def for_rollout(self) -> World:
        return self.rollout if self.rollout is not None else self

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def share(self, n: int) -> range:
        """The items of a list of ``n`` this rank handles: contiguous, sizes differing by at most 1."""
        base, extra = divmod(n, self.size)
        start = self.rank * base + min(self.rank, extra)
        return range(start, start + base + (1 if self.rank < extra else 0))

    # ----- collectives (no-ops alone) ----------------------------------------------------
    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.distributed:
            return obj
        box = [obj if self.main else None]
        torch.distributed.broadcast_object_list(box, src=0, group=self.group)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.size
        torch.distributed.all_gather_object(out, obj, group=self.group)
        return out

    def sum_ints(self, *values: int | float) -> list[float]:
        """Element-wise sums over ranks of a few numbers."""
        if not self.distributed:
            return [float(v) for v in values]
        device = "cpu" if self.group is not None else self.device
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
        torch.distributed.all_reduce(t, group=self.group)
        return t.tolist()

    def all_reduce_grads(self, params: Sequence[torch.nn.Parameter], bucket_elems: int = 1 << 24) -> None:
        """Sum every parameter's gradient over ranks.

        A parameter no rank computed a gradient for (an inactive adapter) keeps ``None``, as
        the optimizer expects; one that some rank has and another lacks counts as zeros
        there. Gradients travel in flat buckets of about ``bucket_elems`` values: one
        collective per bucket, not one per tensor."""
        if not self.distributed:
            return
        has = torch.tensor([p.grad is not None for p in params], dtype=torch.int32, device=self.device)
        torch.distributed.all_reduce(has, group=self.group)
        params = [p for p, n in zip(params, has.tolist()) if n > 0]
        bucket: list[torch.Tensor] = []
        size = 0
        for p in params:
            grad = p.grad
            if grad is None:
                grad = p.grad = torch.zeros_like(p)
            bucket.append(grad)
            size += grad.numel()
            if size >= bucket_elems:
                _reduce_bucket(bucket, self.group)
                bucket, size = [], 0
        if bucket:
            _reduce_bucket(bucket, self.group)

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier(group=self.group)


def _reduce_bucket(grads: list[torch.Tensor], group: Any = None) -> None:
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat, group=group)
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n


_WORLD: World | None = None


def init_world(device: str = "cpu") -> World:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE`` > 1), once per process;
    alone, the one-process world. ``device`` is the training device ("cpu" or "cuda")."""
    global _WORLD
    if _WORLD is not None:
        return _WORLD
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        _WORLD = World()
        return _WORLD
    if not torch.distributed.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    rank = int(os.environ["RANK"])
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        backend, coll_device = "nccl", f"cuda:{local}"
    else:
        backend, coll_device = "gloo", "cpu"
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend=backend)
    rollout = World(rank=rank, size=size, backend="gloo", group=torch.distributed.new_group(backend="gloo"))
    _WORLD = World(rank=rank, size=size, backend=backend, device=coll_device, rollout=rollout)
    return _WORLD


def current_world() -> World:
    """The world :func:`init_world` joined (one process when it was never called)."""
    return _WORLD if _WORLD is not None else World()


def close_world() -> None:
    """Leave the process group (end of a run); the next :func:`init_world` joins afresh."""
    global _WORLD
    if _WORLD is not None and _WORLD.distributed and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    _WORLD = None


class BroadcastTeacher:
    """A teacher that lives on rank 0: its samples are broadcast, its updates happen there.

    Every rank holds one (the same config, the same seed), but only rank 0's is ever
    sampled or updated; its state is what checkpoints hold, and every rank loads it on
    resume, so rank 0 continues exactly.

    The teacher is sampled by the collector, which off-policy runs in a background thread
    while the main thread all-reduces the update's gradients: its broadcasts go over the
    rollout's own process group (:meth:`World.for_rollout`), never the update's, or the
    two threads' collectives would interleave differently on each rank and deadlock.
    """

    def __init__(self, teacher: Teacher, world: World):
        self.inner = teacher
        self.world = world.for_rollout()

    def sample(self, n: int) -> list[TaskSpec]:
        specs = self.inner.sample(n) if self.world.main else None
        return self.world.broadcast(specs)

    def update(self, results: Sequence[GroupResult]) -> None:
        if self.world.main:
            self.inner.update(results)

    def metrics(self) -> dict[str, float]:
        return self.inner.metrics()

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)

    def __getattr__(self, name: str) -> Any:  # plots and reports read the teacher's own fields
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)
