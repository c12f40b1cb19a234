"""agentgym tool-use environments: function calling over generated worlds and task files."""

from typing import Any

__all__ = ["register_task_file"]


def __getattr__(name: str) -> Any:
    # Lazy, so that importing this package before agentgym does not start agentgym's
    # plugin discovery while this package's registration module is half loaded.
    if name == "register_task_file":
        from agentgym_tools.registration import register_task_file

        return register_task_file
    raise AttributeError(f"module 'agentgym_tools' has no attribute {name!r}")
