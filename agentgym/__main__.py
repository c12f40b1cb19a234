"""``python -m agentgym ...`` (and ``torchrun --nproc-per-node N -m agentgym train CONFIG``)."""

from agentgym.cli import main

if __name__ == "__main__":
    main()
