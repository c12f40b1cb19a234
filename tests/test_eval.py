import json

import pytest

from agentgym.env import TaskSpec
from agentgym.eval import evaluate_env, pass_at_k, report_metrics, report_summary, write_json
from agentgym.eval.heldout import pass_at_k as heldout_pass_at_k
from agentgym.policies import SamplingParams, ScriptedPolicy


def test_pass_at_k_by_hand():
    assert pass_at_k(4, 0, 1) == 0.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    # n=4, c=1, k=2: 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)
    # n=5, c=2, k=3: 1 - C(3,3)/C(5,3) = 1 - 1/10
    assert pass_at_k(5, 2, 3) == pytest.approx(0.9)
    assert pass_at_k(3, 3, 3) == 1.0
    with pytest.raises(ValueError):
        pass_at_k(2, 3, 1)
    assert heldout_pass_at_k is pass_at_k  # the old import path still works


def _secret_from(text):
    # The guess env is solvable by binary search on its feedback.
    import re

    high = int(re.search(r"between 1 and (\d+)", text).group(1))
    lo, hi = 1, high
    guesses = re.findall(r"<\|im_start\|>assistant\n(\d+)<\|im_end\|>\n<\|im_start\|>user\nNo, (higher|lower)", text)
    for g, word in guesses:
        if word == "higher":
            lo = int(g) + 1
        else:
            hi = int(g) - 1
    return (lo + hi) // 2


def test_held_out_eval_splits_regions_and_counts_success(chat, tmp_path):
    pol = ScriptedPolicy(chat, lambda text: str(_secret_from(text)))
    rep = evaluate_env(
        pol, "test/guess-v0", n_tasks=24, k=2, sampling=SamplingParams(max_new_tokens=8), env_kwargs={"max_turns": 6}
    )
    assert rep.overall.tasks == 24 and rep.overall.episodes == 48
    # Binary search finds any number up to 50 within 6 guesses.
    assert rep.overall.success == 1.0 and rep.overall.pass_at_k.value == 1.0
    assert set(rep.by_region) == {"unseen region", "trained region, unseen seeds"}
    # Every 4th held-out task lies in the region while it has held-out contents left: the
    # region (high = 7) holds 14 problems, 5 of them held out.
    assert rep.by_region["unseen region"].tasks == 5
    assert all(t["task"]["seed"] >= 1_000_000_000 for t in rep.tasks)
    out = write_json([rep], tmp_path / "r.json", meta={"policy": "script"})
    data = json.loads(out.read_text())
    assert data["envs"][0]["overall"]["success"] == 1.0 and data["meta"]["policy"] == "script"


def test_eval_of_a_wrong_policy_is_zero(chat):
    pol = ScriptedPolicy(chat, lambda text: "I give up")
    rep = evaluate_env(pol, "test/guess-v0", n_tasks=8, k=1, sampling=SamplingParams(max_new_tokens=8))
    assert rep.overall.success == 0.0 and rep.overall.format_errors == 1.0


def test_eval_reports_mean_reward_parts(chat):
    pytest.importorskip("agentgym_tools")
    pol = ScriptedPolicy(chat, lambda text: "<answer>0</answer>")
    rep = evaluate_env(pol, "tools/calendar-v0", n_tasks=8, k=1, sampling=SamplingParams(max_new_tokens=8))
    parts = rep.overall.reward_parts
    # a well-formed answer and no calls: full format score, no name/args credit, wrong answers
    assert parts == {"format": pytest.approx(0.1), "name": 0.0, "args": 0.0, "answer": 0.0}
    assert sum(parts.values()) == pytest.approx(rep.overall.mean_reward)


# ----- mean@k, pass@k and greedy, with standard errors over distinct tasks ---------------------

S = 1_000_000_000  # the first held-out seed of test/guess-v0
# Four tasks with four different prompts; with max_turns=1 a task is one guess. Their
# secrets (fixed by the env's seeded draw) are 1, 2, 3 and 1.
A = TaskSpec({"high": 2, "hint": False}, S + 2)
B = TaskSpec({"high": 2, "hint": True}, S)
C = TaskSpec({"high": 3, "hint": False}, S)
D = TaskSpec({"high": 7, "hint": False}, S + 2)  # high=7: the env's held-out region


