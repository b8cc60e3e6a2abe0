"""Compaction: a session over its token budget gets its oldest exchanges summarised.

The newest exchanges are kept whole while they fill at most
`keep_fraction` of the budget; the others, with the previous summary, are
summarised by the model (through the same router, so the offline provider
too) into at most the room left, and the summary replaces them. The
summary's model call is journaled like a turn (`<loop>.summary`): a retry
replays it instead of asking again. So a compacted conversation is always
within its budget (a summary longer than its room is cut).
"""

import math
import time
from collections.abc import Awaitable, Callable, Sequence

import msgspec

from natsfleet.agents.llm.types import ChatMessage
from natsfleet.agents.loop.records import TurnRecord
from natsfleet.agents.loop.session_records import Conversation, Exchange, Summary
from natsfleet.agents.session_config import SessionConfig

#: Makes the summary: (the prompt, the most tokens it may use) -> the model's answer.
Summarizer = Callable[[str, int], Awaitable[TurnRecord]]

SUMMARY_SYSTEM = (
    "You compact a conversation for whoever continues it. Summarise it in a few "
    "sentences: keep the user's requests, names, dates, numbers, decisions made "
    "and what is still open. Answer with the summary only."
)


def summary_tokens(text: str) -> int:
    """Tokens a summary counts for (as `message_tokens` counts a message)."""
    return 4 + math.ceil(len(text) / 4)


def transcript_line(message: ChatMessage) -> str:
    """One message as a line a summarising model reads: its role, its text and
    the tool calls it asked for."""
    text = message.content
    if message.tool_calls:
        text += " " + " ".join(
            f"[calls {c.name} {msgspec.json.encode(c.arguments).decode()}]"
            for c in message.tool_calls
        )
    return f"{message.role}: {text.strip()}"


def transcript(previous: Summary | None, exchanges: Sequence[Exchange]) -> str:
    lines = [f"Summary so far: {previous.text}"] if previous is not None else []
    lines += (transcript_line(m) for exchange in exchanges for m in exchange.messages)
    return "\n".join(lines)


def split(conv: Conversation, config: SessionConfig) -> tuple[int, int]:
    """(how many of the oldest exchanges to summarise, the tokens the kept ones use)."""
    keep_tokens = int(config.budget_tokens * config.keep_fraction)
    kept = 0
    used = 0
    for exchange in reversed(conv.exchanges):
        if used + exchange.tokens > keep_tokens:
            break
        kept += 1
        used += exchange.tokens
    return len(conv.exchanges) - kept, used


async def compact(
    conv: Conversation, config: SessionConfig, task_id: str, summarize: Summarizer
) -> Conversation:
    """`conv` itself if within budget, else compacted (module docstring)."""
    if conv.tokens <= config.budget_tokens:
        return conv
    dropped, kept_tokens = split(conv, config)
    room = config.budget_tokens - kept_tokens
    answer = await summarize(transcript(conv.summary, conv.exchanges[:dropped]), max(16, room - 4))
    text = answer.text.strip()
    max_chars = max(0, (room - 4) * 4)
    if len(text) > max_chars:
        text = text[: max(0, max_chars - 3)] + "..."
    kept = conv.exchanges[dropped:]
    summary = Summary(
        text=text,
        covers=kept[0].n if kept else conv.next_n,
        tokens=summary_tokens(text),
        task_id=task_id,
        model=answer.model,
        offline=answer.offline,
        usage=answer.usage,
        at_ms=int(time.time() * 1000),
    )
    return msgspec.structs.replace(
        conv, exchanges=kept, summary=summary, compactions=conv.compactions + 1
    )
