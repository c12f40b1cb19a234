"""The MiniGrid text environments: registration, determinism, the BabyAI bot acting only
through the text, planner subgoals (on hand-built grids and sampled levels), rewards,
action limits and held-out sampling."""

from __future__ import annotations

import pytest

pytest.importorskip("minigrid")
pytest.importorskip("agentgym_minigrid")

import gymnasium  # noqa: E402
import numpy as np  # noqa: E402
from agentgym_minigrid.bots import make_bot, run_bot  # noqa: E402
from agentgym_minigrid.levels import FAMILIES, build, reset_level  # noqa: E402
from agentgym_minigrid.subgoals import follow_action, plan_subgoals  # noqa: E402
from agentgym_minigrid.text import ACTION_WORDS  # noqa: E402
from agentgym_minigrid.textbot import TextBot  # noqa: E402
from minigrid.core.grid import Grid  # noqa: E402
from minigrid.core.mission import MissionSpace  # noqa: E402
from minigrid.core.world_object import Ball, Box, Door, Goal, Key, Wall  # noqa: E402
from minigrid.envs.babyai.core.verifier import ObjDesc, PutNextInstr  # noqa: E402
from minigrid.minigrid_env import MiniGridEnv as RawMiniGridEnv  # noqa: E402

import agentgym  # noqa: E402
from agentgym import TaskSpec  # noqa: E402

IDS = ["minigrid/levels-v0", *(f"minigrid/{f}-v0" for f in FAMILIES)]


def spec(family, size=6, count=2, show=False, seed=0):
    return TaskSpec({"family": family, "size": size, "count": count, "show_subgoals": show}, seed)


# ----- registration and the Gymnasium contract ------------------------------------------
@pytest.mark.parametrize("env_id", IDS)
def test_gymnasium_make_gives_the_minigrid_prompt(env_id):
    # (check_env, the entry point and a cheap import: tests/test_conformance.py)
    genv = gymnasium.make(env_id)
    obs, info = genv.reset(seed=3)
    assert obs[0]["role"] == "system" and "turn left" in obs[0]["content"]
    assert obs[1]["content"].startswith("Mission: ") and "You face" in obs[1]["content"]
    obs, reward, terminated, truncated, info = genv.step("turn left, go forward")
    assert info["error"] is None and set(info["reward_parts"]) == {"success", "subgoal", "invalid"}


@pytest.mark.parametrize("family", FAMILIES)
def test_same_spec_same_grid_and_text(family):
    a, b = agentgym.make("minigrid/levels-v0"), agentgym.make("minigrid/levels-v0")
    s = spec(family, size=7, count=3, show=True, seed=4321)
    msgs_a, _ = a.reset(options={"task": s})
    grid_a = a.minigrid.grid.encode().copy()
    pose_a = (tuple(int(v) for v in a.minigrid.agent_pos), a.minigrid.agent_dir)
    b.reset(options={"task": spec(family, size=7, count=3, show=True, seed=1)})  # another task between
    msgs_b, _ = b.reset(options={"task": s.to_dict()})
    assert msgs_a == msgs_b
    assert np.array_equal(grid_a, b.minigrid.grid.encode())
    assert pose_a == (tuple(int(v) for v in b.minigrid.agent_pos), b.minigrid.agent_dir)
    # The same actions give the same transcript.
    for action in ("turn left, go forward", "go forward, pick up", "toggle"):
        ra, rb = a.step(action), b.step(action)
        assert ra[0] == rb[0] and ra[1] == rb[1]
    texts = {a.reset(options={"task": spec(family, 7, 3, seed=sd)})[0][1]["content"] for sd in range(12)}
    assert len(texts) >= 8  # seeds make different levels


def test_params_map_to_the_documented_minigrid_levels():
    env = agentgym.make("minigrid/levels-v0")
    expect = {
        ("empty", 6, 1): ("EmptyEnv", (6, 6)),
        ("doorkey", 8, 2): ("DoorKeyEnv", (8, 8)),
        ("keycorridor", 6, 3): ("KeyCorridorEnv", (10, 10)),
        ("goto", 5, 3): ("GoTo", (13, 5)),
        ("open", 6, 1): ("BabyAILevel", (11, 6)),
        ("pickup", 8, 2): ("BabyAILevel", (15, 8)),
        ("putnext", 7, 1): ("BabyAILevel", (7, 7)),
        ("multiroom", 6, 2): ("MultiRoomEnv", (25, 25)),
    }
    for (family, size, count), (cls, shape) in expect.items():
        env.reset(options={"task": spec(family, size, count)})
        mg = env.minigrid
        assert type(mg).__name__ == cls and (mg.width, mg.height) == shape, family
    env.reset(options={"task": spec("multiroom", 6, 3)})
    assert len(env.minigrid.rooms) == 4 and env.minigrid.max_steps == 160


