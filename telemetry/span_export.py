"""A span exporter that publishes finished spans on NATS (`spans.<service>`),
and a wrapper that redacts secrets from spans bound for any other exporter.

The SDK calls `export` from its worker thread; the publish is handed to the
bus's event loop, so nats-py is only ever used from its own loop.
"""

import asyncio
import concurrent.futures
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status, StatusCode

from natsfleet.protocols import SpanEvent, SpanRecord
from natsfleet.telemetry.redact import redact

log = logging.getLogger(__name__)

Publish = Callable[[str, SpanRecord], Awaitable[None]]

_STATUS = {StatusCode.UNSET: "unset", StatusCode.OK: "ok", StatusCode.ERROR: "error"}


def _attributes(source: Any) -> dict[str, str | bool | int | float]:
    out: dict[str, str | bool | int | float] = {}
    for key, value in dict(source or {}).items():
        kept = value if isinstance(value, bool | int | float) else str(value)
        out[key] = redact(kept) if isinstance(kept, str) else kept
    return out


def _redacted_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, tuple | list):
        return tuple(_redacted_value(item) for item in value)
    return value


def _redacted_attributes(source: Any) -> dict[str, Any]:
    return {key: _redacted_value(value) for key, value in dict(source or {}).items()}


def redacted_span(span: ReadableSpan) -> ReadableSpan:
    """A copy of `span` with secrets redacted from its name, attributes, events and status."""
    return ReadableSpan(
        name=redact(span.name),
        context=span.get_span_context(),
        parent=span.parent,
        resource=span.resource,
        attributes=_redacted_attributes(span.attributes),
        events=[
            Event(e.name, _redacted_attributes(e.attributes), e.timestamp) for e in span.events
        ],
        links=span.links,
        kind=span.kind,
        status=Status(span.status.status_code, redact(span.status.description or "") or None),
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class RedactingExporter(SpanExporter):
    """Hands `inner` copies of the spans with secrets redacted (for OTLP)."""

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([redacted_span(span) for span in spans])

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


def to_record(span: ReadableSpan, service: str) -> SpanRecord:
    context = span.get_span_context()
    assert context is not None
    return SpanRecord(
        trace_id=f"{context.trace_id:032x}",
        span_id=f"{context.span_id:016x}",
        parent_id=f"{span.parent.span_id:016x}" if span.parent else None,
        name=redact(span.name),
        service=service,
        kind=span.kind.name.lower(),
        start_ns=span.start_time or 0,
        end_ns=span.end_time or 0,
        status=_STATUS.get(span.status.status_code, "unset"),
        status_detail=redact(span.status.description or ""),
        attributes=_attributes(span.attributes),
        events=tuple(
            SpanEvent(
                name=redact(e.name), time_ns=e.timestamp, attributes=_attributes(e.attributes)
            )
            for e in span.events
        ),
    )


def _log_failure(future: "concurrent.futures.Future[None]") -> None:
    if not future.cancelled() and future.exception() is not None:
        log.debug("span export to NATS failed: %s", future.exception())


class NatsSpanExporter(SpanExporter):
    def __init__(self, service: str, publish: Publish, loop: asyncio.AbstractEventLoop) -> None:
        self._service = service
        self._publish = publish
        self._loop = loop
        # Publishes handed to the loop and not finished yet (see `drain`).
        self.pending: set[concurrent.futures.Future[None]] = set()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._loop.is_closed():
            return SpanExportResult.FAILURE
        records = [to_record(span, self._service) for span in spans]

        async def send() -> None:
            for record in records:
                await self._publish(self._service, record)

        try:
            # Hand over and do not wait: the loop may be the very thread that is
            # flushing this processor at shutdown, and waiting would deadlock.
            future = asyncio.run_coroutine_threadsafe(send(), self._loop)
            self.pending.add(future)
            future.add_done_callback(self.pending.discard)
            future.add_done_callback(_log_failure)
        except RuntimeError as exc:  # the loop is gone: nothing to publish with
            log.debug("span export to NATS failed: %s", exc)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    async def drain(self) -> None:
        """Wait (on the loop) for every publish already handed over."""
        if self.pending:
            await asyncio.gather(
                *(asyncio.wrap_future(f) for f in list(self.pending)), return_exceptions=True
            )

    def shutdown(self) -> None:
        return None
