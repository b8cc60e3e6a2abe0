"""Tracing as a wrapper on the transport seam (bus/transport.py).

Whichever transport the bus chose, a traced publish, request or JetStream
publish is the same call on it with one PRODUCER span around it, whose
context travels in the message's headers. When tracing is off the wrapper
hands the call straight through (one `enabled()` check, no extra coroutine),
so a traced fleet and an untraced one run the same publish and ack path.
Tracing can be switched on after the bus connected (tests do): the check is
per call.
"""

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from nats.aio.msg import Msg

from natsfleet.bus.transport import Transport
from natsfleet.telemetry import tracing

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from natsfleet.bus.acks import StreamAck


F = TypeVar("F", bound="asyncio.Future[Any]")


class TracedTransport:
    """`inner`'s publish, request and publish_js, each under a span when tracing is on."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner

    def publish(
        self, subject: str, payload: bytes, headers: dict[str, str], reply: str = ""
    ) -> Awaitable[None]:
        if not tracing.enabled():
            return self.inner.publish(subject, payload, headers, reply)
        return self._publish(subject, payload, headers, reply)

    def request(
        self, subject: str, payload: bytes, headers: dict[str, str], timeout_s: float
    ) -> "Awaitable[asyncio.Future[Msg]]":
        if not tracing.enabled():
            return self.inner.request(subject, payload, headers, timeout_s)
        return self._request(subject, payload, headers, timeout_s)

    def publish_js(
        self, subject: str, payload: bytes, headers: dict[str, str], msg_id: str | None = None
    ) -> "Awaitable[asyncio.Future[StreamAck]]":
        if not tracing.enabled():
            return self.inner.publish_js(subject, payload, headers)
        return self._publish_js(subject, payload, headers, msg_id)

    async def _publish(
        self, subject: str, payload: bytes, headers: dict[str, str], reply: str
    ) -> None:
        with tracing.publish_span(subject, headers, len(payload)):
            await self.inner.publish(subject, payload, headers, reply)

    async def _request(
        self, subject: str, payload: bytes, headers: dict[str, str], timeout_s: float
    ) -> "asyncio.Future[Msg]":
        span = tracing.start_publish_span(subject, headers, len(payload))
        return await _ended_with(span, self.inner.request(subject, payload, headers, timeout_s))

    async def _publish_js(
        self, subject: str, payload: bytes, headers: dict[str, str], msg_id: str | None
    ) -> "asyncio.Future[StreamAck]":
        span = tracing.start_publish_span(subject, headers, len(payload), msg_id)
        return await _ended_with(span, self.inner.publish_js(subject, payload, headers))


async def _ended_with(span: "Span | None", sent: Awaitable[F]) -> F:
    """The answer's future, with `span` ended when the answer (or its error) comes."""
    try:
        future = await sent
    except BaseException as exc:
        if span is not None:
            tracing.end_span(span, exc)
        raise
    if span is not None:
        future.add_done_callback(lambda done: _end(span, done))
    return future


def _end(span: "Span", done: "asyncio.Future[Any]") -> None:
    error = None if done.cancelled() else done.exception()
    tracing.end_span(span, error)