# ----- the bot, acting only through the text ----------------------------------------------
def _sample_tasks(per_family: int, seed: int = 0) -> list[TaskSpec]:
    rng = np.random.default_rng(seed)
    out = []
    for family in FAMILIES:
        cls = agentgym.make(f"minigrid/{family}-v0")
        out += [cls.sample_train_task(rng) for _ in range(per_family)]
    # Held-out tasks too (the region training never sees, and held-out seeds).
    out += agentgym.make("minigrid/levels-v0").held_out_tasks(16, seed=seed)
    return out


def _play_text_bot(env, task) -> tuple[bool, int]:
    obs, _ = env.reset(options={"task": task})
    bot = TextBot()
    while True:
        obs, _, terminated, truncated, info = env.step(bot.act(obs))
        if terminated or truncated:
            return bool(info["success"]), bot.steps


def test_babyai_bot_solves_99_percent_through_the_text_alone():
    """TextBot reads only the env's messages (it rebuilds the map from them) and answers
    with action words through env.step(text): nothing needed is lost in the text."""
    env = agentgym.make("minigrid/levels-v0", max_turns=100_000)
    tasks = _sample_tasks(per_family=40)
    by_family: dict[str, list[bool]] = {}
    for task in tasks:
        ok, _ = _play_text_bot(env, task)
        by_family.setdefault(task.params["family"], []).append(ok)
    rates = {f: sum(v) / len(v) for f, v in by_family.items()}
    total = sum(sum(v) for v in by_family.values()) / len(tasks)
    assert set(rates) == set(FAMILIES)
    assert total >= 0.99, rates


def test_oracle_solves_sampled_tasks():
    env = agentgym.make("minigrid/levels-v0", max_turns=100_000)
    solved = 0
    tasks = _sample_tasks(per_family=8, seed=1)
    for task in tasks:
        env.reset(options={"task": task})
        while True:
            action = env.oracle()
            assert action in ACTION_WORDS
            _, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
        solved += info["success"]
    assert solved / len(tasks) >= 0.99


def test_fast_bot_makes_the_same_decisions_as_minigrids_bot():
    for family in FAMILIES:
        for seed in range(5):
            runs = []
            for fast in (False, True):
                env = build(family, 5 + seed % 4, 1 + seed % 3)
                reset_level(env, seed)
                runs.append(run_bot(env, fast=fast))
            assert runs[0] == runs[1] and runs[0][0], (family, seed)


def test_oracle_recovers_after_the_agent_did_other_things():
    env = agentgym.make("minigrid/doorkey-v0", max_turns=100_000)
    env.reset(options={"task": spec("doorkey", 8, 1, seed=9)})
    env.step("turn left, turn left, go forward, turn right")  # several actions: the bot restarts
    while True:
        _, _, terminated, truncated, info = env.step(env.oracle())
        if terminated or truncated:
            break
    assert info["success"]


