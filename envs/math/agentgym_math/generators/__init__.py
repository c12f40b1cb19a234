"""Task generators: ``generate(params, rnd) -> Problem``, one module per family.

Each generator builds its task only from ``rnd`` (a :class:`~agentgym_math.problem.Draws`
over the spec-seeded numpy generator, or any :class:`random.Random`), so the same spec
always gives the same problem.
"""
