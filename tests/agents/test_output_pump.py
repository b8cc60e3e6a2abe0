"""The output pump (agents/output.py) into a real OUTPUT stream: an attempt's
last flush waits for a flush of the same attempt still being stored."""

import asyncio

from natsfleet.agents.output import OutputBuffer, OutputPump
from natsfleet.bus import Bus
from natsfleet.client.output import follow
from natsfleet.protocols import Message, OutputChunk, Progress


async def test_closing_an_attempt_waits_for_its_flush_in_flight(bus: Bus) -> None:
    # The pump's flush of (text "a", progress) is being stored, its first
    # ack slow, when the attempt ends and its last text is flushed. The
    # runtime publishes the outcome once close() returns: by then every piece
    # must be stored, in sequence order, or a watcher could end before the
    # late piece and see pieces out of order.
    task_id = "01PUMP"
    subject = bus.subjects.output("echo", "i1", task_id)
    slow_ack = asyncio.Event()
    first_sent = asyncio.Event()
    stored: list[int] = []

    async def publish(subject: str, message: Message) -> None:
        assert isinstance(message, OutputChunk | Progress)
        if not first_sent.is_set():
            first_sent.set()
            await slow_ack.wait()
        await bus.publish_js(subject, message, msg_id=f"{task_id}:t:{message.seq}")
        stored.append(message.seq)

    pump = OutputPump(publish, flush_interval_s=0.001)
    running = asyncio.create_task(pump.run())
    try:
        buffer = OutputBuffer(subject, task_id, "t", pump, attempt=1)
        buffer.add_text("a")
        buffer.set_progress(0.5, "half")
        await asyncio.wait_for(first_sent.wait(), 5)
        buffer.add_text("b")
        closing = asyncio.create_task(pump.close(buffer))
        done, _ = await asyncio.wait({closing}, timeout=0.3)
        assert not done, "close() returned while a flush of the attempt was still unstored"
        slow_ack.set()
        await asyncio.wait_for(closing, 5)
        assert stored == [1, 2, 3]
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)

    async def ended() -> None:
        return None

    items = [item async for item in follow(bus, task_id, ended)]
    assert [item.message.seq for item in items] == [1, 2, 3]
    final = items[-1].message
    assert isinstance(final, OutputChunk) and final.final and final.text == "b"
