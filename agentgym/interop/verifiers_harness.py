"""The verifiers harness agentgym seats its agent with (multi-turn ``verifiers:`` envs).

verifiers runs every model call of a rollout through a harness program that posts to the
rollout's interception server (an OpenAI-compatible endpoint on loopback, bearer token
per rollout); the server records the turn on the trace and asks its model ``Client``.
verifiers documents that a harness may run its loop in-process as long as every call goes
through that endpoint: this one does, with one chat-completions call per segment and no
tools. It is found by verifiers' loader under :data:`HARNESS_ID` (a module alias that
:mod:`agentgym.interop.verifiers_env` installs), as any installed harness package is.
"""

from __future__ import annotations

from typing import Any

from verifiers.v1.clients import ModelContext
from verifiers.v1.configs.harness import HarnessConfig
from verifiers.v1.dialects.chat import message_to_wire
from verifiers.v1.harness import Harness
from verifiers.v1.runtimes import ProgramResult, Runtime
from verifiers.v1.task import TaskData
from verifiers.v1.trace import Trace

#: The id verifiers' loader imports this module under.
HARNESS_ID = "agentgym_handoff"


class HandoffHarnessConfig(HarnessConfig):
    id: str = HARNESS_ID


class HandoffHarness(Harness[HandoffHarnessConfig]):
    """One model call per segment, in-process, through the rollout's interception endpoint."""

    APPENDS_SYSTEM_PROMPT = True
    SUPPORTS_RESUME = True  # the default resume() relaunches on the whole conversation
    EXECUTES_CODE = False
    NEEDS_CONTAINER = False

    async def launch(
        self,
        ctx: ModelContext,
        trace: Trace,
        runtime: Runtime,
        endpoint: str,
        secret: str,
        mcp_urls: dict[str, str],
        data: TaskData,
        **_: Any,
    ) -> ProgramResult:
        import httpx

        system, prompt = self.resolve_prompt(data)
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
        if isinstance(prompt, str):
            messages.append({"role": "user", "content": prompt})
        elif prompt is not None:
            messages.extend(message_to_wire(m) for m in prompt)
        async with httpx.AsyncClient(timeout=None) as http:
            reply = await http.post(
                endpoint.rstrip("/") + "/chat/completions",
                json={"model": ctx.model, "messages": messages},
                headers={"Authorization": f"Bearer {secret}"},
            )
        if reply.status_code != 200:
            return ProgramResult(exit_code=1, stdout="", stderr=f"HTTP {reply.status_code}: {reply.text[:2000]}")
        return ProgramResult(exit_code=0, stdout="", stderr="")


__all__ = ["HandoffHarness"]
