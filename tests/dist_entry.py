"""The ``agentgym`` command with the test envs registered, for ``torchrun`` in the tests:
``torchrun --nproc-per-node 2 tests/dist_entry.py train ...``."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tests.conftest  # noqa: E402,F401  (registers test/no-e-v0 and friends)
from agentgym.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.argv = ["agentgym", *sys.argv[1:]]
    main()