class TwoFaced(ScriptedPolicy):
    """Greedy, it always guesses 1. Sampled, the n-th sample of a prompt guesses 1 when
    n % 4 == 0, else 2: any 4 samples of a task hold one 1 and three 2s, in any order."""

    def __init__(self, chat):
        super().__init__(chat, self._reply)
        self.temperature = 0.0
        self.seen: dict[str, int] = {}
        self.temperatures: list[float] = []

    def generate(self, prompts, sampling, seeds=None):
        self.temperature = sampling.temperature
        self.temperatures.append(sampling.temperature)
        return super().generate(prompts, sampling, seeds)

    def _reply(self, text):
        if self.temperature == 0:
            return "1"
        n = self.seen.get(text, 0)
        self.seen[text] = n + 1
        return "1" if n % 4 == 0 else "2"


def test_the_secrets_the_tests_rely_on():
    import agentgym

    env = agentgym.make("test/guess-v0", max_turns=1)
    secrets = []
    for t in (A, B, C, D):
        env.reset(options={"task": t})
        secrets.append(env.secret)
    assert secrets == [1, 2, 3, 1]


def test_mean_at_k_pass_at_k_and_greedy_come_from_their_own_passes(chat):
    pol = TwoFaced(chat)
    sp = SamplingParams(max_new_tokens=4, temperature=1.0)
    rep = evaluate_env(pol, "test/guess-v0", tasks=[A, B, C, D], k=4, sampling=sp, env_kwargs={"max_turns": 1})
    assert sorted(set(pol.temperatures)) == [0.0, 1.0]  # a sampled pass and a greedy one
    o = rep.overall
    assert (o.tasks, o.episodes, rep.k, rep.temperature) == (4, 16, 4, 1.0)
    # Sampled: A (secret 1) is right once in 4, B (secret 2) three times, C never, D once.
    # mean@4 = (1/4 + 3/4 + 0 + 1/4) / 4 = 0.3125; squared deviations 0.00390625 + 0.19140625
    # + 0.09765625 + 0.00390625 = 0.296875; SE = sqrt(0.296875 / 3 / 4) = 0.157288.
    assert o.mean_at_k.value == pytest.approx(0.3125) and o.success == pytest.approx(0.3125)
    assert o.mean_at_k.se == pytest.approx(0.157288, abs=1e-6) and o.mean_at_k.tasks == 4
    # 95% t interval, t(0.975, 3) = 3.182446: 0.3125 +- 0.500564, clipped at 0.
    assert o.mean_at_k.low == 0.0 and o.mean_at_k.high == pytest.approx(0.813064, abs=1e-5)
    # pass@4 of 4 samples: 1 when any succeeded: [1, 1, 0, 1], mean 3/4, SE sqrt(0.75 / 3 / 4) = 1/4.
    assert (o.pass_at_k.value, o.pass_at_k.se) == pytest.approx((0.75, 0.25))
    # Greedy guesses 1: right on A and D only: [1, 0, 0, 1], mean 1/2, SE sqrt(1/3 / 4).
    assert (o.greedy.value, o.greedy.se, o.greedy.tasks) == pytest.approx((0.5, (1 / 12) ** 0.5, 4))
    # By region: D alone lies in the held-out region (one task: no standard error).
    unseen, trained = rep.by_region["unseen region"], rep.by_region["trained region, unseen seeds"]
    assert (unseen.tasks, unseen.mean_at_k.value, unseen.greedy.value) == (1, 0.25, 1.0)
    assert unseen.mean_at_k.se != unseen.mean_at_k.se  # NaN
    assert trained.tasks == 3 and trained.mean_at_k.value == pytest.approx(1 / 3)
    assert rep.by_param["high"]["2"].tasks == 2 and rep.by_param["high"]["2"].greedy.value == 0.5
    assert [t["greedy_successes"] for t in rep.tasks] == [[True], [False], [False], [True]]
    assert [sum(t["successes"]) for t in rep.tasks] == [1, 3, 0, 1]


