"""The Bus: one NATS connection with typed publish, request and subscribe.

It connects (through the transport chosen once, bus/transport.py), publishes
and requests; what happens to a received message is bus/boundary.py, and
JetStream consumption with its acknowledgement policy is bus/consume.py.
"""

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from natsfleet.bus import boundary, deadletter
from natsfleet.bus.acks import NoReply, StreamAck
from natsfleet.bus.blobs import HEADER_ROOM_BYTES, BlobStore
from natsfleet.bus.config import BusConfig
from natsfleet.bus.consume import consume
from natsfleet.bus.errors import (
    BadNatsConfig,
    ConnectionLost,
    NoResponders,
    NotConnected,
    RequestTimeout,
    Unreachable,
    connect_reason,
    describe,
    display_url,
)
from natsfleet.bus.payloads import Payloads, inline_max_for
from natsfleet.bus.provision import StorageConfig, provision
from natsfleet.bus.pull import PullLoop
from natsfleet.bus.stats import BusStats
from natsfleet.bus.subscription import Handler, Subscription
from natsfleet.bus.traced import TracedTransport
from natsfleet.bus.transport import Transport, choose
from natsfleet.protocols import (
    BLOB_HEADER,
    VERSION_HEADER,
    AttemptRecord,
    Bucket,
    Codec,
    DlqReason,
    ErrorReply,
    Message,
    RemoteError,
    SpanRecord,
    Subjects,
    encode,
)
from natsfleet.telemetry import redact, tracing

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: Called with the outgoing headers of every publish; tracing injects here.
HeaderHook = Callable[[dict[str, str]], None]

_VERSION_TEXT = boundary.VERSION_TEXT
# Below this a payload fits any NATS server's max payload (the smallest sane one).
_SMALL_BYTES = 64 * 1024


