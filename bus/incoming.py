"""What a handler learns about a message besides its decoded value."""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nats.aio.msg import Msg


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
        if self.raw is not None and self.raw.reply and not self.raw._ackd:
            await self.raw.ack()

    async def nak(self, delay_s: float | None = None) -> None:
        if self.raw is not None and self.raw.reply and not self.raw._ackd:
            await self.raw.nak(delay=delay_s)

    async def term(self) -> None:
        if self.raw is not None and self.raw.reply and not self.raw._ackd:
            await self.raw.term()

    async def in_progress(self) -> None:
        if self.raw is not None and self.raw.reply:
            await self.raw.in_progress()
