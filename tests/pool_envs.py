"""Small envs for the env-pool tests. Ray workers import this module to build them, so it
stays light: no torch, no test fixtures (tests/conftest.py imports torch: 3 s a worker)."""

from __future__ import annotations

import os
import re

import agentgym
from agentgym import Feedback, HeldOut, Integer, ParamSpace, TextEnv


class GuessLite(TextEnv):
    """Guess a hidden integer in [1, high]; the env answers 'higher' or 'lower'."""

    param_space = ParamSpace([Integer("high", 2, 50)])
    held_out = HeldOut(seeds=range(1_000_000_000, 1_000_010_000))

    def __init__(self, max_turns: int = 4, render_mode=None):
        super().__init__(render_mode=render_mode)
        self.max_turns = max_turns

    def _reset(self, params, rng):
        self.secret = int(rng.integers(1, params["high"] + 1))
        return [{"role": "user", "content": f"Guess my number between 1 and {params['high']}."}]

    def _step(self, action):
        m = re.search(r"-?\d+", action)
        if m is None:
            return Feedback(
                [{"role": "user", "content": "Reply with a number."}], {"correct": 0.0}, error="no number in the reply"
            )
        guess = int(m.group())
        if guess == self.secret:
            return Feedback([], {"correct": 1.0}, terminated=True, success=True)
        return Feedback(
            [{"role": "user", "content": f"No, {'higher' if guess < self.secret else 'lower'}."}], {"correct": 0.0}
        )


class CrashOnceEnv(GuessLite):
    """The worker process running it exits on an episode's second step if it can claim
    ``marker`` (a file; one claim in all). Without the file it is :class:`GuessLite`."""

    def __init__(self, max_turns: int = 4, marker: str = "", render_mode=None):
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        self.marker = marker

    def _reset(self, params, rng):
        self.steps = 0
        return super()._reset(params, rng)

    def _step(self, action):
        self.steps += 1
        if self.marker and self.steps == 2 and os.path.exists(self.marker):
            try:
                os.rename(self.marker, self.marker + ".claimed")
            except OSError:  # another worker claimed it first
                return super()._step(action)
            os._exit(1)
        return super()._step(action)


class PidEnv(GuessLite):
    """Its replies name the process: a replay on another worker never matches."""

    def _step(self, action):
        fb = super()._step(action)
        return Feedback([{"role": "user", "content": f"pid {os.getpid()}"}], fb.reward_parts)


class DieEnv(GuessLite):
    """The worker process exits whenever the action is 'die' (a replay dies again)."""

    def _step(self, action):
        if action == "die":
            os._exit(1)
        return super()._step(action)


class BrokenResetEnv(GuessLite):
    def _reset(self, params, rng):
        raise RuntimeError("reset bug")


agentgym.register("pool/guess-v0", GuessLite, description="guessing game (env-pool tests)")
agentgym.register("pool/crash-once-v0", CrashOnceEnv, description="worker exits once, mid-episode")
agentgym.register("pool/pid-v0", PidEnv, description="replies name the worker process")
agentgym.register("pool/die-v0", DieEnv, description="worker exits on the action 'die'")
agentgym.register("pool/broken-reset-v0", BrokenResetEnv, description="reset raises")
