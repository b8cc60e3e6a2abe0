"""The transport seam: everything natsfleet needs from a NATS client, in one place.

The bus, its reply inbox (`acks.Replies`) and its pull loops (`pull.PullLoop`)
reach NATS only through a `Transport`:

- `publish` with headers and a reply subject;
- `subscribe` a *direct* handler: a plain function called with each message,
  which must return at once (resolve a future, count credit, start a task);
- `ack` a JetStream message;
- `request` and `publish_js`, whose answers arrive as futures on one reply
  inbox (built here on the two above, the same for every implementation);
- `api_prefix`, the JetStream API subject prefix the bus was connected with.

Two implementations: `PublicTransport` uses nats-py's public API only;
`FastTransport` (bus/_fast.py) is the hot path, which reads and writes the
protocol beside nats-py using some of its private names. The bus chooses one
once, at connect (`choose`), and logs which; a nats-py that lacks a private
name the fast one needs gets the public one with a warning, never a silent
slow path (tests/bus/test_transport.py fails if the fast one is not chosen on
the pinned nats-py). Tracing wraps whichever was chosen (bus/traced.py).
Connecting, draining and JetStream management (streams, consumers, KV) stay
on nats-py's public client, `Transport.client`.
"""

import abc
import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, ClassVar

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.js import api as js_api

from natsfleet.bus.errors import BadNatsConfig

if TYPE_CHECKING:
    from natsfleet.bus.acks import Replies, StreamAck

log = logging.getLogger(__name__)

#: A direct subscription's handler: called with each message as it is read.
DirectHandler = Callable[[Msg], None]

#: Which transport to use: `auto` (the fast one when this nats-py has what it
#: needs), `fast` (that or an error) or `public`.
TRANSPORT_ENV = "NATSFLEET_TRANSPORT"
CHOICES = ("auto", "fast", "public")


class Transport(abc.ABC):
    """One connected NATS client seen through the operations natsfleet uses."""

    kind: ClassVar[str]

    def __init__(
        self,
        client: NatsClient,
        *,
        js_timeout_s: float,
        api_prefix: str = js_api.DEFAULT_PREFIX,
    ) -> None:
        self.client = client
        self.api_prefix = api_prefix
        self._js_timeout_s = js_timeout_s
        self._replies: Replies | None = None
        self._replies_lock = asyncio.Lock()

    @staticmethod
    @abc.abstractmethod
    def new_client() -> NatsClient:
        """The (unconnected) nats-py client this transport works on."""

    @abc.abstractmethod
    async def publish(
        self, subject: str, payload: bytes, headers: dict[str, str] | None = None, reply: str = ""
    ) -> None:
        """Core NATS publish, nats-py's semantics (its errors, its reconnect buffer)."""

    @abc.abstractmethod
    async def subscribe(
        self, subject: str, handler: DirectHandler, queue: str = ""
    ) -> NatsSubscription:
        """Call `handler` with every message on `subject`, in order. Unsubscribe
        with the subscription's `unsubscribe()`; it has no queue to read."""

    @abc.abstractmethod
    async def ack(self, msg: Msg) -> None:
        """Acknowledge a JetStream message (an empty publish to its reply subject).
        The caller makes sure it settles a message once."""

    def new_inbox(self) -> str:
        return self.client.new_inbox()

    def request(
        self, subject: str, payload: bytes, headers: dict[str, str] | None, timeout_s: float
    ) -> "Awaitable[asyncio.Future[Msg]]":
        """Send a request; the future gives the reply or raises `acks.NoReply` /
        `nats.errors.TimeoutError`."""
        if self._replies is not None:  # the coroutine itself: no extra frame per call
            return self._replies.request(subject, payload, headers, timeout_s)
        return self._first_request(subject, payload, headers, timeout_s)

    def publish_js(
        self, subject: str, payload: bytes, headers: dict[str, str] | None
    ) -> "Awaitable[asyncio.Future[StreamAck]]":
        """JetStream publish; the future gives the stream's ack or raises its error
        (after `js_timeout_s` at most)."""
        if self._replies is not None:
            return self._replies.publish_js(subject, payload, headers)
        return self._first_publish_js(subject, payload, headers)

    async def _first_request(
        self, subject: str, payload: bytes, headers: dict[str, str] | None, timeout_s: float
    ) -> "asyncio.Future[Msg]":
        replies = await self._reply_mux()
        return await replies.request(subject, payload, headers, timeout_s)

    async def _first_publish_js(
        self, subject: str, payload: bytes, headers: dict[str, str] | None
    ) -> "asyncio.Future[StreamAck]":
        replies = await self._reply_mux()
        return await replies.publish_js(subject, payload, headers)

    async def _reply_mux(self) -> "Replies":
        """The connection's one reply inbox, started on first use."""
        from natsfleet.bus.acks import Replies

        async with self._replies_lock:
            if self._replies is None:
                replies = Replies(self, self._js_timeout_s)
                await replies.start()
                self._replies = replies
            return self._replies


class PublicTransport(Transport):
    """nats-py through its public API only: the reference the fast one must match."""

    kind = "public"

    @staticmethod
    def new_client() -> NatsClient:
        return NatsClient()

    async def publish(
        self, subject: str, payload: bytes, headers: dict[str, str] | None = None, reply: str = ""
    ) -> None:
        await self.client.publish(subject, payload, reply=reply, headers=headers or None)

    async def subscribe(
        self, subject: str, handler: DirectHandler, queue: str = ""
    ) -> NatsSubscription:
        async def callback(msg: Msg) -> None:
            handler(msg)

        # Unbounded like a direct subscription: what bounds it is the handler's
        # owner (credit in a pull loop, one reply per request in the inbox).
        return await self.client.subscribe(
            subject, queue=queue, cb=callback, pending_msgs_limit=-1, pending_bytes_limit=-1
        )

    async def ack(self, msg: Msg) -> None:
        await msg.ack()


def choose(setting: str = "auto", url: str = "") -> type[Transport]:
    """The transport for `setting` (`CHOICES`, checked by `BusConfig`); raises
    `BadNatsConfig` when `fast` is asked for and this nats-py cannot give it."""
    if setting not in CHOICES:
        raise ValueError(f"{TRANSPORT_ENV} must be one of {', '.join(CHOICES)}, not {setting!r}")
    if setting == "public":
        return PublicTransport
    fast, missing = _fast()
    if fast is not None:
        return fast
    if setting == "fast":
        raise BadNatsConfig(url, f"{TRANSPORT_ENV}=fast, but this nats-py lacks {missing}")
    log.warning("nats-py lacks what the fast transport needs (%s); using the public API", missing)
    return PublicTransport


def _fast() -> tuple[type[Transport] | None, str]:
    """The fast transport, or None and what this nats-py lacks for it."""
    try:
        from natsfleet.bus._fast import FastTransport
    except ImportError as exc:  # a parser constant or class nats-py no longer has
        return None, str(exc)
    missing = FastTransport.missing()
    return (None, ", ".join(missing)) if missing else (FastTransport, "")
