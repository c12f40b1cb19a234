"""Nothing in a run folder runs code on resume: no pickles, and a killed write leaves nothing behind."""

from __future__ import annotations

import os
import pickle
import random

import numpy as np
import pytest
import torch

from agentgym.grpo.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint


class Payload:
    """Unpickling this runs a shell command: what a crafted checkpoint would carry."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _model_and_optimizer():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.randn(2, 4)).sum().backward()
    opt.step()
    return model, opt


def test_state_round_trips_without_pickle(tmp_path):
    model, opt = _model_and_optimizer()
    gen = torch.Generator().manual_seed(3)
    state = {
        "policy": {"version": 2, "generator": gen.get_state()},
        "teacher": {"rng": np.random.default_rng(5).bit_generator.state, "q": [0.5, float("inf")], "arms": ("a", 1)},
        "evals": {3: 0.25, 7: 0.5},
        "array": np.arange(6, dtype=np.int32).reshape(2, 3),
    }
    random.seed(11)
    np.random.seed(12)
    torch.manual_seed(13)
    ck = save_checkpoint(tmp_path, 4, model, opt, state)
    expect = (random.random(), np.random.rand(), torch.rand(1).item())
    assert sorted(p.name for p in ck.iterdir()) == [
        "COMPLETE",
        "optimizer.pt",
        "state.json",
        "state.safetensors",
        "weights.safetensors",
    ]
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    fresh, fresh_opt = _model_and_optimizer()
    got = load_checkpoint(ck, fresh, fresh_opt)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expect  # RNG states came back exactly
    assert got["step"] == 4 and got["evals"] == {3: 0.25, 7: 0.5} and got["teacher"]["arms"] == ("a", 1)
    assert got["teacher"]["rng"] == state["teacher"]["rng"] and got["teacher"]["q"] == [0.5, float("inf")]
    assert torch.equal(got["policy"]["generator"], gen.get_state())
    assert got["array"].dtype == np.int32 and got["array"].tolist() == [[0, 1, 2], [3, 4, 5]]
    a, b = opt.state_dict()["state"][0]["exp_avg"], fresh_opt.state_dict()["state"][0]["exp_avg"]
    assert torch.equal(a, b)


def test_objects_that_would_need_pickle_are_refused_at_save(tmp_path):
    model, opt = _model_and_optimizer()
    with pytest.raises(TypeError, match=r"state\.teacher\.model is a Payload"):
        save_checkpoint(tmp_path, 1, model, opt, {"teacher": {"model": Payload("x")}})
    assert latest_checkpoint(tmp_path) is None


@pytest.mark.parametrize("victim", ["optimizer.pt", "state.pt"])
def test_a_crafted_pickle_never_runs_on_resume(tmp_path, victim):
    model, opt = _model_and_optimizer()
    ck = save_checkpoint(tmp_path / "checkpoints", 2, model, opt, {"evals": {}})
    marker = tmp_path / "pwned"
    if victim == "state.pt":  # an old-style folder whose state is a pickle
        (ck / "state.json").unlink()
    with open(ck / victim, "wb") as f:
        pickle.dump({"state": Payload(str(marker)), "param_groups": []}, f, protocol=2)  # torch's own protocol
    with pytest.raises((pickle.UnpicklingError, RuntimeError)) as err:
        load_checkpoint(ck, *_model_and_optimizer())
    assert not marker.exists()
    if victim == "state.pt":
        assert "pickle" in str(err.value) and "not read" in str(err.value)


def test_a_killed_write_leaves_no_temporary_folder(tmp_path):
    model, opt = _model_and_optimizer()
    root = tmp_path / "checkpoints"
    save_checkpoint(root, 1, model, opt, {})
    stale = root / ".step_000002.k1ll3d"  # what a SIGKILL between mkdtemp and rename leaves
    stale.mkdir()
    (stale / "weights.safetensors").write_bytes(b"torn")
    save_checkpoint(root, 2, model, opt, {})
    assert not stale.exists() and [p.name for p in root.iterdir() if p.name.startswith(".")] == []
