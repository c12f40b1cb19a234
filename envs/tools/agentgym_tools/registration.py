"""Entry point of the ``agentgym.envs`` group: registers the tool-use ids with agentgym.

agentgym imports this at start-up, so it imports nothing heavy: the environment classes
are named by string and load on the first ``make``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import agentgym

_WORLDS = (
    ("calculator", "CalculatorToolEnv", "arithmetic and unit conversion chains"),
    (
        "database",
        "DatabaseToolEnv",
        "lookups in a generated knowledge base of people, companies and cities",
    ),
    ("calendar", "CalendarToolEnv", "event dates and date arithmetic"),
    ("python", "PythonToolEnv", "computations with a sandboxed Python tool"),
)


def register() -> None:
    """Register ``tools/<world>-v0``, ``tools/mixed-v0`` and ``tools/taskfile-v0``."""
    for world, cls, what in _WORLDS:
        agentgym.register(
            f"tools/{world}-v0",
            f"agentgym_tools.env:{cls}",
            description=f"Tool use: {what}; Hermes-style calls over several turns, ToolRL-style reward parts.",
        )
    agentgym.register(
        "tools/mixed-v0",
        "agentgym_tools.env:ToolWorldEnv",
        description="Tool use: all four generated worlds, the world being a parameter the teacher chooses.",
    )
    agentgym.register(
        "tools/taskfile-v0",
        "agentgym_tools.taskfile:TaskFileEnv",
        description="Tool use from a task file (kwarg path=; default: the bundled sample), scored by call matching.",
    )
    import importlib.util

    if importlib.util.find_spec("bfcl_eval") is not None:  # its data only; nothing of it is imported
        agentgym.register(
            "tools/bfcl-v0",
            "agentgym_tools.bfcl:BFCLEnv",
            description="BFCL's simple, multiple, parallel and parallel-multiple sets as shipped by bfcl-eval "
            "(category is a parameter), scored by call matching.",
        )


def register_task_file(env_id: str, path: str | Path, **kwargs: Any) -> None:
    """Register a JSON/JSONL task file (format: ``agentgym_tools.taskfile``) as ``env_id``.

    The file is checked now, so a broken file fails here and not in the middle of a run.
    """
    from agentgym_tools.taskfile import load_tasks

    load_tasks(path)
    agentgym.register(
        env_id,
        "agentgym_tools.taskfile:TaskFileEnv",
        kwargs={"path": str(Path(path).resolve()), **kwargs},
        description=f"Tool-use tasks from {Path(path).name}, scored by call matching.",
    )
