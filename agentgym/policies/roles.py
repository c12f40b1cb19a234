"""One LoRA adapter per role: a multi-agent game's seats share the base model, each seat
has its own adapter.

:class:`RoleAdapters` builds a PEFT model with one adapter per role (every adapter starts
as the identity: LoRA's B is zero) and switches the active one. :class:`RolePolicy` is a
:class:`~agentgym.policies.base.Policy` over it: ``generate_as(role, ...)`` generates with
that role's adapter, and :class:`~agentgym.rollout.runner.RolloutRunner` calls it once
per role each round, so every seat is played by its own adapter. The trainer activates a
role's adapter for the micro-batches of that role's episodes, so each adapter is trained
only on its own seat's tokens. :meth:`RoleAdapters.rotate` exchanges roles: seat i is
then played (and trained) by adapter i + k, so over a run each adapter learns every role.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agentgym.policies.base import Completion, PolicyBase, SamplingParams


class RoleAdapters:
    """A PEFT model holding one LoRA adapter per role, exactly one active at a time."""

    def __init__(self, base_model: Any, roles: Sequence[str], lora_config: Any):
        from peft import get_peft_model

        roles = tuple(roles)
        if len(roles) < 2 or len(set(roles)) != len(roles):
            raise ValueError(f"one adapter per role needs two or more distinct roles, got {roles}")
        self.roles = roles
        self.model = get_peft_model(base_model, lora_config, adapter_name=roles[0])
        for role in roles[1:]:
            self.model.add_adapter(role, lora_config)
        self.active = ""
        self._lora_params = [p for n, p in self.model.named_parameters() if "lora_" in n]
        #: Seat -> the adapter that plays it (the identity until :meth:`rotate`).
        self.assignment = {r: r for r in roles}
        self.activate(roles[0])

    def rotate(self, k: int) -> None:
        """Seat i is played by adapter i + k (mod the number of roles): role exchange."""
        n = len(self.roles)
        self.assignment = {seat: self.roles[(i + k) % n] for i, seat in enumerate(self.roles)}

    def activate_seat(self, seat: str) -> None:
        """Activate the adapter that currently plays ``seat``."""
        if seat not in self.assignment:
            raise KeyError(f"no seat {seat!r}; seats: {list(self.roles)}")
        self.activate(self.assignment[seat])

    def activate(self, role: str) -> None:
        """Make ``role``'s adapter the one forward passes use. Every adapter stays trainable
        (PEFT freezes the inactive ones; an adapter that takes no part in a forward pass
        just gets no gradient), so one optimizer and one checkpoint hold them all."""
        if role not in self.roles:
            raise KeyError(f"no adapter for role {role!r}; roles: {list(self.roles)}")
        if role == self.active:
            return
        self.model.set_adapter(role)
        self.active = role
        for p in self._lora_params:
            p.requires_grad_(True)

    def adapter_parameters(self, role: str) -> dict[str, Any]:
        """``role``'s LoRA parameters by name."""
        return {n: p for n, p in self.model.named_parameters() if "lora_" in n and f".{role}." in n}

    def merged(self, role: str) -> Any:
        """A plain transformers model: the base with ``role``'s adapter merged in (a copy)."""
        import copy

        m = copy.deepcopy(self.model)
        m.set_adapter(role)
        return m.merge_and_unload(adapter_names=[role])


class RolePolicy(PolicyBase):
    """A Policy whose seats are played by their own adapters (see module doc)."""

    def __init__(self, inner: Any, adapters: RoleAdapters):
        self.inner = inner
        self.adapters = adapters
        self.chat = inner.chat

    @property
    def roles(self) -> tuple[str, ...]:
        return self.adapters.roles

    @property
    def model(self) -> Any:
        return self.adapters.model

    @property
    def version(self) -> int:
        return self.inner.version

    @version.setter
    def version(self, value: int) -> None:
        self.inner.version = value

    def generate_as(
        self, role: str, prompts: Sequence[Sequence[int]], sampling: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[Completion]:
        self.adapters.activate_seat(role)
        return self.inner.generate(prompts, sampling, seeds=seeds)

    def generate(
        self, prompts: Sequence[Sequence[int]], sampling: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[Completion]:
        """Generate with whichever adapter is active (runners call :meth:`generate_as`)."""
        return self.inner.generate(prompts, sampling, seeds=seeds)

    def sync_weights(self, weights: Any, version: int | None = None) -> None:
        self.inner.sync_weights(weights, version)

    def sleep(self) -> None:
        self.inner.sleep()

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.inner.load_state_dict(state)
