"""Two-agent teams over a single-agent task family: pioneer/observer and solver/critic.

Both games wrap one registered single-agent env (the class attribute ``task_env``,
``math/arithmetic-v0`` by default): its task is the game's task, and every answer is
judged by stepping that env with the answer text, so an answer counts as correct exactly
when it would in single-agent training.

- :class:`PioneerObserverEnv` (as in CORY, arXiv 2410.06101): the pioneer answers the
  question; the observer sees the question and the pioneer's answer and gives the final
  answer.
- :class:`SolverCriticEnv`: the solver answers; the critic judges the answer correct or
  incorrect with a short reason; after "incorrect" the solver may revise once.

The game's parameters are the task family's plus ``opponent`` and ``seat``, and its
held-out split is the family's. Because a teacher reads ``param_space`` from the class,
each family gets its own class: :func:`team_game_class` makes one (cached) and
:func:`register_team_game` registers it under a new id. The ``task_env`` constructor
argument only confirms the class's family; it cannot switch it.
"""

from __future__ import annotations

import functools
import re
from typing import Any, ClassVar

import numpy as np

from agentgym.env import Message, TaskSpec
from agentgym.multiagent import Outcome, TextAECEnv, is_multiagent
from agentgym.spaces import Categorical, HeldOut, Integer, Params, ParamSpace
from agentgym_multiagent.parsing import excerpt

_SEAT_PARAMS = ("opponent", "seat")


@functools.cache
def _split_of(task_env: str, kinds: tuple[str, ...]) -> tuple[ParamSpace, HeldOut]:
    """The task family's space plus ``opponent``/``seat``, and the family's held-out split."""
    from agentgym.registry import spec

    cls = spec(task_env).load_class()
    space = getattr(cls, "param_space", None)
    if not isinstance(space, ParamSpace):
        raise TypeError(f"task_env {task_env!r} does not declare a ParamSpace on its class")
    clash = set(space.names) & set(_SEAT_PARAMS)
    if clash:
        raise ValueError(f"task_env {task_env!r} already has parameters {sorted(clash)}")
    dims = [
        *space.dims,
        Categorical("opponent", ("self", *kinds), description="who plays the other seat ('self': self-play)"),
        Integer("seat", 0, 1, description="the learner's seat when the partner is scripted"),
    ]
    held = cls.held_out
    return ParamSpace(dims), HeldOut(seeds=held.seeds, region=held.region, content_fraction=held.content_fraction)


class _FromTaskEnv:
    """``param_space`` / ``held_out`` of a team game, read from its ``task_env`` on first use."""

    def __init__(self, which: int):
        self.which = which

    def __get__(self, obj: Any, owner: type) -> Any:
        return _split_of(owner.task_env, tuple(owner.scripted_kinds))[self.which]


