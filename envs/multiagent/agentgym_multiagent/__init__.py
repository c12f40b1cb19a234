"""Multi-agent text games for agentgym: Kuhn poker, Nim, negotiation, and two-agent teams.

Importing this package is cheap on purpose: agentgym loads
:mod:`agentgym_multiagent.registration` at start-up, and each game's module loads on its
first ``make``.
"""

__version__ = "0.1.0"
