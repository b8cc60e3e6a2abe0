"""What a session holds (docs/tools.md, "Sessions"): KV bucket SESSIONS, two keys a session.

| key | record |
|---|---|
| `<session>.conv` | `Conversation`: the summary of compacted exchanges, then the exchanges kept |
| `<session>.lock` | `SessionLock` while a task's loop runs on the session, `SessionFree` after |

Every write is fenced over the whole session (`$KV.<bucket>.<session>.>`), as
the journal's are over a task: the lock and the conversation are one
append-only log with optimistic concurrency (session.py).
"""

import math

import msgspec

from natsfleet.agents.llm.types import ChatMessage
from natsfleet.agents.session_config import SessionConfig
from natsfleet.protocols import Usage


def message_tokens(message: ChatMessage) -> int:
    """An estimate of a message's tokens (characters / 4, as the offline provider counts)."""
    chars = len(message.content) + sum(
        len(c.name) + len(msgspec.json.encode(c.arguments)) for c in message.tool_calls
    )
    return 4 + math.ceil(chars / 4)


class Exchange(msgspec.Struct, frozen=True, kw_only=True):
    """One loop's part of the conversation: its prompt, turns, tool results and answer."""

    n: int
    task_id: str
    loop: int
    messages: tuple[ChatMessage, ...]
    tokens: int
    at_ms: int


class Summary(msgspec.Struct, frozen=True, kw_only=True):
    """What the model made of the compacted exchanges (those numbered below `covers`)."""

    text: str
    covers: int
    tokens: int
    task_id: str
    model: str = ""
    offline: bool = False
    usage: Usage = Usage()
    at_ms: int = 0


class Conversation(msgspec.Struct, frozen=True, kw_only=True, tag="conv"):
    """A session's conversation: the summary (if compacted), then whole exchanges."""

    exchanges: tuple[Exchange, ...] = ()
    summary: Summary | None = None
    next_n: int = 0
    compactions: int = 0
    budget_tokens: int = 0
    updated_ms: int = 0

    @property
    def tokens(self) -> int:
        return sum(e.tokens for e in self.exchanges) + (self.summary.tokens if self.summary else 0)

    def has(self, task_id: str, loop: int) -> bool:
        return any(e.task_id == task_id and e.loop == loop for e in self.exchanges)

    def context(self, task_id: str, loop: int) -> list[ChatMessage]:
        """The messages a loop starts from: every exchange but its own (a retry
        after the exchange was written must not see itself twice)."""
        return [
            m
            for e in self.exchanges
            if not (e.task_id == task_id and e.loop == loop)
            for m in e.messages
        ]


class SessionLock(msgspec.Struct, frozen=True, kw_only=True, tag="lock"):
    """The attempt whose loop runs on the session now (refreshed while it does)."""

    task_id: str
    token: str
    attempt: int
    instance_id: str
    at_ms: int


class SessionFree(msgspec.Struct, frozen=True, kw_only=True, tag="free"):
    """No loop runs on the session: the last holder released it."""

    task_id: str
    at_ms: int


SessionEntry = Conversation | SessionLock | SessionFree

__all__ = [
    "Conversation",
    "Exchange",
    "SessionConfig",
    "SessionEntry",
    "SessionFree",
    "SessionLock",
    "Summary",
    "message_tokens",
]