class TeamGame(TextAECEnv):
    """Shared machinery: the wrapped task env, the question, judging and scripted answers."""

    #: The registered single-agent env whose tasks and verifier the game uses.
    task_env: ClassVar[str] = "math/arithmetic-v0"
    param_space = _FromTaskEnv(0)  # type: ignore[assignment]
    held_out = _FromTaskEnv(1)  # type: ignore[assignment]

    def __init__(
        self,
        render_mode: str | None = None,
        *,
        task_env: str | None = None,
        task_env_kwargs: dict[str, Any] | None = None,
        max_turns: int = 16,
        **kwargs: Any,
    ):
        if task_env is not None and task_env != self.task_env:
            raise ValueError(
                f"{type(self).__name__} plays {self.task_env!r}, not {task_env!r}: use "
                "agentgym_multiagent.teams.register_team_game(id, game, task_env) for another family"
            )
        super().__init__(render_mode, max_turns=max_turns, **kwargs)
        from agentgym.registry import make

        self.inner = make(self.task_env, **(task_env_kwargs or {}))
        if is_multiagent(self.inner):
            raise TypeError(f"task_env {self.task_env!r} must be a single-agent env")
        self.question = ""
        self.task_system = ""
        self.gold: str | None = None
        self._inner_task: TaskSpec | None = None
        self._judged: dict[str, bool] = {}

    def _reset(self, params: Params, rng: np.random.Generator) -> dict[str, list[Message]]:
        inner_params = {k: v for k, v in params.items() if k not in _SEAT_PARAMS}
        self._inner_task = TaskSpec(inner_params, self.task.seed if self.task else 0)
        msgs, _ = self.inner.reset(options={"task": self._inner_task})
        self.task_system = " ".join(m["content"] for m in msgs if m["role"] == "system")
        self.question = "\n\n".join(m["content"] for m in msgs if m["role"] != "system")
        try:
            self.gold = self.inner.oracle()
        except NotImplementedError:
            self.gold = None
        self._judged = {}
        return self._opening()

    def _opening(self) -> dict[str, list[Message]]:
        raise NotImplementedError

    def content_key(self, task: TaskSpec) -> str:
        """The task env's content key: a problem held out of ``math/arithmetic-v0`` is held
        out of its team games too, whatever the seats and partner."""
        inner = {k: v for k, v in self.param_space.validate(task.params).items() if k not in _SEAT_PARAMS}
        return self.inner.content_key(TaskSpec(inner, int(task.seed)))

    def is_held_out_content(self, key: str) -> bool:
        return self.inner.is_held_out_content(key)

    def judge(self, answer: str) -> bool:
        """True when the task env counts ``answer`` as correct (its own verifier, a fresh episode)."""
        if answer not in self._judged:
            self.inner.reset(options={"task": self._inner_task})
            info = self.inner.step(answer)[4]
            self._judged[answer] = bool(info.get("success", False))
        return self._judged[answer]

    def _scripted_answer(self, kind: str, rng: np.random.Generator) -> str:
        """``"oracle"``: the task env's oracle answer; ``"random"``: that answer half the
        time, else the same text with its last number changed (almost always wrong)."""
        if self.gold is None:
            raise RuntimeError(f"{self.task_env!r} has no oracle(), so scripted players cannot answer")
        if kind == "oracle" or rng.random() < 0.5:
            return self.gold
        numbers = list(re.finditer(r"-?\d+", self.gold))
        if not numbers:
            return "I do not know."
        m = numbers[-1]
        shift = int(rng.integers(1, 10)) * (1 if rng.random() < 0.5 else -1)
        return self.gold[: m.start()] + str(int(m.group()) + shift) + self.gold[m.end() :]


