"""Shared fixtures: a toy multi-turn env and the tiny model (built once per session)."""

from __future__ import annotations

import functools
import os
import re

# Under pytest-xdist (the README's test command runs a worker per core) every worker and
# every process a test starts gets one thread: two 2-thread torch processes on 2 cores run
# about 10x slower than one (OpenMP threads spin waiting for a descheduled partner).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"

import numpy as np
import pytest
import torch

import agentgym
from agentgym import Categorical, Feedback, HeldOut, Integer, ParamSpace, Region, TextEnv

# The tiny test model is all small ops: one thread avoids OpenMP hand-off costs that make
# it up to 40x slower when another process holds the second core.
torch.set_num_threads(1)


class GuessEnv(TextEnv):
    """Guess a hidden integer in [1, high]; the env answers 'higher' or 'lower'."""

    param_space = ParamSpace([Integer("high", 2, 50), Categorical("hint", (False, True))])
    held_out = HeldOut(seeds=range(1_000_000_000, 1_000_010_000), region=Region({"high": [7]}, name="seven"))

    def __init__(self, max_turns: int = 4, render_mode=None):
        super().__init__(render_mode=render_mode)
        self.max_turns = max_turns

    def content_key(self, task):
        # The secret is part of the problem though the opening does not show it.
        secret = int(np.random.default_rng(task.seed).integers(1, task.params["high"] + 1))
        return f"{task.params['high']}|{task.params['hint']}|{secret}"

    def _reset(self, params, rng):
        self.secret = int(rng.integers(1, params["high"] + 1))
        hint = f" It is {'even' if self.secret % 2 == 0 else 'odd'}." if params["hint"] else ""
        return [
            {"role": "user", "content": f"Guess my number between 1 and {params['high']}.{hint} Reply with a number."}
        ]

    def _step(self, action):
        m = re.search(r"-?\d+", action)
        if m is None:
            return Feedback(
                [{"role": "user", "content": "Reply with a number."}], {"correct": 0.0}, error="no number in the reply"
            )
        guess = int(m.group())
        if guess == self.secret:
            return Feedback([], {"correct": 1.0}, terminated=True, success=True)
        word = "higher" if guess < self.secret else "lower"
        return Feedback([{"role": "user", "content": f"No, {word}."}], {"correct": 0.0})

    def oracle(self):
        return str(self.secret)


agentgym.register("test/guess-v0", GuessEnv, description="toy guessing game for tests")


#: Why a ``requires_browser`` test skips here (None: Playwright and a Chromium are here).
NO_BROWSER = "no Chromium for Playwright (bash envs/web/install-browser.sh, or apt-get install chromium)"


@functools.cache
def browser_missing() -> str | None:
    """Why the web envs cannot run a browser here, or None when they can."""
    import importlib.util

    for package in ("playwright", "agentgym_web"):
        if importlib.util.find_spec(package) is None:
            return f"{package} is not installed"
    from agentgym_web.browser import browser_available

    return None if browser_available() else NO_BROWSER


def pytest_collection_modifyitems(config, items):
    """A test marked ``requires_browser`` skips, saying why, where no browser can run."""
    for item in items:
        if item.get_closest_marker("requires_browser") is not None and browser_missing() is not None:
            item.add_marker(pytest.mark.skip(reason=browser_missing()))


def metrics_rows(run_dir, name: str = "metrics.jsonl") -> list[dict]:
    """A run's log lines without their timings: what two runs that trained alike share exactly."""
    import json

    rows = [json.loads(line) for line in (run_dir / name).read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


@pytest.fixture(scope="session")
def tiny():
    """(model, tokenizer) of the tiny random Llama."""
    from agentgym.policies.models import load_model

    return load_model("tiny", seed=0)


@pytest.fixture(scope="session")
def chat(tiny):
    from agentgym.policies import ChatFormat

    return ChatFormat(tiny[1])


@pytest.fixture
def rng():
    return np.random.default_rng(0)


class NoEEnv(TextEnv):
    """A trivially learnable reward: 1 when the reply has no letter 'e' (most tokens qualify)."""

    param_space = ParamSpace([Integer("level", 0, 3)])
    # Every task says the same thing: one content, so no content split (seeds only).
    held_out = HeldOut(seeds=range(1_000_000_000, 1_000_010_000), content_fraction=0.0)

    def _reset(self, params, rng):
        return [{"role": "user", "content": "Say something."}]

    def _step(self, action):
        ok = "e" not in action.lower()
        return Feedback([], {"no_e": float(ok)}, terminated=True, success=ok)

    def oracle(self):
        return "ok"


agentgym.register("test/no-e-v0", NoEEnv, description="reward 1 when the reply has no letter e")


class EOrNotEnv(TextEnv):
    """Reply with the letter e, or without it, as the prompt asks: a reward only a policy
    that reads its prompt can earn on both kinds of task."""

    param_space = ParamSpace([Categorical("want_e", (False, True))])
    # Two problems in all: no content split (seeds only).
    held_out = HeldOut(seeds=range(1_000_000_000, 1_000_010_000), content_fraction=0.0)

    def _reset(self, params, rng):
        self.want = bool(params["want_e"])
        return [{"role": "user", "content": "Reply with the letter e." if self.want else "Reply without the letter e."}]

    def _step(self, action):
        ok = ("e" in action.lower()) == self.want
        return Feedback([], {"ok": float(ok)}, terminated=True, success=ok)


agentgym.register("test/e-or-not-v0", EOrNotEnv, description="reply with or without an e, as asked")


def fake_installed_dist(root, name: str, entry_points: str) -> None:
    """Write ``NAME-0.1.dist-info`` into ``root``: what pip leaves for an installed package,
    so importlib.metadata finds its entry points once ``root`` is on sys.path."""
    dist = root / f"{name.replace('-', '_')}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(entry_points)


def installed_package(tmp_path_factory, name: str, source: str):
    """Put a one-file package ``name`` (``source`` as its ``__init__``) on sys.path, as an
    installed package would be, for a module's tests; remove it after (a generator for a
    fixture to ``yield from``)."""
    import sys

    root = tmp_path_factory.mktemp("site")
    (root / name).mkdir()
    (root / name / "__init__.py").write_text(source)
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))


def run_isolated(code: str, path):
    """Run ``code`` in a fresh interpreter with only ``path`` added to sys.path."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(path), "PATH": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