def test_a_multi_action_oracle_fits_doorkey_into_four_turns_without_touching_the_level():
    """oracle_actions=6: the bot plans six actions on a copy of the level. One action per
    turn solves no DoorKey in 4 turns; six solve them, and each plan is exactly what the
    one-action bot does on the same level, action by action."""
    solved = {1: 0, 6: 0}
    for k in solved:
        env = agentgym.make("minigrid/doorkey-v0", max_turns=4, max_actions=6, oracle_actions=k)
        for seed in range(10):
            env.reset(options={"task": spec("doorkey", 5 + seed % 2, 1, seed=seed)})
            while True:
                before = (tuple(env.minigrid.agent_pos), env.minigrid.agent_dir, env.minigrid.step_count)
                reply = env.oracle()
                after = (tuple(env.minigrid.agent_pos), env.minigrid.agent_dir, env.minigrid.step_count)
                assert before == after  # planning never steps the real level
                words = reply.split(", ")
                assert 1 <= len(words) <= k and all(w in ACTION_WORDS for w in words)
                _, _, terminated, truncated, info = env.step(reply)
                assert info["error"] is None
                if terminated or truncated:
                    break
            solved[k] += info["success"]
    assert solved == {1: 0, 6: 10}
    # the plan is the one-action bot's own sequence (same state, same bot memory)
    one = agentgym.make("minigrid/doorkey-v0", max_turns=100, max_actions=6)
    many = agentgym.make("minigrid/doorkey-v0", max_turns=100, max_actions=6, oracle_actions=6)
    for env in (one, many):
        env.reset(options={"task": spec("doorkey", 6, 1, seed=4)})
    single = []
    while True:
        a = one.oracle()
        single.append(a)
        *_, term, trunc, _ = one.step(a)
        if term or trunc:
            break
    planned = []
    while True:
        reply = many.oracle()
        planned += reply.split(", ")
        *_, term, trunc, _ = many.step(reply)
        if term or trunc:
            break
    assert planned == single
    with pytest.raises(ValueError, match="oracle_actions"):
        agentgym.make("minigrid/doorkey-v0", max_actions=3, oracle_actions=4)


def test_oracle_needs_a_reset():
    with pytest.raises(RuntimeError):
        agentgym.make("minigrid/empty-v0").oracle()


# ----- hand-built grids -------------------------------------------------------------------
class HandGrid(RawMiniGridEnv):
    """A level drawn as text: # wall, K yellow key, L locked yellow door, D red door,
    E blue door, G goal, B purple ball, R red ball, X blue box, >v<^ the agent."""

    def __init__(self, layout: list[str], mission: str = "get to the green goal square"):
        self.layout = layout
        self._mission = mission
        super().__init__(
            mission_space=MissionSpace(mission_func=lambda: mission),
            width=len(layout[0]),
            height=len(layout),
            max_steps=300,
        )

    def _gen_grid(self, width, height):
        self.grid = Grid(width, height)
        for y, row in enumerate(self.layout):
            for x, ch in enumerate(row):
                make = {
                    "#": Wall,
                    "K": lambda: Key("yellow"),
                    "L": lambda: Door("yellow", is_locked=True),
                    "D": lambda: Door("red"),
                    "E": lambda: Door("blue"),
                    "G": Goal,
                    "B": lambda: Ball("purple"),
                    "R": lambda: Ball("red"),
                    "X": lambda: Box("blue"),
                }.get(ch)
                if make is not None:
                    obj = make()
                    self.put_obj(obj, x, y)
                    if ch == "B":
                        self.obj = obj
                if ch in ">v<^":
                    self.agent_pos, self.agent_dir = (x, y), ">v<^".index(ch)
        self.mission = self._mission

    def room_from_pos(self, x, y):
        class _Room:
            @staticmethod
            def pos_inside(x, y):
                return True

        return _Room()


def _plan(layout, mission="get to the green goal square", instrs=None):
    env = HandGrid(layout, mission)
    env.reset(seed=0)
    if instrs is not None:
        env.instrs = instrs
        instrs.reset_verifier(env)
    return env, plan_subgoals(env)


def _follow_all(env, subgoals, limit=300):
    """Carry out the subgoals in order with the follower; return the verbs reached in order."""
    reached = []
    i = 0
    terminated = False
    for _ in range(limit):
        while i < len(subgoals) and subgoals[i].reached(env):
            reached.append(subgoals[i].verb)
            i += 1
        if i == len(subgoals) or terminated:
            break
        _, _, terminated, _, _ = env.step(follow_action(env, subgoals[i]))
    return reached, terminated


DOORKEY = [
    "#######",
    "#K.#..#",
    "#..L..#",
    "#>.#.G#",
    "#######",
]