def test_report_metrics_and_summary_carry_every_standard_error(chat, tmp_path):
    sp = SamplingParams(max_new_tokens=4, temperature=1.0)
    rep = evaluate_env(
        TwoFaced(chat), "test/guess-v0", tasks=[A, B, C, D], k=4, sampling=sp, env_kwargs={"max_turns": 1}
    )
    m = report_metrics(rep)
    assert m["eval/success"] == m["eval/mean_at_k"] == pytest.approx(0.3125)
    assert m["eval/success_se"] == m["eval/mean_at_k_se"] == pytest.approx(0.157288, abs=1e-6)
    assert (m["eval/tasks"], m["eval/k"], m["eval/temperature"]) == (4, 4, 1.0)
    assert m["eval/greedy"] == 0.5 and m["eval/pass_at_k_se"] == pytest.approx(0.25)
    for name in ("mean_at_k", "pass_at_k", "greedy"):
        assert {f"eval/{name}{s}" for s in ("", "_se", "_low", "_high")} <= set(m)
    assert m["eval/success[trained region, unseen seeds]"] == pytest.approx(1 / 3)
    assert m["eval/tasks[unseen region]"] == 1 and m["eval/greedy[unseen region]"] == 1.0
    assert "eval/greedy_se[trained region, unseen seeds]" in m
    summary = report_summary(rep)
    assert summary["tasks"] == 4 and summary["k"] == 4 and summary["temperature"] == 1.0
    assert summary["mean_at_k"]["se"] == pytest.approx(0.157288, abs=1e-6)
    assert summary["greedy"] == {
        "value": 0.5,
        "se": pytest.approx((1 / 12) ** 0.5),
        "low": 0.0,
        "high": 1.0,
        "tasks": 4,
    }
    assert summary["by_region"]["unseen region"]["tasks"] == 1
    data = json.loads(write_json([rep], tmp_path / "r.json").read_text())
    assert data["envs"][0]["overall"]["mean_at_k"]["se"] == pytest.approx(0.157288, abs=1e-6)
    assert data["envs"][0]["overall"]["greedy"]["tasks"] == 4


def test_a_repeated_task_is_one_unit_of_the_standard_error(chat):
    pol = ScriptedPolicy(chat, lambda text: "1")
    sp = SamplingParams(max_new_tokens=4, temperature=0.0)
    rep = evaluate_env(pol, "test/guess-v0", tasks=[A, A, A, C], k=1, sampling=sp, env_kwargs={"max_turns": 1})
    # Two distinct tasks, A right and C wrong: 1/2 (pooling the four entries would say 3/4).
    assert rep.overall.tasks == 2 and rep.overall.episodes == 4
    assert rep.overall.mean_at_k.value == 0.5 and rep.overall.mean_at_k.se == pytest.approx(0.5)


def test_greedy_sampling_is_its_own_greedy_pass_and_the_greedy_pass_can_be_off(chat):
    pol = TwoFaced(chat)
    sp = SamplingParams(max_new_tokens=4, temperature=0.0)
    rep = evaluate_env(pol, "test/guess-v0", tasks=[A, B, C, D], k=1, sampling=sp, env_kwargs={"max_turns": 1})
    assert pol.temperatures == [0.0]  # one pass: greedy sampling is the greedy pass
    assert rep.overall.greedy == rep.overall.mean_at_k and rep.overall.greedy.value == 0.5
    pol = TwoFaced(chat)
    sp = SamplingParams(max_new_tokens=4, temperature=1.0)
    rep = evaluate_env(pol, "test/guess-v0", tasks=[A, B], k=4, sampling=sp, greedy=False, env_kwargs={"max_turns": 1})
    assert pol.temperatures == [1.0] and rep.overall.greedy is None
    assert "eval/greedy" not in report_metrics(rep)


def test_samples_are_seeded_by_task_and_leave_the_policy_s_generator_alone(chat):
    from agentgym.policies.scripted import RandomPolicy

    pol = RandomPolicy(chat, seed=3)
    state = pol.rng.bit_generator.state
    seen: list[dict] = []
    replies = []
    sp = SamplingParams(max_new_tokens=3, temperature=1.0)
    for batch in (4, 1):  # the same draws whatever the batching
        rep = evaluate_env(
            pol, "test/guess-v0", tasks=[A, B, C], k=2, sampling=sp, batch_tasks=batch, on_samples=seen.extend
        )
        replies.append([t["reply"] for t in rep.tasks])
    assert replies[0] == replies[1]
    assert pol.rng.bit_generator.state == state  # training's random stream is untouched
    # every sample is handed over with its pass and its index in the whole task list
    assert {(r["pass"], r["task_index"]) for r in seen} == {(p, i) for p in ("sampled", "greedy") for i in range(3)}


