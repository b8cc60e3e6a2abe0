"""A finished span as published on `spans.<service>` (opt-in terminal tracing)."""

import msgspec

from natsfleet.protocols.base import Message

AttributeValue = str | bool | int | float


class SpanEvent(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    time_ns: int
    attributes: dict[str, AttributeValue] = msgspec.field(default_factory=dict)


class SpanRecord(Message, frozen=True, kw_only=True, tag="span"):
    """One OpenTelemetry span, flattened for `natsfleet trace`."""

    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_id: str | None = None
    name: str
    service: str
    kind: str = "internal"
    start_ns: int
    end_ns: int
    status: str = "unset"  # "unset" | "ok" | "error"
    status_detail: str = ""
    attributes: dict[str, AttributeValue] = msgspec.field(default_factory=dict)
    events: tuple[SpanEvent, ...] = ()