def test_planner_on_a_hand_built_doorkey():
    env, sgs = _plan(DOORKEY, "use the key to open the door and then get to the goal")
    assert [(s.verb, s.obj.type, s.obj.color) for s in sgs] == [
        ("goto", "key", "yellow"),
        ("pickup", "key", "yellow"),
        ("goto", "door", "yellow"),
        ("open", "door", "yellow"),
        ("reach", "goal", "green"),
    ]
    assert [s.describe(env) for s in sgs] == [
        "go to the yellow key",
        "pick up the yellow key",
        "go to the yellow door",
        "open the yellow door",
        "step onto the green goal",
    ]
    # The agent is at (1, 3) facing east: the key at (1, 1) is 2 cells to its left.
    assert sgs[0].describe(env, "position") == "cell 2 left"
    assert sgs[1].describe(env, "object") == "the yellow key [pick up]"
    assert sgs[4].describe(env, "position") == "cell 4 ahead [step onto]"
    reached, terminated = _follow_all(env, sgs)
    assert reached == ["goto", "pickup", "goto", "open", "reach"] and terminated
    assert tuple(env.agent_pos) == (5, 3)  # on the goal: the mission is complete


def test_planner_opens_each_door_of_a_chain():
    env, sgs = _plan(
        [
            "#########",
            "#..#..#.#",
            "#>.D..E.#",
            "#..#..#G#",
            "#########",
        ]
    )
    assert [(s.verb, s.obj.color) for s in sgs] == [
        ("goto", "red"),
        ("open", "red"),
        ("goto", "blue"),
        ("open", "blue"),
        ("reach", "green"),
    ]
    _, terminated = _follow_all(env, sgs)
    assert terminated and env.grid.get(*env.agent_pos).type == "goal"


def test_planner_fetches_a_key_behind_a_door_and_drops_it_before_the_ball():
    env, sgs = _plan(
        [
            "##########",
            "#..#>.#..#",
            "#K.D..L.B#",
            "#..#..#..#",
            "##########",
        ],
        "pick up the purple ball",
    )
    assert [(s.verb, s.obj.type, s.obj.color) for s in sgs] == [
        ("goto", "door", "red"),
        ("open", "door", "red"),
        ("goto", "key", "yellow"),
        ("pickup", "key", "yellow"),
        ("goto", "door", "yellow"),
        ("open", "door", "yellow"),
        ("drop", "key", "yellow"),
        ("goto", "ball", "purple"),
        ("pickup", "ball", "purple"),
    ]
    reached, _ = _follow_all(env, sgs)
    assert len(reached) == len(sgs)
    assert env.carrying is not None and env.carrying.type == "ball"


def test_planner_puts_one_object_next_to_another():
    instrs = PutNextInstr(ObjDesc("ball", "red"), ObjDesc("box", "blue"))
    env, sgs = _plan(
        [
            "#######",
            "#>.R..#",
            "#.....#",
            "#...X.#",
            "#######",
        ],
        "put the red ball next to the blue box",
        instrs,
    )
    assert [s.verb for s in sgs] == ["goto", "pickup", "goto_next", "put_next"]
    assert sgs[3].describe(env) == "put the red ball next to the blue box"
    reached, _ = _follow_all(env, sgs)
    assert reached == [s.verb for s in sgs]
    assert instrs.objs_next()  # minigrid's own verifier agrees the mission is done


def test_open_doors_need_no_subgoal_and_subgoals_reached_early_pay_at_once():
    env, sgs = _plan(
        [
            "#######",
            "#>.D.G#",
            "#######",
        ]
    )
    assert [s.verb for s in sgs] == ["goto", "open", "reach"]
    env.grid.get(3, 1).is_open = True  # opened behind the planner's back
    assert sgs[1].reached(env) and not sgs[0].reached(env)
    env2, sgs2 = _plan(["#######", "#>.D.G#", "#######"])
    env2.grid.get(3, 1).is_open = True
    assert [s.verb for s in plan_subgoals(env2)] == ["reach"]


@pytest.mark.parametrize("family", FAMILIES)
def test_following_the_planner_completes_sampled_missions(family):
    """On sampled levels: the follower that only pursues the current planner subgoal
    completes the mission, and every subgoal pays exactly once, in order."""
    env = agentgym.make("minigrid/levels-v0", max_turns=100_000, subgoal_reward=0.25)
    for seed in range(10):
        size, count = 5 + seed % 4, 1 + seed % 3
        env.reset(options={"task": spec(family, size, count, show=True, seed=seed)})
        n = len(env.subgoals)
        assert n >= 1
        unpaid = env.subgoal_index  # subgoals that already held at the start are skipped
        paid = 0.0
        while True:
            sg = env.current_subgoal
            action = ACTION_WORDS[follow_action(env.minigrid, sg)] if sg is not None else "done"
            _, reward, terminated, truncated, info = env.step(action)
            paid += info["reward_parts"]["subgoal"]
            if terminated or truncated:
                break
        assert info["success"], (family, seed)
        assert env.subgoal_index == n and paid == pytest.approx(0.25 * (n - unpaid))
        assert info["reward_parts"]["success"] == 1.0


