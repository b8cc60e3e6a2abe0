"""A pull consumer in plain nats-py for the claim prototypes (bench/claim_proto.py):
pull requests kept outstanding on the server, their credit = the agent's capacity."""

import asyncio
import json
from collections.abc import Callable, Coroutine
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg


class Puller:
    """Pull requests kept outstanding on the server, up to `credit` messages
    requested or being handled; each message is handled in its own task."""

    def __init__(
        self,
        nc: Client,
        stream: str,
        credit: int,
        handle: Callable[[Msg], Coroutine[Any, Any, None]],
        consumer: str = "agents",
    ) -> None:
        self.nc, self.credit, self.handle = nc, credit, handle
        self.requested = 0
        self.busy = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.refills: set[asyncio.Task[None]] = set()
        self.api = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self.inbox = ""
        self.error: BaseException | None = None
        self.failed = asyncio.Event()  # a handler raised: the process should exit non-zero

    async def start(self) -> None:
        self.inbox = self.nc.new_inbox()
        await self.nc.subscribe(self.inbox, cb=self._on_msg)
        await self._refill(force=True)

    async def _refill(self, *, force: bool = False) -> None:
        free = self.credit - self.requested - self.busy
        if free > 0 and (force or free >= max(1, self.credit // 4)):
            self.requested += free
            body = json.dumps({"batch": free, "expires": 5_000_000_000}).encode()
            await self.nc.publish(self.api, body, reply=self.inbox)

    async def _on_msg(self, msg: Msg) -> None:
        status = (msg.headers or {}).get("Status")
        if status is not None:  # a request ended (408 expired, 409 ...) with some unfilled
            # (A request refused whole, e.g. 409 Exceeded MaxWaiting, names no
            # pending count and its credit stays counted: a prototype's limit.)
            if status != "100":
                pending = int((msg.headers or {}).get("Nats-Pending-Messages", "0"))
                self.requested = max(0, self.requested - pending)
                await self._refill(force=True)
            return
        self.requested -= 1
        self.busy += 1
        task = asyncio.get_running_loop().create_task(self.handle(msg))
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.busy -= 1
        if not task.cancelled() and task.exception() is not None:
            self.error = task.exception()
            self.failed.set()
            return
        refill = asyncio.get_running_loop().create_task(self._refill())
        self.refills.add(refill)  # held until done: the loop keeps only a weak reference
        refill.add_done_callback(self.refills.discard)