def test_a_game_s_standard_errors_are_over_deals_not_plays(chat):
    from agentgym.eval import evaluate_env
    from tests.test_multiagent_core import nim_task  # registers test/ma-nim-v0

    # The policy always takes 1, and so does the "ones" opponent (whoever takes the last wins).
    # Heap 1: in seat 0 the policy wins; in seat 1 the opponent took the last before it moved.
    # Heap 2: seat 0 loses (1, 1), seat 1 wins. Each deal: one win in two seats, 1/2.
    pol = TwoFaced(chat)
    pol.respond = lambda text: "1"
    sp = SamplingParams(max_new_tokens=4, temperature=1.0)
    rep = evaluate_env(pol, "test/ma-nim-v0", tasks=[nim_task(1), nim_task(2)], sampling=sp, k=2, opponents=["ones"])
    o = rep.overall
    assert sorted(set(pol.temperatures)) == [0.0, 1.0] and rep.k == 2
    assert o.tasks == 2 and o.episodes == 2 * 2 * 2  # deals x seats x k
    # Two units of 1/2 each: SE 0. Counting the four plays as units would give SE 0.29.
    assert (o.mean_at_k.value, o.mean_at_k.se) == (0.5, 0.0) and (o.greedy.value, o.greedy.se) == (0.5, 0.0)
    seat0 = rep.by_param["seat"]["player_0"]
    assert seat0.tasks == 2 and (seat0.mean_at_k.value, seat0.mean_at_k.se) == (0.5, 0.5)
    assert rep.by_param["opponent"]["ones"].greedy.tasks == 2
    m = report_metrics(rep)
    assert (
        m["eval/opponent/ones"] == 0.5 and m["eval/opponent_se/ones"] == 0.0 and m["eval/opponent_greedy/ones"] == 0.5
    )


# ----- the plan of `agentgym eval`: checked before any model loads ------------------------------
def test_eval_plan_counts_each_game_play_and_breaks_games_down_by_opponent_and_seat():
    pytest.importorskip("tests.test_multiagent_core")  # registers test/ma-nim-v0
    from agentgym.eval.plan import plan_eval

    plan = plan_eval(
        ["test/guess-v0", "test/ma-nim-v0"],
        n_tasks=5,
        k=3,
        seed=0,
        max_new_tokens=8,
        temperature=0.7,
        opponents=["self", "ones"],
    )
    assert plan.passes == 2 and plan.sampling.temperature == 0.7
    assert plan.games == {"test/ma-nim-v0": (["self", "ones"], 2)}
    # 5 tasks x 2 passes; the game plays each task once in self-play and in each of 2 seats vs ones.
    assert plan.plays("test/guess-v0") == 10 and plan.plays("test/ma-nim-v0") == 5 * 3 * 2
    assert plan.breakdown == ["opponent", "opponent / seat"]
    restricted = plan_eval(["test/guess-v0"], n_tasks=4, k=1, seed=1234, max_new_tokens=8, temperature=1.0,
                           greedy=False, restrict={"high": [3, 4]})  # fmt: skip
    drawn = restricted.task_lists["test/guess-v0"]  # fewer than 4: few held-out contents there
    assert drawn and {t.params["high"] for t in drawn} <= {3, 4}
    assert restricted.plays("test/guess-v0") == len(drawn) and not restricted.games and restricted.breakdown == []


@pytest.mark.parametrize(
    "change, option, words",
    [
        ({"env_ids": ["test/nope-v0"]}, "ENV_ID", "nope"),
        ({"k": 0}, None, "at least 1"),
        ({"temperature": 0.0}, None, "greedy"),
        ({"max_new_tokens": 0}, None, "max_new_tokens"),
        ({"restrict": {"nope": [1]}}, "--param", "nope"),
        ({"env_kwargs": {"no_such_kwarg": 1}}, "--env-kwarg", "no_such_kwarg"),
        ({"by": ["hgih"]}, "--by", "did you mean 'high'"),
    ],
)
def test_eval_plan_names_the_option_that_cannot_work(change, option, words):
    from agentgym.eval.plan import EvalArgError, plan_eval

    args = dict(env_ids=["test/guess-v0"], n_tasks=3, k=2, seed=0, max_new_tokens=8, temperature=1.0) | change
    with pytest.raises(EvalArgError, match=words) as err:
        plan_eval(args.pop("env_ids"), **args)
    assert err.value.option == option
