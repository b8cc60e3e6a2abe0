"""Pulling from a durable JetStream consumer with pull requests kept outstanding.

nats-py's `fetch` is a loop of round trips: each call sends a `no_wait` probe,
then a long pull, and waits for every message with its own `wait_for`. Under
load that is a pull round trip and a timer per batch on the hot path; idle, it
is a probe every second. Here pull requests stay outstanding on the server, so
a message is delivered the moment it is stored, and a new request is sent when
enough credit has come back (as nats.go's `Consume` does).

Each request has its own reply subject under one wildcard subscription, so a
status (heartbeat, 408 expired, 409/503 refused) names its request; stored
messages keep their own subject and are counted against the oldest request,
which is the one the server serves first. A request ends when it has
delivered its batch, expired or was refused. Credit
is `limit`: messages requested but not yet delivered plus messages delivered
but not yet settled by their handler never exceed it (the handler calls
`done()`), which bounds both the handlers running and `max_ack_pending` use.

Liveness: every request asks for idle heartbeats; a request silent for
`2 * heartbeat_s + 1` s (the server restarted and forgot it, the connection
was replaced, the consumer was deleted) is dropped and the consumer checked
(re-created when gone) before pulling again. A reconnect drops them all at
once.
"""

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from natsfleet.bus.incoming import header

log = logging.getLogger(__name__)

_STATUS = "Status"
_DESCRIPTION = "Description"
_HEARTBEAT = "100"
# 404 no messages (no_wait only), 408 expired, 409 refused (max waiting,
# consumer deleted, leadership change, ...), 503 JetStream not available.
_ENDS_REQUEST = frozenset({"404", "408", "409", "503"})


class _PullRequest(msgspec.Struct, omit_defaults=True):
    batch: int
    expires: int
    idle_heartbeat: int


@dataclass(slots=True)
class _Outstanding:
    wanted: int
    seen: float


class PullLoop:
    """Messages of one durable consumer, handed to `on_message` as they arrive.

    `on_message` is called from the subscription's task, in stream order; it
    must be quick (start a task for slow work) and every message it is given
    must eventually be followed by one `done()` call, which returns its credit.
    `ensure_consumer` creates or binds the durable consumer; it is called
    before the first pull and whenever the consumer may have gone.
    """

    def __init__(
        self,
        nc: NatsClient,
        next_subject: str,
        on_message: Callable[[Msg], Awaitable[None]],
        ensure_consumer: Callable[[], Awaitable[None]],
        *,
        limit: int,
        expires_s: float = 10.0,
        heartbeat_s: float = 1.0,
        retry_s: float = 0.5,
        name: str = "",
    ) -> None:
        self._nc = nc
        self._next_subject = next_subject
        self._on_message = on_message
        self._ensure_consumer = ensure_consumer
        self._limit = limit
        self._expires_s = expires_s
        self._heartbeat_s = heartbeat_s
        self._retry_s = retry_s
        self._name = name
        self._prefix = ""
        self._ids = itertools.count(1)
        self._requests: dict[str, _Outstanding] = {}
        self._requested = 0  # asked for, not yet delivered
        self._held = 0  # delivered, not yet done()
        self._sub: Subscription | None = None
        self._wake = asyncio.Event()
        self._check = False  # the consumer may be gone: ensure before pulling
        self._failing_since: float | None = None

    @property
    def held(self) -> int:
        return self._held

    async def start(self) -> None:
        self._prefix = self._nc.new_inbox() + "."
        # Credit bounds what can be pending here; no client-side limit is
        # needed (a dropped message would only come back after ack_wait).
        self._sub = await self._nc.subscribe(
            self._prefix + "*", cb=self._deliver, pending_msgs_limit=-1, pending_bytes_limit=-1
        )
        self._wake.set()  # the first pull goes out at once

    def done(self) -> None:
        """A delivered message was settled (or abandoned): its credit comes back."""
        self._held -= 1
        if self._free() >= self._threshold():
            self._wake.set()

    def reset(self) -> None:
        """Forget every outstanding request (e.g. after a reconnect) and pull again."""
        self._requests.clear()
        self._requested = 0
        self._check = True
        self._wake.set()

    async def run(self) -> None:
        """Keep requests outstanding until cancelled."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._heartbeat_s)
            self._wake.clear()
            self._drop_silent()
            if self._check:
                if not await self._ensure():
                    await asyncio.sleep(self._retry_s)
                    self._wake.set()
                    continue
            free = self._free()
            if free > 0 and (free >= self._threshold() or not self._requests):
                await self._pull(free)

    async def stop(self) -> None:
        if self._sub is not None:
            sub, self._sub = self._sub, None
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    # -- internals ------------------------------------------------------------------

    def _free(self) -> int:
        return self._limit - self._requested - self._held

    def _threshold(self) -> int:
        return max(1, self._limit // 4)

    async def _ensure(self) -> bool:
        try:
            await self._ensure_consumer()
        except (nats.errors.Error, TimeoutError) as exc:
            self._failed(exc)
            return False
        self._check = False
        return True

    async def _pull(self, batch: int) -> None:
        token = str(next(self._ids))
        request = _PullRequest(
            batch=batch,
            expires=int(self._expires_s * 1e9),
            idle_heartbeat=int(self._heartbeat_s * 1e9),
        )
        try:
            await self._nc.publish(
                self._next_subject, msgspec.json.encode(request), reply=self._prefix + token
            )
        except nats.errors.Error as exc:  # reconnecting: the wake-up after it pulls again
            self._failed(exc)
            return
        self._requests[token] = _Outstanding(wanted=batch, seen=time.monotonic())
        self._requested += batch

    def _drop_silent(self) -> None:
        # The server sends a heartbeat every heartbeat_s while a request idles;
        # a request that said nothing for much longer no longer exists there.
        cutoff = time.monotonic() - (2 * self._heartbeat_s + 1.0)
        for token, request in list(self._requests.items()):
            if request.seen < cutoff:
                self._end(token)
                self._check = True

    def _end(self, token: str) -> None:
        request = self._requests.pop(token, None)
        if request is not None:
            self._requested -= request.wanted

    async def _deliver(self, msg: Msg) -> None:
        status = header(msg.headers, _STATUS) if msg.headers and not msg.data else None
        if status is not None:
            # Status messages come on the request's own reply subject.
            token = msg.subject[len(self._prefix) :]
            request = self._requests.get(token)
            if request is not None:
                request.seen = time.monotonic()
            if status == _HEARTBEAT:
                return
            if status in _ENDS_REQUEST:
                self._end(token)
                if status != "408":
                    description = header(msg.headers, _DESCRIPTION) or ""
                    self._failed(nats.js.errors.APIError(code=int(status), description=description))
                    self._check = True
                self._wake.set()
            return
        # Stored messages keep their own subject, so they cannot name their
        # request; the server serves waiting requests in order, oldest first.
        if self._requests:
            token, request = next(iter(self._requests.items()))
            request.seen = time.monotonic()
            request.wanted -= 1
            self._requested -= 1
            if request.wanted == 0:
                del self._requests[token]
        # A message of a request we dropped still holds credit until done().
        self._held += 1
        if self._failing_since is not None:
            log.info(
                "consumer %s: receiving again after %.1f s",
                self._name,
                time.monotonic() - self._failing_since,
            )
            self._failing_since = None
        await self._on_message(msg)

    def _failed(self, exc: BaseException) -> None:
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.warning("consumer %s: %s; retrying", self._name, _describe(exc))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
