"""Pulling from a durable JetStream consumer with pull requests kept outstanding.

nats-py's `fetch` is a loop of round trips: each call sends a `no_wait` probe,
then a long pull, and waits for every message with its own `wait_for`. Under
load that is a pull round trip and a timer per batch on the hot path; idle, it
is a probe every second. Here pull requests stay outstanding on the server, so
a message is delivered the moment it is stored, and a new request is sent when
enough credit has come back (as nats.go's `Consume` does).

Credit is `limit`: messages requested but not yet delivered plus messages
delivered but not yet settled by their handler (`done()`), which bounds the
handlers running and `max_ack_pending` use. Outstanding credit is counted as
a total, not per request: the server serves its waiting requests round-robin
and a stored message keeps its own subject, so a message cannot name its
request. Every message takes one from the total; a request that ends early
(408 expired, 409 refused, 503 JetStream away) arrives as a status on its own
reply subject and gives back what the server still owed it
(`Nats-Pending-Messages`, or all it asked for when refused unserved).

Liveness: every request asks for idle heartbeats. When credit is outstanding
and nothing at all (message, heartbeat, status) has arrived for
`2 * heartbeat_s + 1` s, the server has forgotten the requests (it restarted,
the connection was replaced, the consumer was deleted): all of it is written
off, the consumer checked (re-created when gone) and pulled again. A
reconnect does the same at once. Should old requests have survived after all,
at most one more `limit` of messages arrives; `max_ack_pending` still bounds
it. Statuses are read in the subscription callback, which never waits for a
handler (`on_message` must return at once), so a slow handler cannot make a
live request look dead.
"""

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from natsfleet.bus.errors import describe
from natsfleet.bus.incoming import header
from natsfleet.bus.transport import Transport
from natsfleet.process.loop import wait_event

log = logging.getLogger(__name__)

_STATUS = "Status"
_DESCRIPTION = "Description"
_HEARTBEAT = "100"
_PENDING = "Nats-Pending-Messages"
# 404 no messages (no_wait only), 408 expired, 409 refused (max waiting,
# consumer deleted, leadership change, ...), 503 JetStream not available.
_ENDS_REQUEST = frozenset({"404", "408", "409", "503"})


class _PullRequest(msgspec.Struct, omit_defaults=True):
    batch: int
    expires: int
    idle_heartbeat: int


class PullLoop:
    """Messages of one durable consumer, handed to `on_message` as they arrive.

    `on_message` is called from the subscription's task, in stream order; it
    must return at once (queue the message or start a task) and every message
    it is given must eventually be followed by one `done()` call, which
    returns its credit.
    `ensure_consumer` creates or binds the durable consumer; it is called
    before the first pull and whenever the consumer may have gone.
    """

    def __init__(
        self,
        transport: Transport,
        next_subject: str,
        on_message: Callable[[Msg], None],
        ensure_consumer: Callable[[], Awaitable[None]],
        *,
        limit: int,
        expires_s: float = 10.0,
        heartbeat_s: float = 1.0,
        retry_s: float = 0.5,
        name: str = "",
    ) -> None:
        self._transport = transport
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
        # Requests that may still be open on the server: token -> batch asked.
        self._requests: dict[str, int] = {}
        self._requested = 0  # asked for, not yet delivered (all requests)
        self._heard = time.monotonic()  # anything at all from the server
        self._held = 0  # delivered, not yet done()
        self._sub: Subscription | None = None
        self._wake = asyncio.Event()
        self._check = False  # the consumer may be gone: ensure before pulling
        self._failing_since: float | None = None

    @property
    def held(self) -> int:
        """Messages delivered and not yet settled."""
        return self._held

    @property
    def outstanding(self) -> int:
        """Messages requested and not yet delivered."""
        return self._requested

    async def start(self) -> None:
        self._prefix = self._transport.new_inbox() + "."
        # Delivered straight to `_deliver` as read (no client-side queue to
        # overflow); credit bounds what is held.
        self._sub = await self._transport.subscribe(self._prefix + "*", self._deliver)
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
            await wait_event(self._wake, self._heartbeat_s)
            self._wake.clear()
            self._check_alive()
            if self._check:
                if not await self._ensure():
                    await asyncio.sleep(self._retry_s)
                    self._wake.set()
                    continue
            free = self._free()
            if free > 0 and (free >= self._threshold() or self._requested == 0):
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
            await self._transport.publish(
                self._next_subject, msgspec.json.encode(request), None, self._prefix + token
            )
        except nats.errors.Error as exc:  # reconnecting: the wake-up after it pulls again
            self._failed(exc)
            return
        if self._requested == 0:
            self._heard = time.monotonic()  # a new stretch of outstanding credit
        self._requests[token] = batch
        self._requested += batch

    def _check_alive(self) -> None:
        # While credit is outstanding the server sends a heartbeat every
        # heartbeat_s when it has nothing else to send: long silence means it
        # no longer has our requests.
        silent_s = time.monotonic() - self._heard
        if self._requested > 0 and silent_s > 2 * self._heartbeat_s + 1.0:
            self._requests.clear()
            self._requested = 0
            self._check = True

    def _deliver(self, msg: Msg) -> None:
        self._heard = time.monotonic()
        status = header(msg.headers, _STATUS) if msg.headers and not msg.data else None
        if status is not None:
            if status == _HEARTBEAT or status not in _ENDS_REQUEST:
                return
            # Statuses come on the request's own reply subject.
            batch = self._requests.pop(msg.subject[len(self._prefix) :], None)
            if batch is not None:
                owed = header(msg.headers, _PENDING)
                self._requested = max(0, self._requested - (int(owed) if owed else batch))
            if status != "408":
                description = header(msg.headers, _DESCRIPTION) or ""
                self._failed(nats.js.errors.APIError(code=int(status), description=description))
                self._check = True
            self._wake.set()
            return
        if self._requested > 0:
            self._requested -= 1
            if self._requested == 0:
                self._requests.clear()  # every request was served in full
        # A message of a request written off still holds credit until done().
        self._held += 1
        if self._failing_since is not None:
            log.info(
                "consumer %s: receiving again after %.1f s",
                self._name,
                time.monotonic() - self._failing_since,
            )
            self._failing_since = None
        self._on_message(msg)

    def _failed(self, exc: BaseException) -> None:
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.warning("consumer %s: %s; retrying", self._name, describe(exc))
