"""Web envs in a real Chromium: Gymnasium conformance, determinism, the text view and the
actions, scripted oracles on MiniWoB++ and the generated sites, rollouts, screenshots.

Skipped without Playwright or a Chromium (see agentgym_web.browser.find_browser)."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("miniwob")

from agentgym_web.batch import play  # noqa: E402
from agentgym_web.miniwob import TASKS  # noqa: E402
from agentgym_web.page import parse_view  # noqa: E402
from agentgym_web.sites import LEVELS  # noqa: E402

import agentgym  # noqa: E402
from agentgym import TaskSpec  # noqa: E402

pytestmark = pytest.mark.requires_browser

FORM_HTML = """<html><head><title>Test form</title></head><body>
<h1>Order</h1>
<label for="n">Name</label><input id="n" value="">
<label for="c">Colour</label><select id="c"><option>Red</option><option>Blue</option></select>
<label><input type="checkbox" id="g">Gift wrap</label>
<input type="radio" name="s" id="s1"><label for="s1">Small</label>
<textarea id="t">x</textarea>
<button id="b" onclick="document.getElementById('out').textContent = 'sent ' + document.getElementById('n').value">Send</button>
<button disabled>Never</button>
<div id="out"></div>
<div style="display:none">Hidden text</div>
<a href="/two">Second page</a>
<div style="height:1500px"></div><p>Far below</p>
</body></html>"""
TWO_HTML = "<html><head><title>Two</title></head><body><p>Page two</p><a href='/'>Home</a></body></html>"


@pytest.fixture(scope="module")
def form_env():
    env = agentgym.make(
        "web/page-v0",
        html={"/": FORM_HTML, "/two": TWO_HTML},
        goal="Send the form.",
        max_turns=50,
        success_js="document.getElementById('out').textContent === 'sent Ana'",
    )
    yield env
    env.close()


def node(env, kind, name):
    for n in parse_view(env.last_view):
        if n.kind == kind and n.name == name:
            return n
    raise AssertionError(f"no {kind} {name!r} in\n{env.last_view}")


@pytest.mark.parametrize(
    "env_id", ["web/page-v0", "web/miniwob-v0", "web/form-v0", "web/shop-v0", "web/wiki-v0", "web/sites-v0"]
)
def test_opening_and_an_unusable_action(env_id):
    # (check_env: tests/test_conformance.py)
    env = agentgym.make(env_id)
    obs, info = env.reset(seed=1)
    assert obs[0]["role"] == "system" and "click(id)" in obs[0]["content"]
    assert obs[1]["content"].startswith("Goal: ") and "\nPage:\n" in obs[1]["content"]
    obs, reward, term, trunc, info = env.step("I do not know")
    assert info["error"].startswith("no action found") and reward == pytest.approx(-0.05)
    assert set(info["reward_parts"]) == {"task", "partial", "invalid", "step"}
    env.close()


def test_text_view_and_actions(form_env):
    env = form_env
    obs, _ = env.reset(seed=0)
    text = obs[1]["content"]
    assert "URL: http://site.localhost/" in text and "Title: Test form" in text
    assert 'textbox "Name" value=""' in text and 'select "Colour" value="Red" options=["Red","Blue"]' in text
    assert 'checkbox "Gift wrap" unchecked' in text and 'radio "Small" unchecked' in text
    assert 'textarea "" value="x"' in text and 'button "Never" disabled' in text
    assert "Hidden text" not in text and "Far below" in text and "more below" in text
    name, colour, gift = node(env, "textbox", "Name"), node(env, "select", "Colour"), node(env, "checkbox", "Gift wrap")
    # Ids stay with their elements from step to step.
    env.step(f'type({name.id}, "Ana")')
    assert node(env, "textbox", "Name").id == name.id and node(env, "textbox", "Name").value == "Ana"
    env.step(f'select({colour.id}, "blue")')  # options match ignoring case
    assert node(env, "select", "Colour").value == "Blue"
    env.step(f"click({gift.id})")
    assert node(env, "checkbox", "Gift wrap").checked
    env.step(f"click({node(env, 'radio', 'Small').id})")
    assert node(env, "radio", "Small").checked
    _, _, _, _, info = env.step(f"click({node(env, 'button', 'Never').id})")
    assert "disabled" in info["error"]
    _, _, _, _, info = env.step(f'type({gift.id}, "x")')
    assert "not a text field" in info["error"]
    _, _, _, _, info = env.step(f'select({colour.id}, "Green")')
    assert 'no option "Green"' in info["error"] and '"Blue"' in info["error"]
    _, _, _, _, info = env.step("click(999)")
    assert info["error"] == "there is no element [999] on the page now"
    _, _, _, _, info = env.step('press("Tab")')
    assert info["error"] is None
    _, _, _, _, info = env.step('scroll("down")')
    assert info["error"] is None and "scrolled" in env.last_view
    msgs, reward, term, _, info = env.step(f"click({node(env, 'button', 'Send').id})")
    assert term and info["success"] and reward == 1.0


def test_navigation_and_go_back(form_env):
    env = form_env
    env.reset(seed=0)
    _, _, _, _, info = env.step("go_back()")
    assert info["error"] == "there is no previous page to go back to"
    first_ids = {n.id for n in parse_view(env.last_view)}
    env.step(f"click({node(env, 'link', 'Second page').id})")
    assert env.last_snapshot["url"].endswith("/two") and "Page two" in env.last_view
    # After a navigation the numbering goes on: an old id names nothing on the new page.
    assert not first_ids & {n.id for n in parse_view(env.last_view)}
    env.step("go_back()")
    assert 'textbox "Name"' in env.last_view


def test_invalid_input_never_crashes(form_env):
    env = form_env
    env.reset(seed=0)
    for bad in [None, b"click(1)", 12, "x" * 10_000, "\x00\ud800", "click(" * 50, "type(1, " + '"' * 30, ""]:
        obs, reward, term, trunc, info = env.step(bad)
        assert info["error"] and not term
        # Refused by TextEnv (not text, too long) or by the parser: the same parts either way.
        assert set(info["reward_parts"]) == {"task", "partial", "invalid", "step"}
        assert info["reward_parts"]["invalid"] == -0.05 and reward == pytest.approx(sum(info["reward_parts"].values()))
    assert env.step("click(2)")[4]["turn"] == 9


def test_miniwob_same_seed_same_instance():
    a, b = agentgym.make("web/miniwob-v0"), agentgym.make("web/miniwob-v0")
    for task in ("click-checkboxes", "social-media", "email-inbox"):
        spec = TaskSpec({"task": task}, 1234)
        oa, _ = a.reset(options={"task": spec})
        b.reset(options={"task": TaskSpec({"task": task}, 99)})  # another instance in between
        ob, _ = b.reset(options={"task": spec})
        assert oa == ob, task
        others = {b.reset(options={"task": TaskSpec({"task": task}, s)})[0][1]["content"] for s in range(2)}
        assert len(others | {oa[1]["content"]}) == 3, task  # other seeds, other instances
    a.close(), b.close()


def test_sites_same_spec_same_site():
    a, b = agentgym.make("web/sites-v0"), agentgym.make("web/sites-v0")
    rng = np.random.default_rng(5)
    for _ in range(3):
        spec = a.sample_train_task(rng)
        assert a.reset(options={"task": spec})[0] == b.reset(options={"task": spec})[0]
        for _ in range(3):
            action = a.oracle()
            ra, rb = a.step(action), b.step(action)
            assert ra[:4] == rb[:4]
            if ra[2] or ra[3]:
                break
    a.close(), b.close()


def test_miniwob_oracle_solves_every_supported_task():
    envs = [agentgym.make("web/miniwob-v0") for _ in range(8)]
    tasks = [TaskSpec({"task": t}, 7) for t in TASKS]
    stats = play(envs, tasks)
    failed = [r.task.params["task"] for r in stats.results if not r.success]
    # The issue asks for 95% over the supported tasks; one episode each is the quick check
    # (README has the full measurement).
    assert len(failed) <= len(TASKS) * 0.05, failed
    for e in envs:
        e.close()


def _site_tasks() -> list[tuple[str, TaskSpec]]:
    out = []
    for kind in LEVELS:
        for level in (1, 2, 3):
            for d in (0, 6):
                out.append(("web/sites-v0", TaskSpec({"kind": kind, "level": level, "distractors": d}, level * 10 + d)))
    rng = np.random.default_rng(0)
    for env_id in ("web/form-v0", "web/shop-v0", "web/wiki-v0"):
        cls = agentgym.spec(env_id).load_class()
        out += [(env_id, cls.sample_train_task(rng))]
        out += [(env_id, t) for t in cls.held_out_tasks(1, seed=1)]  # inside the held-out region
    return out


def test_generated_site_oracle_solves_all():
    by_id: dict[str, list[TaskSpec]] = {}
    for env_id, task in _site_tasks():
        by_id.setdefault(env_id, []).append(task)
    for env_id, tasks in by_id.items():
        envs = [agentgym.make(env_id) for _ in range(6)]
        stats = play(envs, tasks)
        bad = [(r.task, r.error, r.errors) for r in stats.results if not r.success]
        assert not bad, (env_id, bad)
        for e in envs:
            e.close()


def test_partial_credit_and_wrong_answers():
    env = agentgym.make("web/form-v0", partial_credit=0.4)
    env.reset(options={"task": TaskSpec({"n_fields": 2, "distractors": 0, "pages": 1}, 3)})
    submit = node(env, "button", "Submit")
    _, reward, term, _, info = env.step(f"click({submit.id})")
    assert term and not info["success"] and info["reward_parts"]["task"] == 0.0
    assert 0.0 <= info["reward_parts"]["partial"] < 0.4
    wiki = agentgym.make("web/wiki-v0")
    wiki.reset(options={"task": TaskSpec({"depth": 1, "branching": 2, "distractors": 0}, 0)})
    _, reward, term, _, info = wiki.step('answer("certainly not this")')
    assert term and not info["success"] and reward == 0.0
    shop = agentgym.make("web/shop-v0")
    shop.reset(options={"task": TaskSpec({"pages": 1, "distractors": 0, "options": 0, "criterion": "name"}, 0)})
    _, _, term, _, info = shop.step('answer("done")')
    assert not term and "takes no answer" in info["error"]
    for e in (env, wiki, shop):
        e.close()


def test_rollout_runner_plays_web_envs(chat):
    from agentgym.policies import SamplingParams
    from agentgym.policies.scripted import ScriptedPolicy
    from agentgym.rollout import RolloutRunner

    # The demo page: [1] is the text, [2] the button; a first reply without an action.
    def respond(conversation: str) -> str:
        return "click(2)" if "Nothing was done" in conversation else "Let me look first."

    runner = RolloutRunner(ScriptedPolicy(chat, respond), SamplingParams(max_new_tokens=16), max_episode_tokens=2048)
    episodes = runner.run("web/page-v0", [TaskSpec({}, 1), TaskSpec({}, 2)], group_size=2)
    assert len(episodes) == 4 and runner.last_stats.dropped_env_errors == 0
    for ep in episodes:
        assert ep.success and ep.reward == pytest.approx(1.0 - 0.05)
        assert ep.loss_mask.count(1) > 0 and len(ep.loss_mask) == len(ep.token_ids)


def test_the_runner_pool_steps_web_envs_side_by_side_with_the_same_results():
    """Web envs declare concurrent_steps: the rollout pool steps a batch of them from
    threads, and the oracle episodes come out exactly as when stepped one by one."""
    from agentgym.rollout.pool import InProcessPool

    cls = agentgym.spec("web/sites-v0").load_class()
    rng = np.random.default_rng(3)
    tasks = [cls.sample_train_task(rng) for _ in range(4)]

    def play_all(threads):
        pool = InProcessPool(max_threads=threads)
        opened = pool.reset("web/sites-v0", tasks, {"max_turns": 30})
        live = [r.handle for r in opened]
        log = {r.handle: [r.messages[-1]["content"]] for r in opened}
        order = {r.handle: i for i, r in enumerate(opened)}
        rewards = {}
        while live:
            outs = pool.step(live, pool.oracle(live))
            still = []
            for h, out in zip(live, outs):
                assert out.error is None, out.error
                log[h].append(out.messages[-1]["content"] if out.messages else "")
                if out.terminated or out.truncated:
                    rewards[h] = (out.reward, out.info["success"])
                else:
                    still.append(h)
            pool.release([h for h in live if h not in still])
            live = still
        pool.close()
        return [(log[h], rewards[h]) for h in sorted(log, key=order.get)]

    together, alone = play_all(16), play_all(1)
    assert together == alone
    assert all(success for _, (_, success) in together)


def test_screenshot_and_render():
    env = agentgym.make("web/page-v0", render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (600, 800, 3) and frame.dtype == np.uint8 and frame.std() > 0
    assert env.screenshot()[:8] == b"\x89PNG\r\n\x1a\n"
    env.close()


def test_miniwob_pages_open_when_the_package_is_private(tmp_path, monkeypatch):
    """CI's Python lives under /root (mode 700) and the browser runs as nobody: the pages
    are then served from a world-readable copy, not from a folder nobody cannot enter."""
    import shutil

    from agentgym_web import miniwob

    private = tmp_path / "private"
    shutil.copytree(os.path.dirname(miniwob.miniwob_dir()), private / "pkg" / "html")
    private.chmod(0o700)
    monkeypatch.setattr(miniwob, "miniwob_dir", lambda: str(private / "pkg" / "html" / "miniwob"))
    miniwob.pages_dir.cache_clear()
    try:
        assert not miniwob.readable_by_anyone(str(private / "pkg" / "html"))
        served = miniwob.pages_dir()
        assert not served.startswith(str(private)) and miniwob.readable_by_anyone(os.path.dirname(served))
        env = agentgym.make("web/miniwob-v0")
        obs, _ = env.reset(options={"task": TaskSpec({"task": "click-button"}, 3)})
        assert "button" in obs[1]["content"].lower() and env.goal
        env.close()
    finally:
        miniwob.pages_dir.cache_clear()
