"""What a handler learns about a message besides its decoded value."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nats.aio.msg import Msg

    from natsfleet.bus.transport import Transport


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
    # What acknowledges it (the bus's transport); None: not a JetStream message.
    transport: "Transport | None" = field(default=None, repr=False)
    # Acked, nak'ed or terminated: a JetStream message is settled once.
    settled: bool = field(default=False, repr=False)

    @property
    def size(self) -> int:
        return len(self.data)

    async def ack(self) -> None:
        raw = self.raw
        if raw is not None and raw.reply and not self.settled:
            if self.transport is not None:
                await self.transport.ack(raw)
            else:
                await raw.ack()
            self.settled = True

    async def nak(self, delay_s: float | None = None) -> None:
        if self.raw is not None and self.raw.reply and not self.settled:
            await self.raw.nak(delay=delay_s)
            self.settled = True

    async def term(self) -> None:
        if self.raw is not None and self.raw.reply and not self.settled:
            await self.raw.term()
            self.settled = True

    async def in_progress(self) -> None:
        if self.raw is not None and self.raw.reply:
            await self.raw.in_progress()