# ----- what the agent is shown, rewards, limits ------------------------------------------
def test_subgoals_shown_or_hidden_and_their_kinds():
    s_show, s_hide = spec("doorkey", 6, 1, show=True, seed=2), spec("doorkey", 6, 1, show=False, seed=2)
    env = agentgym.make("minigrid/levels-v0")
    shown = env.reset(options={"task": s_show})[0][1]["content"]
    assert "Subgoal 1 of 5: go to the yellow key." in shown
    assert "Subgoal" not in env.reset(options={"task": s_hide})[0][1]["content"]
    forced = agentgym.make("minigrid/levels-v0", show_subgoals=False)
    assert "Subgoal" not in forced.reset(options={"task": s_show})[0][1]["content"]
    obj = agentgym.make("minigrid/levels-v0", subgoal_kind="object")
    assert "Subgoal 1 of 5: the yellow key." in obj.reset(options={"task": s_show})[0][1]["content"]
    pos = agentgym.make("minigrid/levels-v0", subgoal_kind="position")
    assert "Subgoal 1 of 5: cell " in pos.reset(options={"task": s_show})[0][1]["content"]
    with pytest.raises(ValueError):
        agentgym.make("minigrid/levels-v0", subgoal_kind="vibes")


def test_reward_parts_and_kwargs():
    env = agentgym.make("minigrid/doorkey-v0", max_turns=1000, subgoal_reward=0.5, success_reward=2.0)
    env.reset(options={"task": spec("doorkey", 5, 1, show=True, seed=0)})
    total = 0.0
    while True:
        _, reward, terminated, truncated, info = env.step(env.oracle())
        assert reward == pytest.approx(sum(info["reward_parts"].values()))
        total += reward
        if terminated or truncated:
            break
    assert info["success"] and info["reward_parts"]["success"] == 2.0
    assert total == pytest.approx(2.0 + 0.5 * len(env.subgoals))  # none held at the start here
    off = agentgym.make("minigrid/doorkey-v0", max_turns=1000, subgoal_reward=0.0)
    off.reset(options={"task": spec("doorkey", 5, 1, seed=0)})
    while True:
        _, reward, terminated, truncated, info = off.step(off.oracle())
        assert info["reward_parts"]["subgoal"] == 0.0
        if terminated or truncated:
            break
    assert reward == 1.0


def test_invalid_words_give_an_error_the_penalty_and_do_nothing():
    env = agentgym.make("minigrid/levels-v0", invalid_penalty=-0.25)
    env.reset(options={"task": spec("goto", 6, 1, seed=5)})
    before = (tuple(env.minigrid.agent_pos), env.minigrid.agent_dir, env.minigrid.step_count)
    for reply in ("fly to the moon", "", "turn left, jump", "go to the red ball", "???"):
        obs, reward, terminated, truncated, info = env.step(reply)
        assert not terminated and reward == -0.25 and info["reward_parts"]["invalid"] == -0.25
        assert obs[0]["content"].startswith("Error:") and "turn left, turn right, go forward" in obs[0]["content"]
        assert "Nothing was done" in obs[0]["content"] and info["error"]
    assert (tuple(env.minigrid.agent_pos), env.minigrid.agent_dir, env.minigrid.step_count) == before
    obs, reward, *_, info = env.step(None)  # not even text: the base class answers
    assert info["error"] and reward == -0.25


def test_lenient_action_reader_is_an_env_option():
    strict = agentgym.make("minigrid/levels-v0")
    lenient = agentgym.make("minigrid/levels-v0", action_reader="lenient")
    reply = "I see the wall ahead, so I will turn left and then turn left again."
    for env in (strict, lenient):
        env.reset(options={"task": spec("empty", 8, 1, seed=1)})
    _, reward, *_, info = strict.step(reply)
    assert info["error"] and strict.minigrid.step_count == 0 and reward == pytest.approx(-0.1)
    obs, reward, *_, info = lenient.step(reply)
    assert info["error"] is None and lenient.minigrid.step_count == 2 and reward == 0.0
    assert obs[0]["content"].count("You turned left.") == 2
    _, reward, *_, info = lenient.step("The room is empty.")  # still nothing to read: penalised
    assert info["error"] and lenient.minigrid.step_count == 2 and reward == pytest.approx(-0.1)
    with pytest.raises(ValueError, match="action_reader"):
        agentgym.make("minigrid/levels-v0", action_reader="loose")


