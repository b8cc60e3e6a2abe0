"""Consuming a durable JetStream consumer: the acknowledgement policy of the bus.

`consume` pulls with requests kept outstanding (bus/pull.py) and settles each
message after its handler: acked when the handler returns (unless it settled
the message itself), nak'ed with a delay when it raises, dead-lettered then
terminated when it cannot be decoded (bus/boundary.py) or when its handler
failed `max_failures` times with an error that is not transient
(bus/redelivery.py). `Bus.consume` is this function.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import api as js_api

from natsfleet.bus import boundary
from natsfleet.bus.errors import describe
from natsfleet.bus.incoming import Incoming
from natsfleet.bus.pull import PullLoop
from natsfleet.bus.redelivery import DEFAULT_MAX_FAILURES, HandlerFailures, is_transient
from natsfleet.protocols import Codec, DlqReason, ProtocolError
from natsfleet.telemetry import tracing

if TYPE_CHECKING:
    from natsfleet.bus.connection import Bus

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


async def consume(
    bus: "Bus",
    stream_subject: str,
    durable: str,
    codec: Codec[T],
    handler: Callable[[T, Incoming], Awaitable[None]],
    *,
    stream: str | None = None,
    batch: int = 128,
    ack_wait_s: float = 30.0,
    ready: asyncio.Event | None = None,
    parallel: bool = False,
    max_failures: int = DEFAULT_MAX_FAILURES,
    on_reject: Callable[[Msg, ProtocolError], Awaitable[None]] | None = None,
) -> None:
    """Pull from a durable consumer until cancelled (bus/pull.py).

    A message is acked when its handler returns (unless the handler acked,
    nak'ed or term'ed it itself), nak'ed with a delay if the handler
    raises, and dead-lettered then terminated if it cannot be decoded or
    its handler failed `max_failures` times with an error that is not
    transient (bus/redelivery.py).
    At most `batch` messages are requested or being handled at once. With
    `parallel` they are handled concurrently (the handler must serialize
    what needs it); without, one at a time in stream order. `on_reject`
    hears of each message dead-lettered as undecodable, before it is
    terminated (e.g. to end the task it was meant to start).
    """
    config = js_api.ConsumerConfig(
        durable_name=durable,
        filter_subject=stream_subject,
        ack_policy=js_api.AckPolicy.EXPLICIT,
        ack_wait=ack_wait_s,
        max_ack_pending=batch * 8,
    )

    async def find_stream() -> str:
        return await bus.js.find_stream_name_by_subject(stream_subject)

    if stream is None:
        stream = await _retrying(bus, find_stream, f"consumer {durable}")
    stream_name = stream

    async def ensure_consumer() -> None:
        try:
            await bus.js.consumer_info(stream_name, durable)
        except nats.js.errors.NotFoundError:
            await bus.js.add_consumer(stream_name, config)

    failures = HandlerFailures(max_failures)
    running: set[asyncio.Task[None]] = set()
    # In order: one worker takes them from here, so the subscription's
    # callback (which also reads the pull requests' heartbeats) never waits.
    ordered: asyncio.Queue[Msg] = asyncio.Queue()

    async def settle(msg: Msg) -> None:
        try:
            await _dispatch_js(bus, msg, codec, handler, failures, on_reject)
        finally:
            pull.done()

    async def work_in_order() -> None:
        while True:
            await settle(await ordered.get())

    def on_message(msg: Msg) -> None:
        if not parallel:
            ordered.put_nowait(msg)
            return
        task = asyncio.create_task(settle(msg))
        running.add(task)
        task.add_done_callback(running.discard)

    pull = PullLoop(
        bus.transport,
        f"{bus.transport.api_prefix}.CONSUMER.MSG.NEXT.{stream_name}.{durable}",
        on_message,
        ensure_consumer,
        limit=batch,
        retry_s=bus.config.reconnect_wait_s,
        name=durable,
    )
    await _retrying(bus, ensure_consumer, f"consumer {durable}")
    await pull.start()
    bus.pulls.add(pull)
    if not parallel:
        worker = asyncio.create_task(work_in_order())
        running.add(worker)
        worker.add_done_callback(running.discard)
    if ready is not None:
        ready.set()
    try:
        await pull.run()
    finally:
        # The durable consumer stays; only this process's inbox goes.
        # Handlers still running are cancelled: their messages are not
        # acknowledged and come back after ack_wait.
        bus.pulls.discard(pull)
        await pull.stop()
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)


async def _handler_failed(
    bus: "Bus", msg: Msg, incoming: Incoming, exc: Exception, failures: HandlerFailures
) -> None:
    """Nak for another delivery, or dead-letter and terminate (bus/redelivery.py)."""
    if is_transient(exc):
        log.info("handler for %s: %s; will be redelivered", msg.subject, exc)
        await incoming.nak(delay_s=1.0)
        return
    seq = msg.metadata.sequence.stream
    count = failures.add(seq)
    if count < failures.limit:
        log.exception(
            "handler for %s failed (%d of %d); will be redelivered",
            msg.subject, count, failures.limit,
        )  # fmt: skip
        await incoming.nak(delay_s=failures.delay_s(count))
        return
    log.error(
        "handler for %s failed %d times: %s: %s; dead-lettered",
        msg.subject, count, type(exc).__name__, exc,
    )  # fmt: skip
    stored = await bus.dead_letter(
        DlqReason.HANDLER_ERROR,
        subject=msg.subject,
        error=f"{type(exc).__name__}: {exc} (failed {count} deliveries)",
        headers=msg.headers,
        payload=incoming.data,
    )
    if not stored:  # never drop a message whose DLQ entry is not kept
        await incoming.nak(delay_s=failures.delay_s(count))
        return
    failures.forget(seq)
    await incoming.term()


async def _retrying(bus: "Bus", operation: Callable[[], Awaitable[R]], what: str) -> R:
    """Run a JetStream operation until it succeeds (transient NATS errors only)."""
    logged = False
    while True:
        try:
            return await operation()
        except (nats.errors.Error, TimeoutError) as exc:
            if not logged:
                log.warning("%s: %s; retrying", what, describe(exc))
                logged = True
            await asyncio.sleep(bus.config.reconnect_wait_s)


async def _dispatch_js(
    bus: "Bus",
    msg: Msg,
    codec: Codec[T],
    handler: Callable[[T, Incoming], Awaitable[None]],
    failures: HandlerFailures,
    on_reject: Callable[[Msg, ProtocolError], Awaitable[None]] | None = None,
) -> None:
    bus.stats.received += 1
    try:
        value, incoming = await boundary.decode(bus, msg, codec, bus.config.max_message_bytes)
    except ProtocolError as err:
        await boundary.reject(bus, msg, err)
        if on_reject is not None:
            try:
                await on_reject(msg, err)
            except Exception as exc:  # the dead letter is kept either way
                log.warning("on_reject for %s failed: %s", msg.subject, exc)
        await msg.term()
        return
    try:
        if tracing.enabled():
            with tracing.process_span(msg.subject, incoming.headers, incoming.size):
                await handler(value, incoming)
        else:
            await handler(value, incoming)
    except Exception as exc:
        bus.stats.handler_errors += 1
        settle = _handler_failed(bus, msg, incoming, exc, failures)
    else:
        settle = incoming.ack()
    try:
        await settle
    except Exception as exc:  # unsettled: redelivered after ack_wait, which is safe
        log.debug("could not settle %s: %s", msg.subject, exc)
