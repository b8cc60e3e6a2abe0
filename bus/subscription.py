"""A typed subscription: decode at the boundary, dead-letter what is bad, reply typed."""

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Generic, TypeVar

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription

from natsfleet.bus import boundary
from natsfleet.bus.boundary import Handler
from natsfleet.protocols import Codec

if TYPE_CHECKING:
    from natsfleet.bus.connection import Bus

log = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["Handler", "Subscription"]


class Subscription(Generic[T]):
    """One subscription. Messages are handled one at a time unless
    `concurrency` > 1, in which case up to that many run at once and the rest
    wait in the client's pending buffer (bounded; overflow is a slow consumer).
    """

    def __init__(
        self,
        bus: "Bus",
        subject: str,
        codec: Codec[T],
        handler: Handler[T],
        *,
        queue: str,
        concurrency: int,
        max_bytes: int,
    ) -> None:
        self.subject = subject
        self.queue = queue
        self._bus = bus
        self._codec = codec
        self._handler = handler
        self._max_bytes = max_bytes
        self._concurrency = max(1, concurrency)
        self._slots = asyncio.Semaphore(self._concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._sub: NatsSubscription | None = None

    async def start(self) -> None:
        limits = self._bus.config
        self._sub = await self._bus.nc.subscribe(
            self.subject,
            queue=self.queue,
            cb=self._on_message,
            pending_msgs_limit=limits.pending_msgs_limit,
            pending_bytes_limit=limits.pending_bytes_limit,
        )
        # Once start() returns the server knows the interest: a publish from
        # another connection right after is delivered.
        await self._bus.nc.flush()

    async def _on_message(self, msg: Msg) -> None:
        if self._concurrency == 1:
            await boundary.dispatch(
                self._bus, msg, self._codec, self._handler, self._max_bytes, self.queue
            )
            return
        await self._slots.acquire()
        task = asyncio.create_task(self._run_one(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_one(self, msg: Msg) -> None:
        try:
            await boundary.dispatch(
                self._bus, msg, self._codec, self._handler, self._max_bytes, self.queue
            )
        finally:
            self._slots.release()

    async def stop(self, drain: bool = True) -> None:
        """Stop receiving; with `drain`, let handled messages finish. Idempotent."""
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                if drain:
                    await sub.drain()  # type: ignore[no-untyped-call]
                else:
                    await sub.unsubscribe()
        if self._tasks:
            if not drain:
                for task in self._tasks:
                    task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def pending(self) -> int:
        return self._sub.pending_msgs if self._sub is not None else 0