def test_several_actions_per_turn_with_a_cap():
    env = agentgym.make("minigrid/levels-v0", max_actions=3)
    env.reset(options={"task": spec("empty", 8, 1, seed=1)})
    obs, reward, terminated, truncated, info = env.step("turn left, turn left, turn left, turn left, turn left")
    assert env.minigrid.step_count == 3 and reward == pytest.approx(-0.1)
    assert "only the first 3 were done" in info["error"]
    assert obs[0]["content"].count("You turned left.") == 3 and "Note:" in obs[0]["content"]
    obs, reward, terminated, truncated, info = env.step("turn right\nturn right")
    assert env.minigrid.step_count == 5 and info["error"] is None and reward == 0.0
    assert "You turned right. You turned right." in obs[0]["content"]


def test_a_turn_stops_when_the_mission_ends():
    env = agentgym.make("minigrid/empty-v0", max_turns=1000, max_actions=8)
    env.reset(options={"task": spec("empty", 5, 1, seed=0)})
    while True:
        action = env.oracle()
        if action == "go forward":
            ahead = env.minigrid.grid.get(*env.minigrid.front_pos)
            if ahead is not None and ahead.type == "goal":
                break
        env.step(action)
    steps = env.minigrid.step_count
    obs, reward, terminated, truncated, info = env.step("go forward, turn left, turn left, turn left")
    assert terminated and info["success"] and obs == []
    assert env.minigrid.step_count == steps + 1


def test_turn_limit_and_minigrid_step_budget():
    env = agentgym.make("minigrid/levels-v0", max_turns=2)
    env.reset(options={"task": spec("empty", 6, 1, seed=0)})
    assert env.step("turn left")[3] is False
    _, _, terminated, truncated, info = env.step("turn left")
    assert truncated and not terminated and not info["success"]
    env = agentgym.make("minigrid/levels-v0", max_turns=10_000, max_actions=50)
    env.reset(options={"task": spec("empty", 5, 1, seed=0)})  # minigrid allows 4 * 5**2 = 100 steps
    for _ in range(100):
        _, _, terminated, truncated, info = env.step(", ".join(["turn left"] * 50))
        if terminated or truncated:
            break
    # the simulator's step budget is a truncation (Gymnasium's sense), not a task outcome
    assert truncated and not terminated and not info["success"] and env.minigrid.step_count == 100


def test_held_out_region_is_never_sampled_for_training(rng):
    env = agentgym.make("minigrid/levels-v0")
    for _ in range(5000):
        t = env.sample_train_task(rng)
        assert not (t.params["family"] == "doorkey" and t.params["size"] == 7)
        assert t.seed < 1_000_000_000
    held = env.held_out_tasks(64, seed=0)
    assert any(t.params["family"] == "doorkey" and t.params["size"] == 7 for t in held)
    assert all(t.seed >= 1_000_000_000 for t in held)
    dk = agentgym.make("minigrid/doorkey-v0")
    assert all(dk.sample_train_task(rng).params["size"] != 7 for _ in range(500))
    assert agentgym.make("minigrid/goto-v0").held_out.region is None


def test_bad_kwargs_are_errors():
    for kwargs in ({"max_turns": 0}, {"max_actions": 0}, {"max_actions": 2.5}, {"show_subgoals": "yes"}):
        with pytest.raises(ValueError):
            agentgym.make("minigrid/levels-v0", **kwargs)


def test_make_bot_reads_minigrid_missions():
    for family in ("empty", "doorkey", "multiroom", "keycorridor"):
        env = build(family, 6, 2)
        reset_level(env, 0)
        bot = make_bot(env)
        assert bot.stack  # the mission became a plan


