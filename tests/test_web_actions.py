"""Web envs without a browser: action parsing, the text view's parser, the network rule,
browser discovery messages, parameter spaces and registration."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("agentgym_web")

from agentgym_web import browser  # noqa: E402
from agentgym_web.actions import Action, ActionError, format_action, parse_action  # noqa: E402
from agentgym_web.page import parse_view  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import agentgym  # noqa: E402

WEB_IDS = ["web/page-v0", "web/miniwob-v0", "web/form-v0", "web/shop-v0", "web/wiki-v0", "web/sites-v0"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("click(12)", Action("click", (12,))),
        ("I will Click([12]) now.", Action("click", (12,))),
        ("click(id=12)", Action("click", (12,))),
        ("click('#12')", Action("click", (12,))),
        ('type(7, "Ana Lima")', Action("type", (7, "Ana Lima"))),
        ("type(7, Ana, Lima)", Action("type", (7, "Ana, Lima"))),
        ("type(id=7, text='it\\'s')", Action("type", (7, "it's"))),
        ('type(3, "")', Action("type", (3, ""))),
        ("select(4, 'Peru')", Action("select", (4, "Peru"))),
        ('select(4, "a", "b")', Action("select", (4, "a", "b"))),
        ("press(enter)", Action("press", ("Enter",))),
        ('press("ctrl+a")', Action("press", ("Control+a",))),
        ("press('x')", Action("press", ("x",))),
        ("scroll(down)", Action("scroll", ("down",))),
        ('scroll(9, "up")', Action("scroll", (9, "up"))),
        ("hover(3)", Action("hover", (3,))),
        ("go_back()", Action("go_back", ())),
        ("back", Action("go_back", ())),
        ("wait", Action("wait", ())),
        ('answer("1,204")', Action("answer", ("1,204",))),
        ("click [12]", Action("click", (12,))),
        ("type [7] [hello world]", Action("type", (7, "hello world"))),
        ("stop [42]", Action("answer", ("42",))),
        ("Thought: click(3) would be wrong.\nAction: click(5)", Action("click", (5,))),
        ("Let me see.\n```\nclick(8)\n```", Action("click", (8,))),
        ("click(12", Action("click", (12,))),
        ("select(nope) then click(4)", Action("click", (4,))),  # the first usable call
    ],
)
def test_parse_action(text, expected):
    assert parse_action(text) == expected


def test_pick_last():
    assert parse_action("click(1) then click(2)", pick="last") == Action("click", (2,))
    assert parse_action("click(1) then click(2)") == Action("click", (1,))


@pytest.mark.parametrize(
    "text, words",
    [
        ("", "no action found (an empty reply)"),
        ("I am not sure what to do.", "Reply with one action"),
        ("click(abc)", "needs an element id"),
        ("click(1, 2)", "takes one element id"),
        ("type(5)", "takes an element id and the text"),
        ('press("Foo")', "unknown key"),
        ("scroll(sideways)", "scroll direction"),
        ("go_back(3)", "takes no arguments"),
        ("answer()", "needs the answer text"),
        ("select(3)", "takes a drop-down id and an option"),
        ("click(0)", "needs an element id"),
    ],
)
def test_parse_errors_explain(text, words):
    with pytest.raises(ActionError) as err:
        parse_action(text)
    assert words in str(err.value)


def test_format_round_trip():
    for a in [
        Action("click", (3,)),
        Action("type", (4, 'say "hi", then \\ bye')),
        Action("select", (2, "x", "y")),
        Action("press", ("Enter",)),
        Action("scroll", (5, "left")),
        Action("answer", ("12,408",)),
        Action("go_back", ()),
    ]:
        assert parse_action(format_action(a.name, *a.args)) == a
        assert parse_action(str(a)) == a


@settings(max_examples=2000, deadline=None)
@given(st.text(max_size=300))
def test_parser_never_raises_anything_else(text):
    try:
        action = parse_action(text)
    except ActionError as exc:
        assert str(exc)
    else:
        assert action.name in ("click", "type", "select", "press", "scroll", "hover", "go_back", "wait", "answer")


def test_parse_view_round_trip():
    view = "\n".join(
        [
            '[1] h1 "Shop"',
            ' [2] textbox "Name" type=email value="a \\"b\\"" placeholder="you@x" focused',
            ' [3] select "Size" value="M" options=["S","M","L"] more_options=3 disabled',
            '  [4] checkbox "Gift" checked',
            '[5] span "" class="icon star"',
            "Error: this line is not an element",
        ]
    )
    nodes = parse_view(view)
    assert [n.id for n in nodes] == [1, 2, 3, 4, 5]
    assert nodes[1].value == 'a "b"' and nodes[1].attrs["placeholder"] == "you@x" and nodes[1].attrs["focused"] is True
    assert nodes[2].attrs["options"] == ["S", "M", "L"] and nodes[2].attrs["more_options"] == "3"
    assert nodes[2].attrs["disabled"] is True and nodes[3].checked is True and nodes[3].depth == 2
    assert nodes[4].attrs["class"] == "icon star" and nodes[4].name == ""


@pytest.mark.parametrize(
    "url, kind",
    [
        ("http://127.0.0.1:8000/a", "local"),
        ("http://localhost/x", "local"),
        ("https://[::1]:3/", "local"),
        ("ws://127.0.0.1:9/", "local"),
        ("http://shop.localhost/", "local"),
        ("http://127.0.0.2/", "blocked"),  # no 127.* wildcard: only 127.0.0.1 resolves
        ("data:text/html,hi", "local"),
        ("http://example.com/", "blocked"),
        ("https://93.184.216.34/", "blocked"),
        ("http://10.0.0.5/", "blocked"),
        ("http://192.168.1.1/", "blocked"),
        ("wss://example.com/s", "blocked"),
        ("http://localhost.example.com/", "blocked"),
        ("http://127.0.0.1.nip.io/", "blocked"),
        ("http://0.0.0.0:8000/", "blocked"),
        ("http://[::]/", "blocked"),
        ("http://[::ffff:127.0.0.1]/", "blocked"),
        ("http://localhost:80@example.com/", "blocked"),
        ("http://127.0.0.1@example.com/", "blocked"),
        ("ftp://example.com/f", "blocked"),
        ("chrome://settings", "blocked"),
        ("http://[bad", "blocked"),
        # Files: only under the context's roots (none here).
        ("file:///tmp/x.html", "blocked"),
        ("file:///etc/passwd", "blocked"),
    ],
)
def test_network_rule(url, kind):
    assert browser.classify_url(url) == kind


def test_files_are_local_only_under_their_roots(tmp_path):
    root = str(tmp_path / "site")
    inside = (tmp_path / "site" / "a b.html").as_uri()
    assert browser.classify_url(inside, file_roots=(root,)) == "local"
    assert browser.classify_url(f"file://{root}/sub/../x.html", file_roots=(root,)) == "local"
    for url in (
        f"file://{root}/../secret",
        f"file://{root}%2F..%2Fsecret",
        f"file://{root}-other/x",
        "file:///etc/passwd",
        f"file://example.com{root}/x.html",
    ):
        assert browser.classify_url(url, file_roots=(root,)) == "blocked", url


def test_routed_pattern_spares_only_local_traffic(tmp_path):
    routed = browser.routed_pattern((str(tmp_path),))
    for url in (
        "http://127.0.0.1:555/x",
        "ws://localhost:1/",
        "http://localhost",
        "http://127.0.0.1:9?q#f",
        (tmp_path / "page.html").as_uri(),
        "data:text/html,x",
    ):
        assert not routed.match(url), url
    # Everything else goes to the router (which still lets other loopback forms through).
    for url in (
        "http://example.com/",
        "http://localhost.evil.com/",
        "http://127.0.0.1.evil.com/",
        "https://1.2.3.4/",
        "http://localhost:80@example.com/",
        "http://127.0.0.1@example.com/",
        "file:///etc/passwd",
        f"file://{tmp_path}-other/x.html",
        "http://[::1]:5/",
        "http://0.0.0.0:5/",
    ):
        assert routed.match(url), url


def test_launch_flags_agree_with_the_rule():
    args = browser.launch_args(frozenset({"10.1.2.3"}))
    rules = next(a for a in args if a.startswith("--host-resolver-rules="))
    assert rules.startswith("--host-resolver-rules=MAP * ~NOTFOUND,")
    for host in ("localhost", "*.localhost", "127.0.0.1", "::1", "10.1.2.3"):
        assert f"EXCLUDE {host}" in rules
    assert "127.*" not in rules  # a wildcard would hand names like 127.evil.com to the system resolver
    assert "--proxy-bypass-list=10.1.2.3" in args and "--proxy-server=http://127.0.0.1:9" in args
    assert not any(a.startswith("--proxy-bypass-list") for a in browser.launch_args())


def test_browser_not_found_says_how_to_install(monkeypatch, tmp_path):
    with pytest.raises(browser.BrowserNotFound) as err:
        browser.find_browser(str(tmp_path / "no-such-chrome"))
    assert "playwright install chromium" in str(err.value)
    monkeypatch.delenv("AGENTGYM_CHROMIUM", raising=False)
    monkeypatch.setenv("PLAYWRIGHT_BROWSERS_PATH", str(tmp_path))
    monkeypatch.setattr(browser, "SYSTEM_BROWSERS", ())
    monkeypatch.setattr(browser.shutil, "which", lambda name: None)
    with pytest.raises(browser.BrowserNotFound) as err:
        browser.find_browser()
    msg = str(err.value)
    assert "python -m playwright install chromium" in msg and "apt-get install -y chromium" in msg
    assert "bash envs/web/install-browser.sh" in msg
    assert not browser.browser_available()
    fake = tmp_path / "chrome"
    fake.write_text("")
    monkeypatch.setenv("AGENTGYM_CHROMIUM", str(fake))
    assert browser.find_browser() == ("env", str(fake))


def test_ids_registered_with_their_spaces():
    specs = {s.id: s for s in agentgym.list_envs()}
    for env_id in WEB_IDS:
        assert env_id in specs and specs[env_id].source == "agentgym-web" and specs[env_id].description


def test_registration_imports_nothing_heavy():
    code = (
        "import sys, agentgym; agentgym.list_envs(); "
        "print([m for m in ('playwright', 'agentgym_web.env', 'agentgym_web.browser') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("env_id", WEB_IDS[1:])
def test_training_never_samples_held_out(env_id):
    cls = agentgym.spec(env_id).load_class()
    rng = np.random.default_rng(0)
    for _ in range(300):
        task = cls.sample_train_task(rng)
        assert not cls.held_out.is_held_out(task.params, task.seed)
    held = cls.held_out_tasks(40)
    assert all(t.seed in cls.held_out.seeds for t in held)
    assert any(cls.held_out.region.contains(t.params) for t in held)


def test_miniwob_task_list():
    from agentgym_web.miniwob import HELD_OUT_TASKS, TASKS, miniwob_dir
    from agentgym_web.miniwob_oracles import SOLVERS

    assert len(TASKS) >= 25 and len(set(TASKS)) == len(TASKS)
    assert set(HELD_OUT_TASKS) <= set(TASKS)
    import os

    for task in TASKS:
        assert os.path.exists(os.path.join(miniwob_dir(), f"{task}.html")) and task in SOLVERS


@pytest.mark.parametrize("path", ["configs/web.yaml", "configs/web-miniwob.yaml"])
def test_run_configs_are_valid(path):
    from pathlib import Path

    from agentgym.config import load_config
    from agentgym.curriculum import make_teacher
    from agentgym.curriculum.base import TrainingTasks

    cfg = load_config(Path(__file__).resolve().parent.parent / path)
    cls = agentgym.spec(cfg.env.id).load_class()
    tasks = TrainingTasks(cls.param_space, cls.held_out, cfg.env.params)
    teacher = make_teacher(cfg.teacher.name, tasks, seed=0, **cfg.teacher.options)
    for spec in teacher.sample(32):
        assert not cls.held_out.is_held_out(spec.params, spec.seed)
    assert any(cls.held_out.region.contains(s.params) for s in tasks.held_out_specs(cfg.train.eval_tasks, seed=0))
    cls(**cfg.env.kwargs)  # the kwargs are the env's (no browser is started by building it)


def test_requires_browser_skips_saying_why_only_where_no_browser_runs(monkeypatch):
    from tests import conftest

    class Item:
        def __init__(self, marked):
            self.marked, self.added = marked, []

        def get_closest_marker(self, name):
            return object() if self.marked and name == "requires_browser" else None

        def add_marker(self, mark):
            self.added.append(mark)

    for missing in ("no Chromium here", None):
        monkeypatch.setattr(conftest, "browser_missing", lambda missing=missing: missing)
        marked, plain = Item(True), Item(False)
        conftest.pytest_collection_modifyitems(None, [marked, plain])
        assert not plain.added
        if missing is None:
            assert not marked.added
        else:
            assert [(m.name, m.kwargs["reason"]) for m in marked.added] == [("skip", "no Chromium here")]
