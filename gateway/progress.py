"""A call's progress: the task's `Progress` and partial output, relayed in order.

A plain subscription to the task's output subject (the call waits for the
terminal event itself; `FleetClient.output` would open a second watch). The
queue is bounded: a skill that streams faster than the MCP client reads loses
progress lines (counted in the log), never gateway memory. When the task
ends, what is queued is still sent (briefly) before the result.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from natsfleet.bus import Subscription
from natsfleet.client import FleetClient
from natsfleet.protocols import Codec, OutputChunk, Progress, TaskOutput, check_id

log = logging.getLogger(__name__)

_OUTPUT = Codec[TaskOutput](TaskOutput)
#: The longest progress message relayed (partial output is cut to it).
PROGRESS_MESSAGE_MAX_CHARS = 1000
#: Updates held for a slow client at most; later ones are dropped.
MAX_QUEUED = 1000

#: `report(progress, total, message)`: one MCP progress notification.
Report = Callable[[float, float | None, str | None], Awaitable[None]]


def progress_message(item: OutputChunk | Progress) -> str | None:
    if isinstance(item, Progress):
        shown = f"{item.fraction:.0%}" if item.fraction is not None else ""
        return " ".join(p for p in (shown, item.note) if p)[:PROGRESS_MESSAGE_MAX_CHARS] or None
    return item.text[:PROGRESS_MESSAGE_MAX_CHARS] or None


class ProgressRelay:
    """Follows one task's output and reports it; `close()` ends it."""

    def __init__(self, client: FleetClient, report: Report) -> None:
        self.client = client
        self.report = report
        self._queue: asyncio.Queue[OutputChunk | Progress | None] = asyncio.Queue(MAX_QUEUED + 1)
        self._sub: Subscription[TaskOutput] | None = None
        self._forwarder: asyncio.Task[None] | None = None
        self._dropped = 0

    async def follow(self, task_id: str) -> None:
        """Subscribe to `task_id`'s output (instead of a task followed before)."""
        check_id(task_id, "task id")  # it becomes a subject token
        await self._unsubscribe()
        bus = self.client.bus
        self._sub = await bus.subscribe(bus.subjects.task_output(task_id), _OUTPUT, self._on_output)
        if self._forwarder is None:
            self._forwarder = asyncio.create_task(self._forward(task_id))

    async def _on_output(self, message: TaskOutput, _: object) -> None:
        if self._queue.qsize() >= MAX_QUEUED:
            self._dropped += 1
            return
        self._queue.put_nowait(message)

    async def _forward(self, task_id: str) -> None:
        count = 0
        while (item := await self._queue.get()) is not None:
            count += 1
            try:
                await self.report(float(count), None, progress_message(item))
            except Exception as exc:  # the response stream is gone: nothing left to tell
                log.debug("progress of %s no longer relayed: %r", task_id, exc)
                return

    async def close(self, drain_s: float = 0.0) -> None:
        """Stop following; with `drain_s`, send what is queued for at most that long."""
        await self._unsubscribe()
        forwarder, self._forwarder = self._forwarder, None
        if forwarder is None:
            return
        self._queue.put_nowait(None)  # room kept for it (maxsize MAX_QUEUED + 1)
        if drain_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(forwarder), drain_s)
        forwarder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await forwarder
        if self._dropped:
            log.info("%d progress updates dropped (client too slow)", self._dropped)

    async def _unsubscribe(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            await self.client.bus.unsubscribe(sub, drain=False)
