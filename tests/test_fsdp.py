"""FSDP2 sharding (agentgym.grpo.fsdp) on two gloo processes: the shards, the gathered
passes with different counts per rank, the summed gradients, and whole-tensor checkpoints."""

from __future__ import annotations

import os
import sys

import pytest
import torch
import torch.multiprocessing as mp

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")


def _ids(seed: int, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, 60, (n, 6), generator=g)


def _loss(model, ids: torch.Tensor) -> torch.Tensor:
    return model(input_ids=ids, use_cache=False).logits.float().log_softmax(-1)[..., 5].mean()


def _worker(rank: int, size: int, init: str, out: str) -> None:
    os.environ.update(WORLD_SIZE=str(size), RANK=str(rank))
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=size)
    torch.set_num_threads(1)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from agentgym.grpo import fsdp
    from agentgym.grpo.distributed import World
    from agentgym.policies.models import load_model

    world = World(rank=rank, size=size, backend="gloo")
    model = load_model("tiny", seed=0)[0].eval()
    full = {n: tuple(p.shape) for n, p in model.named_parameters()}
    fsdp.shard(model, world)
    local = {n: tuple(p.to_local().shape) for n, p in model.named_parameters()}
    result: dict = {"full": full, "local": local}
    # Rank 0 runs two backward passes, rank 1 none: no pass may wait for the other rank.
    with fsdp.gathered(model, reduce_grads=True):
        result["gathered_shapes"] = {n: tuple(p.shape) for n, p in model.named_parameters()}
        if rank == 0:
            for seed in (1, 2):
                _loss(model, _ids(seed, 3)).backward()
    grads = {n: p.grad.full_tensor() for n, p in model.named_parameters() if p.grad is not None}
    result["grads"] = grads
    # A generation-like stretch: rank 1 runs more forward passes than rank 0.
    with fsdp.gathered(model), torch.no_grad():
        result["logits"] = [model(input_ids=_ids(3, 2)).logits for _ in range(1 + 2 * rank)][-1]
    opt = torch.optim.AdamW([p for p in model.parameters()], lr=1e-2)
    opt.step()
    state = fsdp.full_optimizer_state(opt)
    weights = fsdp.full_weights(model)
    result["weights"] = weights
    result["opt"] = state
    # Whole tensors back into the shards of a fresh sharded model and optimizer.
    other = fsdp.shard(load_model("tiny", seed=1)[0].eval(), world)
    opt2 = torch.optim.AdamW([p for p in other.parameters()], lr=1e-2)
    with fsdp.gathered(other, reduce_grads=True):
        pass  # gradients of zero, so AdamW creates its state
    opt2.step()
    fsdp.load_full_weights(other, weights)
    opt2.load_state_dict(fsdp.shard_optimizer_state(opt2, state))
    result["reloaded"] = fsdp.full_weights(other)
    result["reloaded_opt"] = fsdp.full_optimizer_state(opt2)
    if rank == 0:
        torch.save(result, out)
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    d = tmp_path_factory.mktemp("fsdp")
    out = d / "rank0.pt"
    mp.start_processes(_worker, args=(2, f"file://{d / 'rendezvous'}", str(out)), nprocs=2, start_method="spawn")
    return torch.load(out, weights_only=False)


def _reference():
    from agentgym.policies.models import load_model

    model = load_model("tiny", seed=0)[0].eval()
    for seed in (1, 2):
        _loss(model, _ids(seed, 3)).backward()
    return model


def test_each_rank_holds_half_of_every_weight(two_ranks):
    full, local = two_ranks["full"], two_ranks["local"]
    assert full.keys() == local.keys()
    for name, shape in full.items():  # rank 0's shard: the first half of dim 0 (rounded up)
        assert local[name] == ((shape[0] + 1) // 2, *shape[1:]), name
    assert two_ranks["gathered_shapes"] == full  # inside gathered(): the whole tensors


def test_gradients_sum_over_ranks_whatever_each_rank_ran(two_ranks):
    ref = _reference()
    grads = two_ranks["grads"]
    assert grads.keys() == {n for n, p in ref.named_parameters()}
    for name, p in ref.named_parameters():
        # Rank 1 ran no pass: the sum is rank 0's two passes, the single-process gradient.
        assert torch.allclose(grads[name], p.grad, atol=1e-6, rtol=1e-5), name


def test_gathered_forward_is_the_whole_models(two_ranks):
    from agentgym.policies.models import load_model

    model = load_model("tiny", seed=0)[0].eval()
    with torch.no_grad():
        want = model(input_ids=_ids(3, 2)).logits
    assert torch.allclose(two_ranks["logits"], want, atol=1e-6)


def test_whole_tensor_state_round_trips_through_shards(two_ranks):
    w, back = two_ranks["weights"], two_ranks["reloaded"]
    assert w.keys() == back.keys() and all(torch.equal(w[k], back[k]) for k in w)
    a, b = two_ranks["opt"]["state"], two_ranks["reloaded_opt"]["state"]
    assert a.keys() == b.keys()
    for k in a:
        for name in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(a[k][name], b[k][name])
    # The optimizer state is whole: the shape of its parameter, not of a shard.
    shapes = [tuple(v.shape) for v in w.values()]
    assert sorted(tuple(a[k]["exp_avg"].shape) for k in a) == sorted(shapes)
