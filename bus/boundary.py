"""The message boundary: what every received message goes through before a handler.

In order: the protocol version header is checked, an offloaded payload is
fetched from BLOBS (bounded by `max_bytes`), the bytes are decoded into the
subscription's type; a message failing any step is rejected (logged,
dead-lettered with the reason, and a request answered with an `ErrorReply`),
never raised into the connection. A handler's exception is dead-lettered
`handler_error` and a request answered `internal`. Core subscriptions
(bus/subscription.py) use `dispatch`; JetStream consumption (bus/consume.py)
uses `decode` and `reject` with its own acknowledgement policy.
"""

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from nats.aio.msg import Msg

from natsfleet.bus import deadletter
from natsfleet.bus.blobs import blob_name
from natsfleet.bus.incoming import Incoming, header, normalized
from natsfleet.protocols import (
    VERSION,
    VERSION_HEADER,
    Codec,
    DlqReason,
    ErrorCode,
    ErrorReply,
    Message,
    ProtocolError,
)
from natsfleet.telemetry import tracing

if TYPE_CHECKING:
    from natsfleet.bus.connection import Bus

log = logging.getLogger(__name__)

T = TypeVar("T")

VERSION_TEXT = str(VERSION)

#: A handler gets the decoded value and its envelope; what it returns (if the
#: message was a request) is sent back as the reply.
Handler = Callable[[T, Incoming], Awaitable[Message | None]]


def check_version(headers: dict[str, str] | None) -> None:
    """Raise `ProtocolError(unsupported_version)` for another protocol version."""
    # A message without the header (e.g. from the nats CLI) is read as ours.
    if not headers:
        return
    version = headers.get(VERSION_HEADER)
    if version is None or version == VERSION_TEXT:
        return
    version = header(headers, VERSION_HEADER)  # a list, with fast-mail-parser
    if version is not None and version != VERSION_TEXT:
        raise ProtocolError(
            DlqReason.UNSUPPORTED_VERSION,
            f"protocol version {version!r}; this process speaks {VERSION_TEXT}",
        )


async def payload_of(bus: "Bus", msg: Msg, max_bytes: int) -> bytes:
    """The message's payload, fetched from BLOBS when it was offloaded."""
    name = blob_name(msg.headers) if msg.headers else None
    if name is not None:
        return await bus.blobs.get(name, max_bytes)
    if len(msg.data) > max_bytes:
        raise ProtocolError(
            DlqReason.TOO_LARGE, f"{len(msg.data)} bytes exceeds the {max_bytes} limit"
        )
    return msg.data


async def decode(bus: "Bus", msg: Msg, codec: Codec[T], max_bytes: int) -> tuple[T, Incoming]:
    """Decode one received message; raises ProtocolError with the reason."""
    headers = msg.headers
    check_version(headers)
    data = await payload_of(bus, msg, max_bytes)
    incoming = Incoming(
        subject=msg.subject,
        reply=msg.reply,
        headers=normalized(headers) if headers else {},
        data=data,
        raw=msg,
        transport=bus.transport,
    )
    return codec.decode(data), incoming


async def dispatch(
    bus: "Bus", msg: Msg, codec: Codec[T], handler: Handler[T], max_bytes: int, queue: str = ""
) -> None:
    """Decode, run the handler, reply; never raises (but for cancellation)."""
    bus.stats.received += 1
    try:
        value, incoming = await decode(bus, msg, codec, max_bytes)
    except ProtocolError as err:
        await reject(bus, msg, err)
        return
    try:
        if tracing.enabled():
            with tracing.process_span(msg.subject, incoming.headers, incoming.size, queue):
                reply = await handler(value, incoming)
        else:
            reply = await handler(value, incoming)
    except Exception as exc:
        bus.stats.handler_errors += 1
        log.exception("handler for %s failed", msg.subject)
        await bus.dead_letter(
            DlqReason.HANDLER_ERROR,
            subject=msg.subject,
            error=f"{type(exc).__name__}: {exc}",
            headers=msg.headers,
            payload=incoming.data,
        )
        reply = ErrorReply(
            code=ErrorCode.INTERNAL,
            detail=f"handler failed: {type(exc).__name__}",
            retryable=True,
        )
    if reply is not None and msg.reply:
        await bus.reply(msg.reply, reply)


async def reject(bus: "Bus", msg: Msg, err: ProtocolError) -> None:
    """Log, dead-letter and (for a request) answer a malformed message."""
    log.warning("rejected message on %s: %s", msg.subject, err)
    await bus.dead_letter(
        err.reason, subject=msg.subject, error=err.detail, headers=msg.headers, payload=msg.data
    )
    if msg.reply and not msg.subject.startswith("$JS."):
        code = deadletter.REPLY_CODE.get(err.reason, ErrorCode.BAD_REQUEST)
        await bus.reply(msg.reply, ErrorReply(code=code, detail=str(err), retryable=False))
