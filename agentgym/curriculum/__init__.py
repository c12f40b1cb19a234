"""Teachers: choose training tasks by the agent's learning progress."""

from agentgym.curriculum.base import GroupResult, RandomTeacher, Teacher, TrainingTasks

__all__ = ["GroupResult", "RandomTeacher", "Teacher", "TrainingTasks", "make_teacher"]


def make_teacher(name: str, tasks: TrainingTasks, seed: int = 0):
    if name == "random":
        return RandomTeacher(tasks, seed=seed)
    raise ValueError(f"unknown teacher {name!r}; available: random")
