"""Reading what the supervisor left behind: DLQ entries, task records, effects."""

import asyncio
import time
from collections.abc import Iterable
from pathlib import Path

from nats.aio.msg import Msg
from nats.js import api as js_api

from natsfleet.bus import Bus
from natsfleet.protocols import Codec, DeadLetter, Stream, TaskEvent, is_terminal

_DEAD = Codec[DeadLetter](DeadLetter)
_EVENT = Codec[TaskEvent](TaskEvent)


async def dead_letters(bus: Bus) -> list[DeadLetter]:
    stream = bus.subjects.stream(Stream.DLQ)
    info = await bus.js.stream_info(stream)
    found: list[DeadLetter] = []
    if info.state.last_seq == 0:
        return found
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await bus.js.get_msg(stream, seq)
        found.append(_DEAD.decode(msg.data or b""))
    return found


def effects(root: Path) -> tuple[list[str], list[str]]:
    """(raw executions, deduplicated effects) recorded by the mini agent."""
    raw = (root / "raw.log").read_text().split("\n") if (root / "raw.log").exists() else []
    done = (
        sorted(p.name for p in (root / "effects").glob("*")) if (root / "effects").exists() else []
    )
    return [line for line in raw if line], done


async def terminal_events(
    bus: Bus, expect: Iterable[str] = (), timeout_s: float = 10.0
) -> dict[str, list[TaskEvent]]:
    """Every terminal event in the EVENTS stream, by task.

    A live subscriber can see an event before the stream has stored it (the
    server routes a publish to subscribers and queues it for the stream at
    once), so reading stops at the stream's last sequence only once every
    task in `expect` has shown up, or `timeout_s` has passed.
    """
    stream = bus.subjects.stream(Stream.EVENTS)
    found: dict[str, list[TaskEvent]] = {}
    missing = set(expect)
    deadline = time.monotonic() + timeout_s
    info = await bus.js.stream_info(stream)
    while info.state.messages == 0 and missing and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        info = await bus.js.stream_info(stream)
    if info.state.messages == 0:
        return found
    sub = await bus.js.subscribe(
        bus.subjects.all_events(), stream=stream, ordered_consumer=True,
        deliver_policy=js_api.DeliverPolicy.ALL,
    )  # fmt: skip
    try:
        while True:
            msg = await sub.next_msg(timeout=5)
            event = _EVENT.decode(msg.data)
            if is_terminal(event.state):
                found.setdefault(event.task_id, []).append(event)
                missing.discard(event.task_id)
            if msg.metadata.sequence.stream >= info.state.last_seq:
                if not missing or time.monotonic() >= deadline:
                    return found
                info = await bus.js.stream_info(stream)
                while info.state.last_seq <= msg.metadata.sequence.stream:
                    if time.monotonic() >= deadline:
                        return found
                    await asyncio.sleep(0.05)
                    info = await bus.js.stream_info(stream)
    finally:
        await sub.unsubscribe()


class Tracker:
    """Collects live terminal events; `done(n)` waits until n tasks ended."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.ended: dict[str, TaskEvent] = {}
        self._changed = asyncio.Event()

    async def start(self) -> None:
        async def on_event(msg: Msg) -> None:
            event = _EVENT.decode(msg.data)
            if is_terminal(event.state):
                self.ended[event.task_id] = event
                self._changed.set()

        # From the EVENTS stream, not a plain subscription: terminal events
        # published while this connection reconnects (a server restart in
        # the test) must not be missed.
        await self.bus.js.subscribe(
            self.bus.subjects.all_events(),
            stream=self.bus.subjects.stream(Stream.EVENTS),
            cb=on_event,
            ordered_consumer=True,
            deliver_policy=js_api.DeliverPolicy.NEW,
        )

    async def done(self, count: int, timeout_s: float) -> None:
        async def wait() -> None:
            while len(self.ended) < count:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), timeout_s)