# ----- LLM-proposed subgoals, checked against the planner ---------------------------------
def test_proposed_subgoals_are_checked_against_the_planner(chat):
    from agentgym_minigrid.propose import apply_proposal, check_proposal, propose_subgoals

    from agentgym.policies import ScriptedPolicy

    env = agentgym.make("minigrid/levels-v0", subgoal_reward=0.5)
    env.reset(options={"task": spec("doorkey", 6, 1, show=True, seed=2)})
    plan_text = "\n".join(f"{i + 1}. {sg.describe(env.minigrid)}" for i, sg in enumerate(env.subgoals))
    seen_prompts = []

    def respond(conversation):
        seen_prompts.append(conversation)
        return plan_text

    proposal = propose_subgoals(ScriptedPolicy(chat, respond), env)
    assert "use the key to open the door" in seen_prompts[0]
    assert proposal.exact and proposal.precision == 1.0 and proposal.recall == 1.0

    partial = check_proposal(
        "First pick up the yellow key.\nThen fly.\nstep onto the green goal\nopen the red door", env.subgoals
    )
    assert partial.proposed == [("pickup", "yellow", "key"), ("reach", "green", "goal"), ("open", "red", "door")]
    assert partial.confirmed == [1, 4] and partial.precision == pytest.approx(2 / 3)
    assert partial.recall == pytest.approx(2 / 5) and not partial.exact
    kept = apply_proposal(env, partial)
    assert [s.verb for s in kept] == ["pickup", "reach"]
    assert "Subgoal 1 of 2: pick up the yellow key." in env.subgoal_line()


def test_subgoals_that_hold_at_the_start_are_skipped_unpaid():
    env = agentgym.make("minigrid/doorkey-v0", max_turns=100)
    for seed in range(200):
        msgs, _ = env.reset(options={"task": spec("doorkey", 6, 1, show=True, seed=seed)})
        if env.subgoal_index > 0:
            break
    else:
        pytest.skip("no start facing the key in 200 seeds")
    assert env.subgoals[0].verb == "goto" and env.subgoals[0].reached(env.minigrid)
    assert "Subgoal 2 of 5: pick up the yellow key." in msgs[1]["content"]
    _, reward, *_ = env.step("pick up")
    assert reward == pytest.approx(0.1)


# ----- run configs ------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["configs/minigrid.yaml", "configs/minigrid-nosubgoal.yaml"])
def test_run_configs_are_valid(path):
    from pathlib import Path

    from agentgym.config import load_config
    from agentgym.curriculum import make_teacher
    from agentgym.curriculum.base import TrainingTasks

    cfg = load_config(Path(__file__).resolve().parent.parent / path)
    cls = agentgym.spec(cfg.env.id).load_class()
    tasks = TrainingTasks(cls.param_space, cls.held_out, cfg.env.params)
    teacher = make_teacher(cfg.teacher.name, tasks, seed=0, **cfg.teacher.options)
    env = agentgym.make(cfg.env.id, **cfg.env.kwargs)
    for task in teacher.sample(8) + tasks.held_out_specs(8, seed=0):
        env.reset(options={"task": task})
    assert cfg.env.kwargs["subgoal_reward"] == (0.0 if "nosubgoal" in path else 0.2)


def test_rollout_runner_plays_minigrid_episodes(chat):
    from agentgym.policies import SamplingParams, ScriptedPolicy
    from agentgym.rollout import RolloutRunner

    replies = iter(["turn left, go forward", "fly", "go forward x2, turn right"] * 20)
    policy = ScriptedPolicy(chat, lambda conversation: next(replies))
    runner = RolloutRunner(
        policy, SamplingParams(max_new_tokens=24), max_episode_tokens=2048, env_kwargs={"max_turns": 3}
    )
    tasks = [spec("goto", 6, 1, show=True, seed=s) for s in range(2)]
    episodes = runner.run("minigrid/levels-v0", tasks, group_size=2)
    assert len(episodes) == 4
    for ep in episodes:
        assert ep.end_reason in ("terminated", "truncated") and len(ep.turn_rewards) >= 1
        assert len(ep.token_ids) == len(ep.loss_mask) == len(ep.logprobs)
        assert sum(ep.turn_rewards) == pytest.approx(sum(ep.reward_parts.values()))
        assert ep.messages[1]["content"].startswith("Mission: go to")


def test_package_readme_example_runs():
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "envs" / "minigrid" / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", readme, re.DOTALL).group(1)
    exec(compile(block.replace("print(", "(lambda *a: None)("), "README", "exec"), {})
