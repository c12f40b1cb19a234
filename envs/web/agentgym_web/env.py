"""The web env base class: a page in its own browser context, a text view, browser actions.

:class:`WebEnv` is a synchronous :class:`agentgym.TextEnv`; its browser work runs on the
process-wide :class:`~agentgym_web.browser.BrowserPool`'s event loop. Each episode opens
a fresh, isolated context (cookies, storage, cache and history never carry over) and
closes the previous one. A turn is one action: parsed from the reply
(:mod:`agentgym_web.actions`), done on the page, then the page settles and is read again
(:mod:`agentgym_web.page`).

An observation (the user message of each turn)::

    Goal: Enter "Ana" into the text field and press Submit.
    URL: http://site.localhost/form
    Title: Contact form
    Page:
    [3] textbox "First name" value=""
    [4] button "Submit"
    Error: there is no element [9] on the page now

(``Error:`` only after an action that could not be done.) A reply with no usable action
gets ``Error: ...`` and the note that nothing was done, without the page again.

Reward parts (every step has all four): ``task`` (the task's reward when it ends:
MiniWoB's own reward read from the page, or a generated site's verdict), ``partial``
(``partial_credit`` x the share of the task done, when it ends unsolved; sites only),
``invalid`` (``invalid_penalty`` for an action that could not be parsed or done) and
``step`` (``step_penalty`` every turn).

Crash recovery: when the browser dies or hangs during a call, the pool relaunches it and
the env replays the episode (same task, the same actions; tasks are deterministic) and
then does the action that failed; that counts in ``pool.stats.retried_episodes``. If the
replay fails too (``max_retries`` times) the env raises :class:`EpisodeDropped` (counted
in ``dropped_episodes``) and a :class:`~agentgym.rollout.RolloutRunner` drops the episode.
"""

from __future__ import annotations

import asyncio
import io
import json
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from agentgym import Feedback, HeldOut, ParamSpace, TaskSpec, TextEnv
from agentgym.env import positive_int
from agentgym_web.actions import Action, ActionError, execute, format_action, is_fatal, parse_action
from agentgym_web.browser import BrowserFailure, BrowserHung, BrowserNotFound, BrowserPool, get_pool
from agentgym_web.page import SNAPSHOT_JS, render_view
from agentgym_web.server import Response

#: How generated sites' URLs are shown (the server's real origin has a random port).
DISPLAY_ORIGIN = "http://site.localhost"

SYSTEM_PROMPT = """You are using a web browser to complete a task. Each turn you get the goal, the page address and the page as text: one element per line, written [id] kind "text" followed by its state (value=, checked, options=...); indentation shows nesting.
Reply with exactly one action:
click(id) - click an element
type(id, "text") - replace the text of a text box with "text"
select(id, "option") - choose an option of a drop-down list
press("Enter") - press a key (Enter, Tab, Escape, ArrowDown, Backspace, ...)
scroll("down") - scroll the page (up, down, left, right); scroll(id, "down") scrolls one element
hover(id) - move the mouse over an element
go_back() - go back to the previous page
wait() - wait a moment for the page to change
answer("text") - give your answer, when the goal asks for one
Example reply: click(12)"""


class EpisodeDropped(RuntimeError):
    """The browser failed and the episode could not be replayed: it is dropped (and counted)."""


@dataclass
class Outcome:
    """How an episode ended: the task reward, success and (for sites) the share done."""

    done: bool
    success: bool = False
    reward: float = 0.0
    progress: float = 0.0
    message: str = ""


