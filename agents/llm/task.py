"""`TaskLLM`: the router bound to one task, as the agent runtime's `ctx.llm`.

It knows the task's remaining time (each call is bounded by it), its budget
(checked before and after each call) and its ledger (the `Usage` that goes
into the task's Result), and forwards streamed text to the runtime's chunk
sink, which batches it onto `out.<type>.<inst>.<task>`.
"""

import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import TYPE_CHECKING

from natsfleet.agents.llm.governor import CallScope
from natsfleet.agents.llm.ledger import Ledger
from natsfleet.agents.llm.types import Done, LLMRequest, LLMResponse, StreamEvent, TextDelta, Tier
from natsfleet.agents.llm.types import user as _user
from natsfleet.protocols import Usage

if TYPE_CHECKING:
    from natsfleet.agents.llm.router import Router

#: Where streamed text goes; the runtime batches it into OutputChunk messages.
ChunkSink = Callable[[str], Awaitable[None]]


class TaskLLM:
    """One task's access to the LLM layer. Not shared between tasks.

    Args:
        router: the process's router.
        task_id: names the ledger scope (`task <id>`).
        remaining_s: the task's remaining time (from `Assign.remaining_ms`); None = unbounded.
        budget_usd: the task's budget (from `Assign.budget_usd`); None = unlimited.
        parent: the workflow's ledger when it lives in this process (sub-tasks roll up).
        on_chunk: async sink for streamed text.
        workflow_id: the task's workflow run: with a fleet governor, its budget
            is also held fleet-wide for the run.
        tenant: whom the task is for: the governor's per-tenant limits and budgets.
    """

    def __init__(
        self,
        router: "Router",
        *,
        task_id: str,
        remaining_s: float | None = None,
        budget_usd: float | None = None,
        parent: Ledger | None = None,
        on_chunk: ChunkSink | None = None,
        workflow_id: str | None = None,
        tenant: str | None = None,
    ) -> None:
        self.router = router
        self.task_id = task_id
        self.deadline = None if remaining_s is None else time.monotonic() + remaining_s
        scope = f"task {task_id}"
        self.ledger = (
            parent.child(scope, budget_usd=budget_usd)
            if parent is not None
            else Ledger(scope, budget_usd=budget_usd)
        )
        self.on_chunk = on_chunk
        self.scope = CallScope(
            task_id=task_id, task_budget_usd=budget_usd, run_id=workflow_id, tenant=tenant
        )

    @property
    def usage(self) -> Usage:
        """Calls, tokens and cost so far: put this in the task's Result."""
        return self.ledger.usage

    def remaining_s(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """A complete answer (no streaming to the sink)."""
        return await self.router.complete(
            request, deadline=self.deadline, ledger=self.ledger, scope=self.scope
        )

    async def stream(self, request: LLMRequest) -> AsyncGenerator[StreamEvent, None]:
        """Stream events; text deltas also go to the chunk sink as they arrive."""
        events = self.router.stream(
            request, deadline=self.deadline, ledger=self.ledger, scope=self.scope
        )
        async with aclosing(events):
            async for event in events:
                if isinstance(event, TextDelta) and self.on_chunk is not None:
                    await self.on_chunk(event.text)
                yield event

    async def generate(self, request: LLMRequest) -> LLMResponse:
        """Stream to the sink if there is one, else complete; returns the full response."""
        if self.on_chunk is None:
            return await self.complete(request)
        response: LLMResponse | None = None
        async for event in self.stream(request):
            if isinstance(event, Done):
                response = event.response
        assert response is not None  # a stream that ends without Done raises instead
        return response

    async def ask(
        self,
        prompt: str,
        *,
        system: str = "",
        tier: Tier | None = None,
        max_tokens: int = 1024,
    ) -> str:
        """The shortest path for a skill: one prompt in, the text out (streamed if a sink)."""
        request = _user(prompt, system=system, tier=tier, max_tokens=max_tokens)
        return (await self.generate(request)).text
