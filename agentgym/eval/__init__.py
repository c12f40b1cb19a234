"""Held-out evaluation, pass@k and reports."""

from agentgym.eval.heldout import EnvReport, RowStats, evaluate_env, pass_at_k, write_json

__all__ = ["EnvReport", "RowStats", "evaluate_env", "pass_at_k", "write_json"]
