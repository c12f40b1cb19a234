"""MiniWoB++ tasks from the PyPI package ``miniwob``, in the browser pool.

Each task is one HTML page shipped in ``miniwob/html/miniwob/``. The env loads it with a
``file://`` URL (nothing is served; the page needs no network), seeds it and starts an
episode the way the package does (``Math.seedrandom(seed)``, then
``core.startEpisodeReal()``), and reads the task's own reward from the page
(``WOB_RAW_REWARD_GLOBAL`` once ``WOB_DONE_GLOBAL`` is set). Determinism: an init script
replaces ``Math.random`` with a seeded generator before any page script runs and starts
the page's clock at a fixed date (time then flows normally), so the same seed gives the
same instance, page for page. The page's 10-second episode timer is lifted (an LLM turn
takes longer than that).

:data:`TASKS` lists the supported tasks: those a text agent can do with the text view
and the actions (no drawing, dragging or reading pictures), each with a scripted
solver in :mod:`agentgym_web.miniwob_oracles` that acts only through the text view.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import stat
import tempfile
from typing import Any, ClassVar

import numpy as np

from agentgym import Categorical, HeldOut, ParamSpace, Region, TaskSpec
from agentgym_web.env import Outcome, WebEnv

#: Supported tasks (each with an oracle; success rates in the README).
TASKS: tuple[str, ...] = (
    "click-button",
    "click-button-sequence",
    "click-checkboxes",
    "click-checkboxes-large",
    "click-checkboxes-transfer",
    "click-collapsible",
    "click-collapsible-2",
    "click-dialog",
    "click-dialog-2",
    "click-link",
    "click-option",
    "click-tab",
    "click-tab-2",
    "click-tab-2-hard",
    "click-test",
    "click-test-2",
    "click-widget",
    "choose-list",
    "enter-password",
    "enter-text",
    "enter-text-2",
    "enter-text-dynamic",
    "focus-text",
    "focus-text-2",
    "login-user",
    "login-user-popup",
    "read-table",
    "search-engine",
    "use-autocomplete",
    "unicode-test",
    "copy-paste",
    "find-word",
    "guess-number",
    "simple-arithmetic",
    "odd-or-even",
    "enter-date",
    "navigate-tree",
    "social-media",
    "email-inbox",
    "multi-layouts",
    "phone-book",
)

#: Tasks training never samples (the held-out region of ``web/miniwob-v0``).
HELD_OUT_TASKS: tuple[str, ...] = ("click-tab-2-hard", "login-user-popup", "click-checkboxes-transfer")

#: The page's clock starts here in every episode (then runs normally).
START_TIME_MS = 1_700_000_000_000  # 2023-11-14T22:13:20Z

_INIT_JS = r"""
(() => {
  let s = %d >>> 0;
  Math.random = function () {
    s = (s + 0x6D2B79F5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const RealDate = Date;
  const shift = %d - RealDate.now();
  function FakeDate(...a) {
    if (!new.target) return new RealDate(RealDate.now() + shift).toString();
    return a.length ? new RealDate(...a) : new RealDate(RealDate.now() + shift);
  }
  FakeDate.prototype = RealDate.prototype;
  FakeDate.now = () => RealDate.now() + shift;
  FakeDate.UTC = RealDate.UTC;
  FakeDate.parse = RealDate.parse;
  window.Date = FakeDate;
})();
"""

_START_JS = r"""
async (seed) => {
  core.EPISODE_MAX_TIME = 2000000000;
  Math.seedrandom(String(seed));
  core.startEpisodeReal();
  for (let i = 0; i < 100 && !WOB_TASK_READY; i++) await new Promise((r) => setTimeout(r, 20));
  // Let the icons the new problem draws from CSS pictures (content: url(...)) load.
  const pending = () => Array.from(document.querySelectorAll('#area *')).some((e) => {
    if (e.firstElementChild) return false;
    const st = getComputedStyle(e);
    return st.content.startsWith('url') && st.display !== 'none' && e.getBoundingClientRect().width === 0;
  });
  for (let i = 0; i < 50 && pending(); i++) await new Promise((r) => setTimeout(r, 10));
  return WOB_TASK_READY;
}
"""

_EXTRA_JS = (
    "return {done: !!WOB_DONE_GLOBAL, reward: WOB_REWARD_GLOBAL, raw: WOB_RAW_REWARD_GLOBAL, "
    "reason: WOB_REWARD_REASON, utterance: core.getUtterance()};"
)


def miniwob_dir() -> str:
    """Where the ``miniwob`` package keeps its task pages (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("miniwob")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the MiniWoB++ tasks need the PyPI package 'miniwob': pip install miniwob")
    return os.path.join(list(spec.submodule_search_locations)[0], "html", "miniwob")


def readable_by_anyone(root: str) -> bool:
    """Whether a user with no rights of its own (the browser's ``nobody``) can read ``root``.

    Every folder above it must let others through, and every folder and file in it must
    let others read. A package installed under ``/root`` (mode 700, as pyenv's Python in
    CI) fails the first test: Chromium, dropped to ``nobody``, then gets
    ``ERR_FILE_NOT_FOUND`` for a page that is there."""
    path = os.path.realpath(root)
    parent = os.path.dirname(path)
    while True:
        if not os.stat(parent).st_mode & stat.S_IXOTH:
            return False
        if parent == os.path.dirname(parent):
            break
        parent = os.path.dirname(parent)
    for folder, _dirs, files in os.walk(path):
        if (os.stat(folder).st_mode & (stat.S_IROTH | stat.S_IXOTH)) != (stat.S_IROTH | stat.S_IXOTH):
            return False
        for name in files:
            if not os.stat(os.path.join(folder, name)).st_mode & stat.S_IROTH:
                return False
    return True


@functools.cache
def _readable_copy(html: str) -> str:
    top = tempfile.mkdtemp(prefix="agentgym-miniwob-")
    atexit.register(shutil.rmtree, top, True)
    copy = os.path.join(top, "html")
    shutil.copytree(html, copy)
    for folder, _dirs, files in os.walk(top):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
    return copy


@functools.cache
def pages_dir() -> str:
    """The folder the browser loads task pages from: the package's own where anyone can
    read it, otherwise a world-readable copy of its ``html`` tree (made once per process,
    removed at exit). The copy keeps the tree's layout, so pages find ``../core``."""
    html = os.path.dirname(miniwob_dir())
    if readable_by_anyone(html):
        return miniwob_dir()
    return os.path.join(_readable_copy(html), "miniwob")


def task_url(task: str) -> str:
    path = os.path.join(miniwob_dir(), f"{task}.html")
    if not os.path.exists(path):
        raise ValueError(f"no MiniWoB task {task!r} in {miniwob_dir()}")
    return "file://" + os.path.join(pages_dir(), f"{task}.html")


def _js_seed(rng: np.random.Generator) -> int:
    return int(rng.integers(1, 2**31 - 1))


class MiniWobEnv(WebEnv):
    """MiniWoB++ tasks through the text view; ``task`` is the parameter.

    Extra keyword arguments: ``raw_reward`` (False): use MiniWoB's reward as it is (-1 for
    a failure, partial values for some tasks) instead of clipping it to [0, 1];
    ``max_turns`` defaults to 15. See :class:`~agentgym_web.env.WebEnv` for the rest.
    """

    param_space: ClassVar[ParamSpace] = ParamSpace(
        [Categorical("task", TASKS, description="the MiniWoB++ task (see the README for the list)")]
    )
    held_out: ClassVar[HeldOut] = HeldOut(
        seeds=range(1_000_000_000, 1_000_000_000 + 1_000_000),
        region=Region({"task": list(HELD_OUT_TASKS)}, name="unseen tasks"),
    )
    skip_dom_ids: ClassVar[tuple[str, ...]] = ("reward-display", "sync-task-cover", "click-canvas", "query")

    def __init__(self, max_turns: int = 15, raw_reward: bool = False, **kwargs: Any):
        super().__init__(max_turns=max_turns, **kwargs)
        self.raw_reward = bool(raw_reward)
        self.task_name = ""
        self.js_seed = 0
        self._oracle_state: dict[str, Any] = {}

    def content_key(self, task: TaskSpec) -> str:
        """The task and the seed its page script draws the instance from.

        The instance itself (the utterance, the buttons) exists only once the page has run
        in a browser, so two script seeds that happen to draw the same instance count as
        two contents here; the held-out *tasks* (the region) are held out in full."""
        params = self.param_space.validate(task.params)
        return f"miniwob|{params['task']}|{_js_seed(np.random.default_rng(int(task.seed)))}"

    def _prepare(self, params: dict[str, Any], rng: np.random.Generator) -> None:
        self.task_name = params["task"]
        self.js_seed = _js_seed(rng)
        self._url = task_url(self.task_name)
        self._oracle_state = {}
        self.goal = ""  # the page's utterance; never the last episode's

    def _init_scripts(self) -> tuple[str, ...]:
        return (_INIT_JS % (self.js_seed, START_TIME_MS),)

    def _file_roots(self) -> tuple[str, ...]:
        # The task pages load scripts and styles from their siblings (../core, ../common).
        return (os.path.dirname(pages_dir()),)

    async def _open(self, page: Any) -> None:
        await page.goto(self._url, wait_until="load")
        ready = await page.evaluate(_START_JS, self.js_seed)
        if not ready:
            raise RuntimeError(f"MiniWoB task {self.task_name} did not become ready")

    def _extra_js(self) -> str | None:
        return _EXTRA_JS

    def _goal_text(self, snap: dict[str, Any]) -> str:
        extra = snap.get("extra") or {}
        return str(extra.get("utterance") or self.goal)

    def _display_url(self, url: str) -> str:
        marker = "/html/miniwob/"
        i = url.find(marker)
        return "file:///miniwob/" + url[i + len(marker) :] if i >= 0 else url

    def _outcome(self, snap: dict[str, Any]) -> Outcome | None:
        extra = snap.get("extra") or {}
        if not extra.get("done"):
            return None
        raw = float(extra.get("raw") or 0.0)
        reward = raw if self.raw_reward else min(1.0, max(0.0, raw))
        reason = extra.get("reason")
        return Outcome(
            done=True,
            success=raw > 0,
            reward=reward,
            message=f"MiniWoB reward {raw:g}" + (f" ({reason})" if reason else "") + ".",
        )

    def oracle(self) -> str:
        from agentgym_web.miniwob_oracles import solve

        return solve(self.task_name, self.goal, self.last_view, self._oracle_state)
