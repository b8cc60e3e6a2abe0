"""A loop that continues a session: the session's conversation before the prompt,
the loop's exchange appended after its final answer (docs/tools.md, "Sessions").

`run_in_session` holds the session's lock for the whole loop (session.py), so
the turns of two tasks of one session never interleave. A loop that fails
leaves the session as it was; a retry of a task whose exchange was already
written (it died after writing) finds it there and does not add it again.
"""

import time
from collections.abc import Callable
from typing import Any, TypeVar

from natsfleet.agents.llm.types import ChatMessage, LLMRequest, LLMResponse
from natsfleet.agents.loop.compaction import SUMMARY_SYSTEM, compact
from natsfleet.agents.loop.engine import Loop, LoopContext, usage_of
from natsfleet.agents.loop.journal import Journal
from natsfleet.agents.loop.records import TurnRecord
from natsfleet.agents.loop.session import SessionLog
from natsfleet.agents.loop.session_records import Conversation, Exchange, message_tokens

T = TypeVar("T")

# Time kept back from the deadline when waiting for another task's lock: the
# loop itself needs some.
_WAIT_MARGIN_S = 0.5


async def run_in_session(
    ctx: LoopContext,
    session: SessionLog,
    index: int,
    journal: Journal,
    start: Callable[[str], Loop],
    system: str,
    messages: list[ChatMessage],
    output: type[T] | None,
) -> Any:
    """Run the loop `start(system)` makes on the session's conversation, then
    record its exchange (compacted if the session is over its budget)."""
    remaining_s = ctx.remaining_s
    wait_s = None if remaining_s is None else max(0.0, remaining_s - _WAIT_MARGIN_S)
    async with session.hold(wait_s) as conv:
        if session.waited_s > 0.05:
            ctx.progress_event(f"session {session.session_id} waited {session.waited_s:.1f} s")
        base = conv.context(ctx.task_id, index)
        if conv.summary is not None:
            earlier = f"Summary of the earlier conversation in this session: {conv.summary.text}"
            system = f"{system}\n\n{earlier}" if system else earlier
        history = [*base, *messages]
        result = await start(system).run(history, output)
        if not conv.has(ctx.task_id, index):
            exchange = history[len(base) :]
            await session.write_entry(
                "conv", await _extended(ctx, session, journal, index, conv, exchange)
            )
    return result


async def _extended(
    ctx: LoopContext,
    session: SessionLog,
    journal: Journal,
    index: int,
    conv: Conversation,
    messages: list[ChatMessage],
) -> Conversation:
    now_ms = int(time.time() * 1000)
    exchange = Exchange(
        n=conv.next_n,
        task_id=ctx.task_id,
        loop=index,
        messages=tuple(messages),
        tokens=sum(message_tokens(m) for m in messages),
        at_ms=now_ms,
    )
    longer = Conversation(
        exchanges=(*conv.exchanges, exchange),
        summary=conv.summary,
        next_n=conv.next_n + 1,
        compactions=conv.compactions,
        budget_tokens=session.config.budget_tokens,
        updated_ms=now_ms,
    )

    async def summarize(prompt: str, max_tokens: int) -> TurnRecord:
        key = f"{index}.summary"
        journaled = journal.get(key)
        if isinstance(journaled, TurnRecord):
            return journaled
        request = LLMRequest(
            messages=(ChatMessage(role="user", content=prompt),),
            system=SUMMARY_SYSTEM,
            max_tokens=max_tokens,
        )
        response: LLMResponse = await ctx.llm.generate(request)
        record = TurnRecord(
            text=response.text,
            finish_reason=response.finish_reason,
            usage=usage_of(response),
            model=response.model,
            offline=response.offline,
            token=ctx.token,
        )
        await journal.write(key, record)
        ctx.progress_event(f"session {session.session_id} compacted")
        return record

    return await compact(longer, session.config, ctx.task_id, summarize)