class PioneerObserverEnv(TeamGame):
    """The pioneer answers first; the observer sees its answer and gives the final answer.

    Reward parts: ``individual`` = ``individual_reward`` if that agent's own answer is
    correct; ``shared`` = ``shared_reward`` to both if the observer's final answer is
    correct. ``success`` (both agents) = the final answer is correct. Scripted partners:
    ``"oracle"`` (the task's oracle answer), ``"random"`` (right half the time) and
    ``"echo"`` (as observer: repeats the pioneer's answer; as pioneer: like random).
    """

    metadata: ClassVar[dict[str, Any]] = {**TextAECEnv.metadata, "name": "pioneer_observer_v0"}
    agent_names = ("pioneer", "observer")
    scripted_kinds = ("oracle", "echo", "random")

    def __init__(
        self,
        render_mode: str | None = None,
        *,
        shared_reward: float = 1.0,
        individual_reward: float = 0.5,
        **kwargs: Any,
    ):
        super().__init__(render_mode, **kwargs)
        self.shared_reward = float(shared_reward)
        self.individual_reward = float(individual_reward)
        self.stage = 0
        self.pioneer_answer = ""

    def _opening(self) -> dict[str, list[Message]]:
        self.stage = 0
        self.pioneer_answer = ""
        pioneer = (
            "You are the pioneer in a team of two. You answer the question first; then the observer reads your "
            f"answer and gives the team's final answer. {self.task_system}"
        )
        observer = (
            "You are the observer in a team of two. The pioneer answers first; you see the question and its "
            "answer, then give the team's final answer: keep the pioneer's answer if it is right, correct it "
            f"if not. {self.task_system}"
        )
        return {
            "pioneer": [{"role": "system", "content": pioneer.strip()}, {"role": "user", "content": self.question}],
            "observer": [{"role": "system", "content": observer.strip()}],
        }

    def _next_agent(self) -> str:
        return self.agent_names[min(self.stage, 1)]

    def _play(self, agent: str, text: str) -> Outcome:
        ok = self.judge(text)
        if agent == "pioneer":
            self.pioneer_answer = text
            self.stage = 1
            ask = f"Question: {self.question}\n\nThe pioneer's answer: {excerpt(text)}\n\nGive the team's final answer."
            return Outcome(
                messages={"observer": [{"role": "user", "content": ask}]},
                rewards={"pioneer": {"individual": self.individual_reward * ok}},
            )
        self.stage = 2
        verdict = "correct" if ok else "not correct"
        return Outcome(
            done=True,
            messages={
                a: [{"role": "user", "content": f"The team's final answer is {verdict}."}] for a in self.agent_names
            },
            rewards={
                "pioneer": {"shared": self.shared_reward * ok},
                "observer": {"shared": self.shared_reward * ok, "individual": self.individual_reward * ok},
            },
            success={"pioneer": ok, "observer": ok},
        )

    def _scripted(self, agent: str, kind: str, rng: np.random.Generator) -> str:
        if kind == "echo" and agent == "observer" and self.pioneer_answer:
            return self.pioneer_answer
        return self._scripted_answer("random" if kind == "echo" else kind, rng)


_VERDICT = re.compile(r"\b(not\s+correct|incorrect|correct)\b", re.IGNORECASE)


def parse_verdict(text: str) -> tuple[str | None, str | None]:
    """The critic's verdict: the first of correct / incorrect / not correct in ``text``."""
    m = _VERDICT.search(text)
    if m is None:
        return None, "no verdict found. Start your reply with one word, correct or incorrect, then give a short reason."
    word = m.group(1).lower()
    return ("correct" if word == "correct" else "incorrect"), None


