"""What a handler learns about a message besides its decoded value."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from natsfleet.bus import wire

if TYPE_CHECKING:
    from nats.aio.msg import Msg


def header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    """One header's value. nats-py gives `str` values, or lists of them when
    the optional fast-mail-parser is installed; accept both."""
    if not headers:
        return None
    value = headers.get(name)
    if isinstance(value, list):
        return str(value[0]) if value else None
    return value if value is None else str(value)


def normalized(headers: Mapping[str, Any] | None) -> dict[str, str]:
    """Headers as `dict[str, str]` whichever parser nats-py used."""
    if not headers:
        return {}
    if all(type(value) is str for value in headers.values()):
        # nats-py builds a fresh dict per message: no copy needed.
        return headers if isinstance(headers, dict) else dict(headers)
    return {name: header(headers, name) or "" for name in headers}


@dataclass(slots=True)
class Incoming:
    """The envelope of a received message."""

    subject: str
    reply: str
    headers: dict[str, str]
    data: bytes
    # The nats-py message, for JetStream acks and metadata.
    raw: "Msg | None" = field(default=None, repr=False)

    @property
    def size(self) -> int:
        return len(self.data)

    async def ack(self) -> None:
        raw = self.raw
        if raw is not None and raw.reply and not raw._ackd:
            # What `Msg.ack` sends (an empty message to the ack subject), on
            # the hot path's publish: one per Submit and per RESULTS message.
            await wire.publish_plain(raw._client, raw.reply, b"")
            raw._ackd = True

    async def nak(self, delay_s: float | None = None) -> None:
        if self.raw is not None and self.raw.reply and not self.raw._ackd:
            await self.raw.nak(delay=delay_s)

    async def term(self) -> None:
        if self.raw is not None and self.raw.reply and not self.raw._ackd:
            await self.raw.term()

    async def in_progress(self) -> None:
        if self.raw is not None and self.raw.reply:
            await self.raw.in_progress()
