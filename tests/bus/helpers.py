import asyncio
from typing import Any

from nats.js import api as js_api

from natsfleet.bus import Bus
from natsfleet.protocols import Codec, DeadLetter, Stream


async def dead_letters(bus: Bus, count: int, timeout_s: float = 5.0) -> list[DeadLetter]:
    """Read the first `count` entries of the DLQ stream, waiting for them."""
    codec = Codec[DeadLetter](DeadLetter)
    sub = await bus.js.subscribe(
        bus.subjects.all_dlq(),
        stream=bus.subjects.stream(Stream.DLQ),
        ordered_consumer=True,
        deliver_policy=js_api.DeliverPolicy.ALL,
    )
    entries: list[DeadLetter] = []
    try:
        async with asyncio.timeout(timeout_s):
            while len(entries) < count:
                msg = await sub.next_msg(timeout=timeout_s)
                assert "Nats-Msg-Id" not in (msg.headers or {})
                entries.append(codec.decode(msg.data))
    finally:
        await sub.unsubscribe()
    return entries


def collect() -> tuple[list[Any], asyncio.Event]:
    return [], asyncio.Event()
