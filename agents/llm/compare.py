"""`compare`: one prompt to several models in parallel, streams side by side.

The logic lives here (the CLI only renders): each model gets its own lane,
pinned with no fallback and no cache, so the numbers are that model's own.
A failing lane ends with a `StreamFailed` event instead of raising.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import aclosing

import msgspec

from natsfleet.agents.llm.errors import LLMError
from natsfleet.agents.llm.router import Router
from natsfleet.agents.llm.types import (
    Done,
    LLMRequest,
    LLMResponse,
    StreamEvent,
    StreamFailed,
    TextDelta,
)

#: Called with (model name, event) as each lane's events arrive.
LaneSink = Callable[[str, StreamEvent], Awaitable[None]]


class LaneResult(msgspec.Struct, frozen=True, kw_only=True):
    """One model's outcome: its text, timing, tokens and cost, or its error."""

    model: str
    text: str
    response: LLMResponse | None = None
    error: StreamFailed | None = None
    first_chunk_ms: float | None = None
    latency_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


async def _lane(
    router: Router,
    request: LLMRequest,
    model: str,
    deadline: float | None,
    sink: LaneSink | None,
) -> LaneResult:
    pinned = msgspec.structs.replace(request, model=model, cache=False)
    started = time.monotonic()
    first: float | None = None
    parts: list[str] = []
    response: LLMResponse | None = None
    error: StreamFailed | None = None
    try:
        events = router.stream(pinned, deadline=deadline, fallback=False)
        async with aclosing(events):
            async for event in events:
                if isinstance(event, TextDelta):
                    if first is None:
                        first = (time.monotonic() - started) * 1000.0
                    parts.append(event.text)
                elif isinstance(event, Done):
                    response = event.response
                if sink is not None:
                    await sink(model, event)
    except LLMError as exc:
        error = StreamFailed(
            error_type=type(exc).__name__, detail=str(exc), retryable=exc.retryable
        )
        if sink is not None:
            await sink(model, error)
    return LaneResult(
        model=model,
        text="".join(parts),
        response=response,
        error=error,
        first_chunk_ms=first,
        latency_ms=(time.monotonic() - started) * 1000.0,
    )


async def compare(
    router: Router,
    request: LLMRequest,
    models: Sequence[str],
    *,
    timeout_s: float | None = None,
    sink: LaneSink | None = None,
) -> list[LaneResult]:
    """Stream `request` to every model at once; results in the order of `models`."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    async with asyncio.TaskGroup() as group:
        lanes = [group.create_task(_lane(router, request, m, deadline, sink)) for m in models]
    return [lane.result() for lane in lanes]