class SolverCriticEnv(TeamGame):
    """The solver answers; the critic says correct or incorrect; after incorrect the solver may revise once.

    Reward parts: the critic's ``judgement`` = ``critic_reward`` when its verdict matches
    the truth of the answer it judged (its ``success``); the solver's ``correct`` adds up
    to ``solver_reward`` times the correctness of its final answer (a revision that breaks
    a right answer gives ``-solver_reward``), its ``success`` = final answer correct.
    Scripted players: ``"oracle"`` (solver: the oracle answer; critic: the true verdict)
    and ``"random"`` (solver: right half the time; critic: a coin flip).
    """

    metadata: ClassVar[dict[str, Any]] = {**TextAECEnv.metadata, "name": "solver_critic_v0"}
    agent_names = ("solver", "critic")
    scripted_kinds = ("oracle", "random")

    def __init__(
        self, render_mode: str | None = None, *, solver_reward: float = 1.0, critic_reward: float = 1.0, **kwargs: Any
    ):
        super().__init__(render_mode, **kwargs)
        self.solver_reward = float(solver_reward)
        self.critic_reward = float(critic_reward)
        self.stage = "answer"
        self.first_correct = False

    def _opening(self) -> dict[str, list[Message]]:
        self.stage = "answer"
        self.first_correct = False
        solver = (
            "You are the solver. Answer the question. A critic will check your answer; if it says incorrect, "
            f"you may revise once. {self.task_system}"
        )
        critic = (
            "You are the critic. You will see a question and a solver's answer. Judge whether the answer is right. "
            "Start your reply with one word, correct or incorrect, then give a short reason."
        )
        return {
            "solver": [{"role": "system", "content": solver.strip()}, {"role": "user", "content": self.question}],
            "critic": [{"role": "system", "content": critic}],
        }

    def _next_agent(self) -> str:
        return "critic" if self.stage == "judge" else "solver"

    def _play(self, agent: str, text: str) -> Outcome:
        if self.stage == "answer":
            ok = self.judge(text)
            self.first_correct = ok
            self.stage = "judge"
            ask = (
                f"Question: {self.question}\n\nThe solver's answer: {excerpt(text)}\n\n"
                "Is this answer correct? Start your reply with one word, correct or incorrect, then give a short "
                "reason."
            )
            return Outcome(
                messages={"critic": [{"role": "user", "content": ask}]},
                rewards={"solver": {"correct": self.solver_reward * ok}},
                success={"solver": ok},
            )
        if self.stage == "judge":
            verdict, error = parse_verdict(text)
            if error is not None:
                return Outcome(errors={"critic": error})
            right = (verdict == "correct") == self.first_correct
            critic_part = {"critic": {"judgement": self.critic_reward * right}}
            if verdict == "correct":
                self.stage = "over"
                return Outcome(
                    done=True,
                    rewards=critic_part,
                    success={"critic": right},
                    messages={
                        "solver": [
                            {"role": "user", "content": "The critic judged your answer correct. The game is over."}
                        ],
                        "critic": [{"role": "user", "content": f"Your verdict was {'right' if right else 'wrong'}."}],
                    },
                )
            self.stage = "revise"
            ask = f"The critic says: {excerpt(text)}\n\nYou may revise your answer once. Give your final answer."
            return Outcome(
                rewards=critic_part, success={"critic": right}, messages={"solver": [{"role": "user", "content": ask}]}
            )
        ok = self.judge(text)
        self.stage = "over"
        delta = self.solver_reward * (int(ok) - int(self.first_correct))
        end = f"Your final answer is {'correct' if ok else 'not correct'}."
        critic_end = f"The solver's revised answer is {'correct' if ok else 'not correct'}. The game is over."
        return Outcome(
            done=True,
            rewards={"solver": {"correct": delta}},
            success={"solver": ok},
            messages={
                "solver": [{"role": "user", "content": end}],
                "critic": [{"role": "user", "content": critic_end}],
            },
        )

    def _scripted(self, agent: str, kind: str, rng: np.random.Generator) -> str:
        if agent == "critic":
            if kind == "oracle":
                right = self.first_correct
            else:
                right = bool(rng.random() < 0.5)
            return "correct: the answer checks out." if right else "incorrect: the answer does not check out."
        return self._scripted_answer(kind, rng)


class PioneerObserverWordEnv(PioneerObserverEnv):
    """Pioneer/observer over ``math/word-v0`` (multi-step word problems)."""

    task_env = "math/word-v0"


class SolverCriticWordEnv(SolverCriticEnv):
    """Solver/critic over ``math/word-v0`` (multi-step word problems)."""

    task_env = "math/word-v0"


GAMES: dict[str, type[TeamGame]] = {"pioneer-observer": PioneerObserverEnv, "solver-critic": SolverCriticEnv}


@functools.cache
def team_game_class(game: str, task_env: str) -> type[TeamGame]:
    """The team game ``game`` ("pioneer-observer" or "solver-critic") over ``task_env`` (one class per pair)."""
    if game not in GAMES:
        raise ValueError(f"unknown team game {game!r}; choose from {sorted(GAMES)}")
    base = GAMES[game]
    if task_env == base.task_env:
        return base
    name = base.__name__.removesuffix("Env") + "_" + re.sub(r"\W", "_", task_env)
    return type(
        name, (base,), {"task_env": task_env, "__doc__": f"{base.__name__} over {task_env!r}.", "__module__": __name__}
    )


def register_team_game(
    env_id: str, game: str, task_env: str, kwargs: dict[str, Any] | None = None, description: str = ""
) -> None:
    """Register ``game`` over the single-agent family ``task_env`` as ``env_id``."""
    from agentgym.registry import register

    cls = team_game_class(game, task_env)
    register(env_id, cls, kwargs=kwargs, description=description or f"{game} team over {task_env}", gymnasium_id=False)
