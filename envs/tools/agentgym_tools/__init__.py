"""agentgym tool-use environments: function calling over generated worlds and task files."""

from agentgym_tools.registration import register_task_file

__all__ = ["register_task_file"]