class WebEnv(TextEnv):
    """A browser task: subclasses open the page and say when the task is done.

    Keyword arguments (also ``env.kwargs`` in a run config):

    - ``max_turns`` (10): actions before the episode is truncated;
    - ``invalid_penalty`` (-0.05): reward for a reply whose action could not be parsed or done;
    - ``step_penalty`` (0.0): reward added every turn (a negative value favours short episodes);
    - ``action_pick`` ("first"): which call of a reply with several is done (``first``/``last``);
    - ``action_timeout`` (2.0): seconds an element action waits for the element to be ready;
    - ``settle_ms`` (20): how long the page may react after an action before it is read;
    - ``max_elements`` (300), ``max_text`` (120), ``max_obs_chars`` (6000): size of the view;
    - ``viewport_only`` (False): list only elements inside the visible part of the page
      (then ``scroll`` matters);
    - ``typing`` ("fill"): ``fill`` sets a field's text at once (input events), ``keys``
      types it key by key;
    - ``wait_seconds`` (1.0): how long ``wait()`` waits;
    - ``max_retries`` (1): replays of an episode after a browser crash before it is dropped;
    - ``call_timeout`` (30.0): seconds one reset or step may take before the browser counts as hung;
    - ``executable_path``: the Chromium binary (else see :func:`~agentgym_web.browser.find_browser`);
    - ``network``: ``"isolated"`` (default: the browser in its own network namespace, loopback
      only, enforced by the kernel) or ``"host"`` (Chromium's flags and the router only);
    - ``pool``: a :class:`BrowserPool` of your own (default: the process-wide one);
    - ``system_prompt``: replaces the default;
    - ``render_mode``: ``ansi`` (the transcript) or ``rgb_array`` (a screenshot).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "rgb_array"], "render_fps": 1}
    param_space: ClassVar[ParamSpace] = ParamSpace([])
    held_out: ClassVar[HeldOut] = HeldOut()
    max_action_chars: ClassVar[int] = 8192
    #: The page work of each step runs in Chromium and on the pool's event loop, so the
    #: rollout pool steps a batch's web envs from threads, side by side.
    concurrent_steps: ClassVar[bool] = True
    #: Element ids (DOM ``id`` attributes) left out of the view (page chrome).
    skip_dom_ids: ClassVar[tuple[str, ...]] = ()
    #: Whether the env serves pages of its own (:meth:`_serve`) on the pool's site server.
    serves_pages: ClassVar[bool] = False

    def __init__(
        self,
        *,
        max_turns: int = 10,
        invalid_penalty: float = -0.05,
        step_penalty: float = 0.0,
        partial_credit: float = 0.0,
        action_pick: str = "first",
        action_timeout: float = 2.0,
        settle_ms: float = 20,
        max_elements: int = 300,
        max_text: int = 120,
        max_obs_chars: int = 6000,
        viewport_only: bool = False,
        typing: str = "fill",
        wait_seconds: float = 1.0,
        max_retries: int = 1,
        call_timeout: float = 30.0,
        executable_path: str | None = None,
        network: str = "isolated",
        pool: BrowserPool | None = None,
        system_prompt: str | None = None,
        render_mode: str | None = None,
    ):
        super().__init__(render_mode=render_mode)
        positive_int("max_turns", max_turns)
        if action_pick not in ("first", "last"):
            raise ValueError(f"action_pick must be 'first' or 'last', got {action_pick!r}")
        if typing not in ("fill", "keys"):
            raise ValueError(f"typing must be 'fill' or 'keys', got {typing!r}")
        self.max_turns = max_turns
        self.invalid_penalty = float(invalid_penalty)
        self.invalid_action_penalty = self.invalid_penalty
        self.step_penalty = float(step_penalty)
        self.partial_credit = float(partial_credit)
        self.action_pick = action_pick
        self.action_timeout = float(action_timeout)
        self.settle_ms = float(settle_ms)
        self.max_elements = int(max_elements)
        self.max_text = int(max_text)
        self.max_obs_chars = int(max_obs_chars)
        self.viewport_only = bool(viewport_only)
        self.typing = typing
        self.wait_seconds = float(wait_seconds)
        self.max_retries = int(max_retries)
        self.call_timeout = float(call_timeout)
        self.system_prompt = system_prompt or SYSTEM_PROMPT
        self.pool = pool if pool is not None else get_pool(executable_path=executable_path, network=network)
        self.goal = ""
        self.last_view = ""
        self.last_snapshot: dict[str, Any] = {}
        self.last_observation = ""
        self.history: list[Action] = []
        self.episode_stats: dict[str, Any] = {}
        self._ctx: Any = None
        self._page: Any = None
        self._gen = 0
        self._next_id = 1
        self._finalizer: Any = None
        self._site_token = self.pool.site_server.register(self._serve) if self.serves_pages else None

    # ----- hooks for subclasses ------------------------------------------------------------
    def _prepare(self, params: dict[str, Any], rng: np.random.Generator) -> None:
        """Decide the task from ``params`` and ``rng`` (Python side, before the page opens)."""

    async def _open(self, page: Any) -> None:
        """Load the start page into ``page`` (called again when an episode is replayed)."""
        raise NotImplementedError

    def _init_scripts(self) -> tuple[str, ...]:
        """Scripts run in every document of the context before the page's own."""
        return ()

    def _file_roots(self) -> tuple[str, ...]:
        """Folders whose files the pages may load by ``file:`` URL (none by default)."""
        return ()

    def _serve(self, method: str, path: str, query: dict[str, list[str]], form: dict[str, list[str]]) -> Response:
        """Answer a request for this env's pages (envs with ``serves_pages`` override this)."""
        return Response("<h1>Not found</h1>", status=404)

    @property
    def site_origin(self) -> str:
        """Where this env's own pages are served (``http://127.0.0.1:<port>``)."""
        return self.pool.site_server.origin

    def _extra_js(self) -> str | None:
        """A function body run after each snapshot; its result is ``snapshot["extra"]``."""
        return None

    def _goal_text(self, snap: dict[str, Any]) -> str:
        return self.goal

    def _outcome(self, snap: dict[str, Any]) -> Outcome | None:
        """Whether the task ended after the last action (None or ``done=False``: it goes on)."""
        return None

    def _answer(self, text: str) -> Outcome | str:
        """Judge ``answer(text)``: an :class:`Outcome` ends the episode, a string is an error."""
        return "this task takes no answer(): act on the page instead"

    def _display_url(self, url: str) -> str:
        if self.serves_pages and self.pool.site_server.port and url.startswith(self.site_origin):
            return DISPLAY_ORIGIN + url[len(self.site_origin) :]
        return url

    # ----- browser work (on the pool's loop) ----------------------------------------------
    async def _a_start(self) -> dict[str, Any]:
        old = self._forget_context()
        if old is not None:
            await self.pool.close_context(old)
        self._next_id = 1

        stats = self.episode_stats  # not self: the pool must not keep the env alive

        def blocked(url: str) -> None:
            stats["blocked_requests"] = stats.get("blocked_requests", 0) + 1
            stats["last_blocked"] = url[:300]

        ctx, gen = await self.pool.new_context(
            site_token=self._site_token,
            init_scripts=self._init_scripts(),
            on_blocked=blocked,
            file_roots=self._file_roots(),
        )
        self._ctx, self._gen = ctx, gen
        # An env dropped without close() still closes its context (the pool holds no env).
        self._finalizer = weakref.finalize(self, self.pool.close_context_soon, ctx)
        page = await ctx.new_page()
        page.set_default_timeout(max(5000, self.action_timeout * 1000))
        page.set_default_navigation_timeout(max(10_000, self.call_timeout * 500))
        page.on("dialog", _dismiss_dialog)
        self._page = page
        await self._open(page)
        return await self._a_snapshot()

    async def _a_snapshot(self) -> dict[str, Any]:
        page = self._page
        opts = {
            "maxNodes": self.max_elements,
            "maxText": self.max_text,
            "skipIds": list(self.skip_dom_ids),
            "viewportOnly": self.viewport_only,
            "start": self._next_id,
            "extra": self._extra_js(),
        }
        last: Exception | None = None
        for _ in range(4):
            try:
                await page.wait_for_load_state("domcontentloaded", timeout=5000)
                snap = await page.evaluate(SNAPSHOT_JS, opts)
                self._next_id = max(self._next_id, int(snap.get("nextId", 1)))
                return snap
            except Exception as exc:  # a navigation replaced the document under us: read again
                if is_fatal(exc):
                    raise
                last = exc
                await asyncio.sleep(0.05)
        raise BrowserFailure(f"could not read the page: {last}")

    async def _a_act(self, action: Action) -> tuple[dict[str, Any], str | None]:
        err = await execute(
            self._page, action, timeout_ms=self.action_timeout * 1000, typing=self.typing, wait_s=self.wait_seconds
        )
        await self._a_settle()
        return await self._a_snapshot(), err

    async def _a_settle(self) -> None:
        """Give the page time to react to an action before it is read."""
        if self.settle_ms > 0:
            await asyncio.sleep(self.settle_ms / 1000)

    async def _a_replay(self, then: Callable[[], Any]) -> Any:
        await self._a_start()
        for action in self.history:
            await self._a_act(action)
        return await then()

    # ----- calling the browser with recovery ------------------------------------------------
    def _call(self, make: Callable[[], Any]) -> Any:
        """Run ``make()`` on the loop; on a browser failure, relaunch and replay the episode."""
        attempt = 0
        runner = make
        while True:
            gen = self._gen
            try:
                if runner is not make or make == self._a_start:
                    # It opens a context: a launch (first use, or after a crash) is timed
                    # by the pool's own launch limit, not by call_timeout.
                    self.pool.ensure_started()
                return self.pool.run(runner(), timeout=self.call_timeout)
            except BrowserNotFound:
                raise
            except BrowserHung as exc:
                self.pool.recover(gen, hung=True)
                why, cause = "hung", exc
            except Exception as exc:
                # A page load that timed out counts too (a stalled renderer): retry it.
                if not (isinstance(exc, BrowserFailure) or is_fatal(exc) or type(exc).__name__ == "TimeoutError"):
                    raise
                self.pool.recover(gen)
                why = f"failed ({str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__})"
                cause = exc
            attempt += 1
            if attempt > self.max_retries:
                self.pool.stats.add("dropped_episodes")
                # The context may still be alive (a page that hangs): close it, or it
                # leaks (and a spinning page burns a core) until the env is collected.
                self._close_context()
                self._done = True  # step() now asks for a reset
                raise EpisodeDropped(
                    f"the browser {why}; the episode was replayed {attempt - 1} time(s) and is dropped"
                ) from cause
            self.pool.stats.add("retried_episodes")
            self.episode_stats["retries"] = self.episode_stats.get("retries", 0) + 1

            if make != self._a_start:  # a reset just starts again; a step replays first

                def runner(make: Callable[[], Any] = make) -> Any:
                    return self._a_replay(make)

    # ----- the TextEnv hooks ------------------------------------------------------------------
    def step(self, action: Any) -> tuple[list[dict[str, str]], float, bool, bool, dict[str, Any]]:
        messages, reward, terminated, truncated, info = super().step(action)
        if "invalid_action" in info["reward_parts"]:
            # TextEnv refused it before _step (not text, too long): give it the parts of
            # every other step, the step penalty included.
            info["reward_parts"] = self._parts(invalid=True)
            reward = float(sum(info["reward_parts"].values()))
        return messages, reward, terminated, truncated, info

    def _reset(self, params: dict[str, Any], rng: np.random.Generator) -> list[dict[str, str]]:
        self._prepare(params, rng)
        self.history = []
        self.episode_stats = {"blocked_requests": 0, "retries": 0}
        snap = self._call(self._a_start)
        obs = self._observe(snap, None)
        return [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": obs}]

    def _step(self, text: str) -> Feedback:
        try:
            action = parse_action(text, self.action_pick)
        except ActionError as exc:
            return self._invalid(str(exc))
        if action.name == "answer":
            verdict = self._answer(action.args[0])
            if isinstance(verdict, str):
                return self._invalid(verdict)
            return self._finish(verdict, None)
        snap, err = self._call(lambda: self._a_act(action))
        self.history.append(action)
        outcome = self._outcome(snap)
        if outcome is not None and outcome.done:
            return self._finish(outcome, err)
        obs = self._observe(snap, err)
        return Feedback(
            messages=[{"role": "user", "content": obs}],
            reward_parts=self._parts(invalid=err is not None),
            error=err,
        )

    def _parts(self, task: float = 0.0, partial: float = 0.0, invalid: bool = False) -> dict[str, float]:
        return {
            "task": float(task),
            "partial": float(partial),
            "invalid": self.invalid_penalty if invalid else 0.0,
            "step": self.step_penalty,
        }

    def _invalid(self, error: str) -> Feedback:
        self.last_observation = f"Error: {error}\nNothing was done; the page is as before."
        return Feedback(
            messages=[{"role": "user", "content": self.last_observation}],
            reward_parts=self._parts(invalid=True),
            error=error,
        )

    def _finish(self, outcome: Outcome, err: str | None) -> Feedback:
        partial = 0.0 if outcome.success else self.partial_credit * float(outcome.progress)
        verdict = "solved" if outcome.success else "not solved"
        msg = f"The episode is over: the task is {verdict}." + (f" {outcome.message}" if outcome.message else "")
        self.last_observation = msg
        return Feedback(
            messages=[{"role": "user", "content": msg}],
            reward_parts=self._parts(task=outcome.reward, partial=partial, invalid=err is not None),
            terminated=True,
            success=bool(outcome.success),
            error=err,
        )

    def _observe(self, snap: dict[str, Any], err: str | None) -> str:
        self.last_snapshot = snap
        self.goal = self._goal_text(snap) or self.goal
        view = render_view(snap, self.max_obs_chars)
        self.last_view = view
        url = snap.get("url", "")
        if url.startswith("chrome-error://") and self.episode_stats.get("last_blocked"):
            shown = f"{self.episode_stats['last_blocked']} (blocked: only local pages can be opened; go_back() returns)"
        else:
            shown = self._display_url(url)
        parts = [f"Goal: {self.goal}", f"URL: {shown}"]
        if snap.get("title"):
            parts.append(f"Title: {snap['title']}")
        parts.append("Page:")
        parts.append(view)
        if err:
            parts.append(f"Error: {err}")
        self.last_observation = "\n".join(parts)
        return self.last_observation

    # ----- extras -------------------------------------------------------------------------
    def screenshot(self, path: str | None = None, full_page: bool = False) -> bytes:
        """A PNG of the current page (also written to ``path`` when given)."""
        if self._page is None:
            raise RuntimeError("call reset() before screenshot()")
        page = self._page
        data = self.pool.run(page.screenshot(full_page=full_page), timeout=self.call_timeout)
        if path:
            with open(path, "wb") as fh:
                fh.write(data)
        return data

    def render(self) -> Any:
        if self.render_mode == "rgb_array":
            if self._page is None:
                return np.zeros((600, 800, 3), dtype=np.uint8)
            from PIL import Image

            return np.asarray(Image.open(io.BytesIO(self.screenshot())).convert("RGB"))
        return super().render()

    def _forget_context(self) -> Any:
        """Detach this env from its context (returned, or None) without closing it."""
        ctx, self._ctx, self._page = self._ctx, None, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        return ctx

    def _close_context(self) -> None:
        """Close this env's context, if any, from the env's thread; never raises."""
        ctx = self._forget_context()
        if ctx is not None:
            try:
                self.pool.run(self.pool.close_context(ctx), timeout=15)
            except Exception:  # a dead or closed pool: the context went with it
                pass

    def close(self) -> None:
        """Close this env's browser context (the shared browser stays up)."""
        self._close_context()
        self.pool.site_server.unregister(self._site_token)
        self._done = True
        super().close()


async def _dismiss_dialog(dialog: Any) -> None:
    # alert/confirm/prompt would block the page; a person would click them away.
    try:
        await dialog.dismiss()
    except Exception:
        pass


class PageEnv(WebEnv):
    """Your own page as a task: HTML served by the pool's local server (shown as ``http://site.localhost/``).

    ``html`` is the page (or a dict ``path -> html`` for several pages, ``"/"`` first);
    ``goal`` is shown to the agent. The task ends when ``success_js`` (a JavaScript
    expression evaluated after every action) is true, or on ``answer(...)`` when an
    ``answer`` is given (compared ignoring case and surrounding space).
    """

    serves_pages: ClassVar[bool] = True
    # One page is one task: there is no other content to hold out, so the content split
    # is off and held-out seeds alone are what evaluation draws (the same page).
    held_out: ClassVar[HeldOut] = HeldOut(content_fraction=0.0)

    def __init__(
        self,
        html: str | dict[str, str] | None = None,
        goal: str = "Click the button.",
        success_js: str | None = None,
        answer: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if html is None:
            html = (
                "<html><head><title>Demo</title></head><body><p>A demo page.</p>"
                '<button onclick="window.done = true">Press me</button></body></html>'
            )
            success_js = success_js or "window.done === true"
        self.pages = {"/": html} if isinstance(html, str) else dict(html)
        self.goal = goal
        self.success_js = success_js
        self.expected_answer = answer

    def content_key(self, task: TaskSpec) -> str:
        """The pages and the goal: every seed of this env is the same task."""
        return json.dumps([self.pages, self.goal], sort_keys=True)

    async def _open(self, page: Any) -> None:
        await page.goto(self.site_origin + "/", wait_until="domcontentloaded")

    def _serve(self, method: str, path: str, query: dict[str, list[str]], form: dict[str, list[str]]) -> Response:
        body = self.pages.get(path)
        if body is None:
            return Response("<h1>Not found</h1>", status=404)
        return Response(body)

    def _extra_js(self) -> str | None:
        if not self.success_js:
            return None
        return f"return {{success: !!({self.success_js})}};"

    def _outcome(self, snap: dict[str, Any]) -> Outcome | None:
        extra = snap.get("extra") or {}
        if extra.get("success"):
            return Outcome(done=True, success=True, reward=1.0)
        return None

    def _answer(self, text: str) -> Outcome | str:
        if self.expected_answer is None:
            return super()._answer(text)
        ok = text.strip().lower() == self.expected_answer.strip().lower()
        return Outcome(done=True, success=ok, reward=float(ok))

    def oracle(self) -> str:
        from agentgym_web.page import parse_view

        if self.expected_answer is not None:
            return format_action("answer", self.expected_answer)
        buttons = [n for n in parse_view(self.last_view) if n.kind == "button"]
        return format_action("click", buttons[0].id) if buttons else "wait()"
