"""The dead-letter wrapper published on `dlq.<reason>`."""

import msgspec

from natsfleet.protocols.base import Message
from natsfleet.protocols.errors import DlqReason
from natsfleet.protocols.task import AttemptRecord


class DeadLetter(Message, frozen=True, kw_only=True, tag="dlq.entry"):
    """A message or task that could not be handled, with why.

    The original headers are kept as data, never re-sent as this message's own:
    `Nats-Msg-Id` or `Nats-Expected-*` on the wrapper would dedupe or reject it.
    """

    reason: DlqReason
    subject: str
    error: str
    at_ms: int
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    payload: bytes = b""
    source: str = ""
    task_id: str | None = None
    attempts: tuple[AttemptRecord, ...] = ()
