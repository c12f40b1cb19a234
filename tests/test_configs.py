"""Every file in configs/ loads and passes the trainer's checks (no model is loaded).

A config that names a renamed key, a removed teacher option or an env kwarg that no
longer exists fails here, not minutes into someone's run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agentgym.compare.runs import load_arms_file
from agentgym.config import load_config
from agentgym.grpo.setup import check_config

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
#: Arms files (``agentgym compare --arms``) and the run config their overrides apply to.
ARMS = {"teacher-arms.yaml": "teacher.yaml"}
RUN_CONFIGS = sorted(p.name for p in CONFIGS.glob("*.yaml") if p.name not in ARMS)


def _written_by(run_dir: str) -> str | None:
    """The config in configs/ whose run writes ``run_dir``."""
    for name in RUN_CONFIGS:
        if load_config(CONFIGS / name).run_dir == run_dir:
            return name
    return None


def _model_override(name: str) -> list[str]:
    """A config that starts from another config's run (``model.name: runs/X/final``) is
    checked with the tiny model in its place: that run's output is not here."""
    model = load_config(CONFIGS / name).model.name
    if not model.startswith("runs/"):
        return []
    donor = _written_by(str(Path(model).parent))
    assert donor is not None, f"{name}: model.name {model} is the output of no config in configs/"
    return ["model.name=tiny"]


def test_the_configs_are_found():
    # A wrong folder would make every parametrized test below vanish silently.
    assert "quickstart.yaml" in RUN_CONFIGS and len(RUN_CONFIGS) >= 20
    assert all((CONFIGS / base).exists() for base in ARMS.values())


@pytest.mark.parametrize("name", RUN_CONFIGS)
def test_run_config_loads_and_checks(name):
    cfg = load_config(CONFIGS / name, _model_override(name))
    tasks, teacher, facts = check_config(cfg)
    assert facts.max_turns >= 1
    assert len(teacher.sample(2)) == 2


@pytest.mark.parametrize("arms_file", sorted(ARMS))
def test_arms_apply_to_their_base_config(arms_file):
    arms = load_arms_file(CONFIGS / arms_file)
    assert arms
    for arm in arms:
        cfg = load_config(CONFIGS / ARMS[arms_file], [*_model_override(ARMS[arms_file]), *arm.overrides])
        check_config(cfg)


def test_chained_configs_name_a_run_another_config_writes():
    chained = {n: load_config(CONFIGS / n).model.name for n in RUN_CONFIGS}
    chained = {n: m for n, m in chained.items() if m.startswith("runs/")}
    assert chained, "no config starts from another's run: the tiny-model override above checks nothing"
    for name, model in chained.items():
        assert Path(model).name == "final", f"{name}: {model} is not a run's final weights"
        assert _written_by(str(Path(model).parent)) not in (None, name)
