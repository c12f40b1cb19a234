"""The ``agentgym`` command with the test envs registered, for ``torchrun`` in the tests:
``torchrun --nproc-per-node 2 tests/dist_entry.py train ...``."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tests.conftest  # noqa: E402,F401  (registers test/no-e-v0 and friends)
from agentgym.cli import main  # noqa: E402

# AGENTGYM_TEST_SLOW_AFTER_STEP=k: every step after step k first sleeps 3 s, so a test's
# Ctrl-C lands inside a known step however fast the tiny model's steps are (timing only:
# the numbers are unchanged). With AGENTGYM_TEST_STEP_MARKS=folder, each rank first writes
# folder/rank{r}-step{n} as it begins step n, so a test can wait until the step has begun
# (a checkpoint file alone is written before the loop decides whether to go on).
_SLOW_AFTER = os.environ.get("AGENTGYM_TEST_SLOW_AFTER_STEP")
_MARKS = os.environ.get("AGENTGYM_TEST_STEP_MARKS")
if _SLOW_AFTER is not None:
    import time

    from agentgym.grpo.trainer import GRPOTrainer

    _step_once = GRPOTrainer.step_once

    def _slow_step_once(self, *args, **kwargs):
        if _MARKS:
            rank = os.environ.get("RANK", "0")
            with open(os.path.join(_MARKS, f"rank{rank}-step{self.step + 1}"), "w"):
                pass
        if self.step >= int(_SLOW_AFTER):
            time.sleep(3.0)
        return _step_once(self, *args, **kwargs)

    GRPOTrainer.step_once = _slow_step_once

if __name__ == "__main__":
    sys.argv = ["agentgym", *sys.argv[1:]]
    main()
