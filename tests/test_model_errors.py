"""A folder a user takes for a model gets an error that says where the model is."""

from __future__ import annotations

import pytest

from agentgym.policies.models import ModelNotAvailable, check_model_name


def _run_folder(root):
    (root / "final").mkdir(parents=True)
    (root / "final" / "config.json").write_text("{}")
    step = root / "warm_start" / "step_000032"
    step.mkdir(parents=True)
    (step / "weights.safetensors").write_bytes(b"")
    return root


@pytest.mark.parametrize("inside", ["", "warm_start", "warm_start/step_000032"])
def test_a_run_folder_or_its_checkpoints_point_at_final(tmp_path, inside):
    run = _run_folder(tmp_path / "run")
    with pytest.raises(ModelNotAvailable, match=f"its model is {run / 'final'}"):
        check_model_name(str(run / inside) if inside else str(run))
    check_model_name(str(run / "final"))  # the model folder itself loads


def test_checkpoints_without_a_final_model_say_what_they_are(tmp_path):
    step = tmp_path / "ckpt" / "step_000010"
    step.mkdir(parents=True)
    (step / "weights.safetensors").write_bytes(b"")
    with pytest.raises(ModelNotAvailable, match="training checkpoints .* RUN_DIR/final"):
        check_model_name(str(tmp_path / "ckpt"))
    with pytest.raises(ModelNotAvailable, match=r"not a model checkpoint$"):
        check_model_name(str(tmp_path))  # an unrelated folder: no hint invented