class Bus:
    """A NATS connection speaking the natsfleet protocol.

    `role` and `instance` name this process in dead letters and in its reply
    inbox (`_INBOX.<prefix>.<role>.<instance>`), so permissions can confine it.
    """

    def __init__(
        self, config: BusConfig | None = None, *, role: str = "client", instance: str = "0"
    ) -> None:
        self.config = config or BusConfig.from_env()
        self.subjects = Subjects(self.config.prefix)
        self.role = role
        self.instance = instance
        self.stats = BusStats()
        self.header_hooks: list[HeaderHook] = []
        self._nc: NatsClient | None = None
        self._transport: Transport | None = None
        self._traced: TracedTransport | None = None
        self._js: JetStreamContext | None = None
        self._blobs: BlobStore | None = None
        self._payloads: Payloads | None = None
        self._kv: dict[Bucket, KeyValue] = {}
        self._subs: list[Subscription[Any]] = []
        # Pull loops of `consume`, pulled again at once after a reconnect.
        self.pulls: set[PullLoop] = set()
        self._kv_bases: dict[Bucket, str] = {}
        self._closed = False
        self._state = "new"
        # Set when nats-py closed the connection for good (not by close()).
        self._lost = asyncio.Event()
        self._lost_reason = ""
        self._last_error: BaseException | None = None
        # While connecting: log the first failed try as a warning (or, for a
        # bounded connect, none: its Unreachable says it), the rest at debug.
        self._quiet_connect = False

    # -- connection -----------------------------------------------------------

    @property
    def nc(self) -> NatsClient:
        if self._nc is None:
            raise NotConnected()
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise NotConnected()
        return self._js

    @property
    def transport(self) -> Transport:
        """The transport chosen at connect (bus/transport.py)."""
        if self._transport is None:
            raise NotConnected()
        return self._transport

    @property
    def blobs(self) -> BlobStore:
        if self._blobs is None:
            raise NotConnected()
        return self._blobs

    @property
    def payloads(self) -> Payloads:
        """The size rule for skill payloads on this connection (bus/payloads.py)."""
        if self._payloads is None:
            raise NotConnected()
        return self._payloads

    @property
    def source(self) -> str:
        return f"{self.role}.{self.instance}"

    @property
    def is_connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    @property
    def lost(self) -> ConnectionLost | None:
        """Why the connection was closed for good; None while it lives, and after
        `close()` when it was never lost."""
        return ConnectionLost(self._lost_reason) if self._lost.is_set() else None

    async def connect(self, *, within_s: float | None = None) -> "Bus":
        """Connect. nats-py tries each server `max_reconnect_attempts` times
        (forever by default); `within_s` bounds the whole attempt, as a client
        verb wants. Raises `Unreachable` when either gives up, `BadNatsConfig`
        for settings no retry can fix (a malformed URL).
        """
        cfg = self.config
        options: dict[str, Any] = {
            "servers": cfg.servers,
            "name": cfg.name,
            "connect_timeout": cfg.connect_timeout_s,
            "reconnect_time_wait": cfg.reconnect_wait_s,
            "max_reconnect_attempts": cfg.max_reconnect_attempts,
            "allow_reconnect": True,
            "drain_timeout": cfg.drain_timeout_s,
            "inbox_prefix": self.subjects.reply_inbox(self.role, self.instance),
            "error_cb": self._on_error,
            "disconnected_cb": self._on_disconnected,
            "reconnected_cb": self._on_reconnected,
            "closed_cb": self._on_closed,
        }
        # Whatever this process authenticates with must never leave it.
        redact.register(cfg.password, cfg.token)
        for secret_file in (cfg.nkey_seed_file, cfg.creds_file):
            if secret_file:
                redact.register_file(secret_file)
        if cfg.user:
            options["user"] = cfg.user
            options["password"] = cfg.password
        if cfg.token:
            options["token"] = cfg.token
        if cfg.nkey_seed_file:
            options["nkeys_seed"] = cfg.nkey_seed_file
        if cfg.creds_file:
            options["user_credentials"] = cfg.creds_file
        tls = self._tls_context()
        if tls is not None:
            options["tls"] = tls
            if cfg.tls_hostname:
                options["tls_hostname"] = cfg.tls_hostname
        url = display_url(cfg.url)
        transport = choose(cfg.transport, url)  # once per connection; logged below
        nc = transport.new_client()
        self._quiet_connect = within_s is not None
        self._set_state("connecting", f"to {url}")
        try:
            await asyncio.wait_for(nc.connect(**options), within_s)
        except TimeoutError:  # our bound: nats-py retries its own timeouts
            await _abandon(nc)
            reason = connect_reason(self._last_error) if self._last_error else "no answer"
            raise Unreachable(url, reason, within_s) from None
        except nats.errors.NoServersError:
            await _abandon(nc)
            raise Unreachable(url, self._gave_up(cfg.max_reconnect_attempts)) from None
        except nats.errors.Error as exc:  # failed attempts are retried: this is the settings
            await _abandon(nc)
            raise BadNatsConfig(url, str(exc)) from None
        except BaseException:  # cancelled (a stop at start), or a bad option
            await _abandon(nc)
            raise
        self._nc = nc
        self._transport = transport(nc, js_timeout_s=cfg.js_timeout_s)
        self._traced = TracedTransport(self._transport)
        self._js = nc.jetstream(prefix=self._transport.api_prefix, timeout=cfg.js_timeout_s)
        self._blobs = BlobStore(self._js, self.subjects)
        self._payloads = Payloads(
            self._blobs,
            inline_max_bytes=inline_max_for(self._nc.max_payload),
            limit_bytes=cfg.max_message_bytes,
            record_max_bytes=self._nc.max_payload - HEADER_ROOM_BYTES,
        )
        connected = self._nc.connected_url
        where = connected.netloc if connected else "?"
        self._set_state("connected", f"to {where} ({self._transport.kind} transport)")
        tracing.attach_nats_exporter(self._publish_span_record, asyncio.get_running_loop())
        return self

    def _tls_context(self) -> ssl.SSLContext | None:
        cfg = self.config
        if not (cfg.tls_ca_file or cfg.tls_cert_file):
            return None
        context = ssl.create_default_context(cafile=cfg.tls_ca_file)
        if cfg.tls_cert_file:
            context.load_cert_chain(cfg.tls_cert_file, cfg.tls_key_file)
        return context

    def _set_state(self, state: str, detail: str = "") -> None:
        # One log line per change of state, however many errors a reconnect loop sees.
        if state != self._state:
            self._state = state
            log.info("nats %s %s", state, detail, extra={"nats_state": state})

    def _gave_up(self, attempts: int) -> str:
        last = f"; last error: {connect_reason(self._last_error)}" if self._last_error else ""
        return f"gave up reconnecting after {attempts} attempts per server{last}"

    async def connect_unless(self, stop: asyncio.Event) -> bool:
        """Connect unless `stop` is set first (then False): a long-running process
        waits for NATS at start, so start order does not matter, and still stops
        when asked."""
        # Bounded helpers, both awaited below before returning: no orphans.
        connecting = asyncio.ensure_future(self.connect())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for helper in (connecting, stopping):
                helper.cancel()
            await asyncio.wait({connecting, stopping})
        if connecting.cancelled():
            return False
        connecting.result()  # raises if connecting failed
        return True

    async def until_lost(self) -> NoReturn:
        """Wait until the connection is closed for good, then raise `ConnectionLost`."""
        await self._lost.wait()
        raise ConnectionLost(self._lost_reason)

    async def guard(self, work: Awaitable[T]) -> T:
        """`work`'s result, unless the connection is closed for good first: then
        `work` is cancelled (and awaited) and `ConnectionLost` raised. A long-
        running process runs its whole life under this, so a dead connection
        ends it instead of leaving it waiting forever.
        """
        task = asyncio.ensure_future(work)
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not task.done():
                task.cancel()
            await asyncio.wait({task, lost})
        if self._lost.is_set() and (task.cancelled() or task.exception() is not None):
            # Whatever the work died of, the dead connection is the cause.
            cause = None if task.cancelled() else task.exception()
            raise ConnectionLost(self._lost_reason) from cause
        return task.result()

    async def _on_error(self, exc: Exception) -> None:
        if isinstance(exc, nats.errors.SlowConsumerError):
            self.stats.slow_consumer_errors += 1
            log.warning("slow consumer on %s: messages dropped", exc.subject)
            return
        self._last_error = exc
        if self._state == "connecting":
            if self._quiet_connect:
                log.debug("connecting: %s", describe(exc))
                return
            self._quiet_connect = True  # once
            log.warning(
                "cannot reach NATS at %s (%s); retrying every %g s",
                display_url(self.config.url),
                connect_reason(exc),
                self.config.reconnect_wait_s,
            )
            return
        if self._state in ("disconnected", "closed"):
            log.debug("nats error while %s: %s", self._state, exc)
            return
        log.warning("nats error: %s: %s", type(exc).__name__, exc)

    async def _on_disconnected(self) -> None:
        if not self._closed:
            self.stats.disconnects += 1
            if self._nc is None or not self._nc.is_closed:  # closed: _on_closed says why
                self._set_state("disconnected", "(reconnecting)")

    async def _on_reconnected(self) -> None:
        self.stats.reconnects += 1
        url = self._nc.connected_url if self._nc else None
        self._set_state("connected", f"again to {url.netloc if url else '?'}")
        # Pull requests may not have survived (a restarted server forgets them).
        for pull in self.pulls:
            pull.reset()

    async def _on_closed(self) -> None:
        self._set_state("closed")
        nc = self._nc
        if self._closed or nc is None:
            return  # close() on purpose, or a connect that never succeeded
        err = nc.last_error
        if isinstance(err, nats.errors.NoServersError):
            self._lost_reason = self._gave_up(self.config.max_reconnect_attempts)
        else:
            self._lost_reason = describe(err) if err is not None else "closed by the server"
        log.error("NATS connection closed for good: %s", self._lost_reason)
        self._lost.set()

    async def close(self) -> None:
        """Drain subscriptions and the connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if tracing.enabled() and self.is_connected:
            await tracing.flush_nats_export()
        for sub in self._subs:
            await sub.stop(drain=True)
        self._subs.clear()
        nc, self._nc = self._nc, None
        if nc is not None and not nc.is_closed:
            try:
                await nc.drain()
            except Exception as exc:  # closing must always finish
                log.debug("drain failed (%s); closing", exc)
                # While reconnecting, nats-py's close() can fail on the dead socket.
                await _abandon(nc)

    async def __aenter__(self) -> "Bus":
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- provisioning ---------------------------------------------------------

    async def provision(self, storage: StorageConfig | None = None) -> None:
        """Create or update the fleet's streams, buckets and object store."""
        provisioned = await provision(self.js, self.subjects, storage)
        self._kv.update(provisioned.kv)

    async def kv(self, bucket: Bucket) -> KeyValue:
        if bucket not in self._kv:
            self._kv[bucket] = await self.js.key_value(self.subjects.bucket(bucket))
        return self._kv[bucket]

    # -- publishing -----------------------------------------------------------

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {VERSION_HEADER: _VERSION_TEXT}
        if extra:
            headers.update(extra)
        for hook in self.header_hooks:
            hook(headers)
        return headers

    async def _payload(self, message: Message, headers: dict[str, str]) -> bytes:
        data = encode(message)
        # Most messages are far below any server's max payload: skip the lookup.
        if len(data) > _SMALL_BYTES and len(data) > self.nc.max_payload - HEADER_ROOM_BYTES:
            assert self._blobs is not None
            headers[BLOB_HEADER] = await self._blobs.put(data)
            self.stats.blobs_offloaded += 1
            return b""
        return data

    async def publish(
        self, subject: str, message: Message, *, headers: dict[str, str] | None = None
    ) -> None:
        """Core NATS publish (fire and forget)."""
        hdrs = self.headers(headers)
        data = await self._payload(message, hdrs)
        await self._traced_transport.publish(subject, data, hdrs)
        self.stats.published += 1

    @property
    def _traced_transport(self) -> TracedTransport:
        if self._traced is None:
            raise NotConnected()
        return self._traced

    async def _publish_span_record(self, service: str, record: SpanRecord) -> None:
        # Untraced on purpose: a span for publishing a span would never end.
        subject = self.subjects.spans(service.replace(".", "_"))
        await self.transport.publish(subject, encode(record), {VERSION_HEADER: _VERSION_TEXT})

    async def publish_js(
        self,
        subject: str,
        message: Message,
        *,
        msg_id: str | None = None,
        headers: dict[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> StreamAck:
        """JetStream publish, acknowledged by the stream; `msg_id` deduplicates."""
        hdrs = self.headers(headers)
        if msg_id is not None:
            hdrs["Nats-Msg-Id"] = msg_id
        data = await self._payload(message, hdrs)
        timeout = timeout_s or self.config.js_timeout_s
        future = await self._traced_transport.publish_js(subject, data, hdrs, msg_id)
        self.stats.published += 1
        if timeout >= self.config.js_timeout_s:
            return await future
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            # The answer's future ends with the caller's error (a traced publish's
            # span ends failed with it), unless the ack came meanwhile.
            if not future.done():
                future.set_exception(nats.errors.TimeoutError())
            return await future
        except asyncio.CancelledError:
            future.cancel()  # as wait_for would have: nobody awaits it any more
            raise

    async def publish_async(
        self, subject: str, payload: bytes, headers: dict[str, str] | None = None
    ) -> "asyncio.Future[StreamAck]":
        """JetStream publish of raw bytes without waiting: the future is the ack.

        The future gives the `StreamAck` (its `seq` is a KV revision) or raises the
        JetStream error (`APIError`, e.g. a failed expected-sequence check) or
        `nats.errors.TimeoutError` after `js_timeout_s`. Many writes can be in
        flight at once; await their futures together (docs/architecture.md, "Hot path").
        """
        future = await self.transport.publish_js(subject, payload, headers)
        self.stats.published += 1
        return future

    def kv_subject(self, bucket: Bucket, key: str) -> str:
        """The subject a KV entry is written on (what `KeyValue.put` publishes to)."""
        base = self._kv_bases.get(bucket)
        if base is None:  # on the hot path: once per bucket, not per write
            base = self._kv_bases[bucket] = f"$KV.{self.subjects.bucket(bucket)}."
        return base + key

    async def request(
        self,
        subject: str,
        message: Message,
        codec: Codec[R],
        *,
        timeout_s: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> R:
        """Send a request and decode the reply; an `ErrorReply` raises `RemoteError`."""
        timeout = timeout_s or self.config.request_timeout_s
        hdrs = self.headers(headers)
        data = await self._payload(message, hdrs)
        try:
            msg = await (await self._traced_transport.request(subject, data, hdrs, timeout))
        except NoReply:
            raise NoResponders(subject) from None
        except nats.errors.TimeoutError:
            raise RequestTimeout(subject, timeout) from None
        payload = await boundary.payload_of(self, msg, self.config.max_message_bytes)
        boundary.check_version(msg.headers)
        reply = codec.decode(payload)
        if isinstance(reply, ErrorReply):
            raise RemoteError(reply.code, reply.detail, reply.retryable)
        return reply

    # -- receiving ------------------------------------------------------------

    async def subscribe(
        self,
        subject: str,
        codec: Codec[T],
        handler: Handler[T],
        *,
        queue: str = "",
        concurrency: int = 1,
        max_bytes: int | None = None,
    ) -> Subscription[T]:
        """Subscribe with a typed handler; bad messages are dead-lettered, never raised."""
        sub = Subscription(
            self,
            subject,
            codec,
            handler,
            queue=queue,
            concurrency=concurrency,
            max_bytes=max_bytes or self.config.max_message_bytes,
        )
        await sub.start()
        self._subs.append(sub)
        return sub

    async def unsubscribe(self, sub: Subscription[Any], drain: bool = True) -> None:
        await sub.stop(drain=drain)
        if sub in self._subs:
            self._subs.remove(sub)

    async def reply(self, reply_to: str, message: Message) -> None:
        """Answer a request with a fresh publish (msg.respond would re-send the
        request's headers). A reply carries no version header: the request's
        version was checked before the handler ran, and a mismatch is answered
        with an `ErrorReply` any version can read. Header parsing is much of
        nats-py's per-message cost, so this keeps request/reply fast.
        """
        headers: dict[str, str] = {}
        try:
            data = await self._payload(message, headers)
            await self.transport.publish(reply_to, data, headers or None)
            self.stats.published += 1
        except Exception as exc:  # the requester may be gone; that is its problem
            log.debug("reply to %s failed: %s", reply_to, exc)

    async def dead_letter(
        self,
        reason: DlqReason,
        *,
        subject: str,
        error: str,
        headers: dict[str, str] | None = None,
        payload: bytes = b"",
        task_id: str | None = None,
        attempts: tuple[AttemptRecord, ...] = (),
        msg_id: str | None = None,
    ) -> bool:
        """Keep a wrapper of what could not be handled in the DLQ stream.

        `msg_id` (our own, never the original's) lets a sender that may repeat
        itself, e.g. a supervisor after a restart, store the entry only once.
        """
        self.stats.dead_letters[reason.value] += 1
        entry = deadletter.build_entry(
            reason=reason,
            subject=subject,
            error=error,
            headers=headers,
            payload=payload,
            source=self.source,
            task_id=task_id,
            attempts=attempts,
        )
        return await deadletter.publish_entry(
            self.js, self.subjects, entry, self.config.js_timeout_s, msg_id=msg_id
        )

    # -- JetStream consumption --------------------------------------------------

    #: Pull from a durable consumer until cancelled; bus/consume.py says how
    #: messages are settled (one definition: the method is that function).
    consume = consume


async def _abandon(nc: NatsClient) -> None:
    """Close a client that is not (or no longer) connected, its retry tasks too."""
    try:
        await nc.close()
    except Exception as exc:  # it may never have started, or its socket is dead
        log.debug("closing a client that is not connected: %s", describe(exc))
