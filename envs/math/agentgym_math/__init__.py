"""Math environments for agentgym: arithmetic, fractions, linear equations, word problems.

Importing this package is cheap on purpose: agentgym loads
:mod:`agentgym_math.registration` at start-up, and the environments (and math_verify,
which the verifier imports only for answers its fast path cannot read) load on first use.
"""

__version__ = "0.1.0"
