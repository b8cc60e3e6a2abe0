"""OpenTelemetry in one place: setup from the standard `OTEL_*` variables and
trace propagation through NATS headers.

Off by default. When nothing is configured no provider or exporter is created
and the bus's hot path pays one `is None` check per message.

Enabled when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set,
or `NATSFLEET_TRACE_NATS=1` asks for spans on NATS (for `natsfleet trace`);
`OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn it off.
"""

import contextlib
import contextvars
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

log = logging.getLogger(__name__)

INSTRUMENTATION = "natsfleet"
#: Span attribute naming the task a span belongs to (`natsfleet trace` finds traces by it).
TASK_ID_ATTRIBUTE = "natsfleet.task.id"
#: Span attribute naming the workflow run a span belongs to.
WORKFLOW_ID_ATTRIBUTE = "natsfleet.workflow.id"
#: Span attribute naming the task a control request (status, cancel, ...) is about.
CONTROL_TASK_ID_ATTRIBUTE = "natsfleet.control.task.id"


@dataclass(slots=True)
class _Active:
    tracer: "Tracer"
    provider: "TracerProvider"
    service: str
    nats_export: bool
    nats_exporter: Any = None


_active: _Active | None = None


def enabled() -> bool:
    return _active is not None


def wants_tracing(env: Mapping[str, str]) -> tuple[bool, bool]:
    """(OTLP export wanted, NATS span export wanted) from the environment."""
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False, False
    otlp = bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    ) and env.get("OTEL_TRACES_EXPORTER", "otlp").lower() not in ("none", "")
    nats = env.get("NATSFLEET_TRACE_NATS", "").lower() in ("1", "true", "yes")
    return otlp, nats


def configure(
    service_name: str, instance_id: str = "", env: Mapping[str, str] | None = None
) -> bool:
    """Set up tracing for this process if the environment asks for it.

    `service_name` is this process's own (`natsfleet-supervisor`,
    `natsfleet-agent-writer`, ...); `OTEL_SERVICE_NAME` overrides it. Returns
    whether tracing is on. Idempotent: a second call changes nothing.
    """
    global _active
    if _active is not None:
        return True
    env = os.environ if env is None else env
    otlp, nats = wants_tracing(env)
    if not (otlp or nats):
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    service = env.get("OTEL_SERVICE_NAME") or service_name
    attributes = {"service.name": service}
    if instance_id:
        attributes["service.instance.id"] = instance_id
    # Resource.create also merges OTEL_RESOURCE_ATTRIBUTES; the provider reads
    # OTEL_TRACES_SAMPLER(_ARG) itself.
    provider = TracerProvider(resource=Resource.create(attributes))
    if otlp:
        provider.add_span_processor(BatchSpanProcessor(_otlp_exporter(env)))
    install(provider, service, nats_export=nats, set_global=True)
    log.info("tracing on: service %s (otlp=%s, nats=%s)", service, otlp, nats)
    return True


def _otlp_exporter(env: Mapping[str, str]) -> Any:
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[assignment]
            OTLPSpanExporter,
        )
    from natsfleet.telemetry.span_export import RedactingExporter

    # The exporters read OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT/HEADERS themselves.
    return RedactingExporter(OTLPSpanExporter())


def install(
    provider: "TracerProvider", service: str, *, nats_export: bool = False, set_global: bool = False
) -> None:
    """Use `provider` for natsfleet's spans (tests pass one with an in-memory
    exporter). `set_global` also makes it OpenTelemetry's global provider, so
    other libraries' spans join the same traces; OpenTelemetry allows that
    only once per process."""
    global _active
    if set_global:
        from opentelemetry import trace

        trace.set_tracer_provider(provider)
    _active = _Active(
        tracer=provider.get_tracer(INSTRUMENTATION),
        provider=provider,
        service=service,
        nats_export=nats_export,
    )


def uninstall() -> None:
    """Flush and forget the provider (tests; process shutdown)."""
    global _active
    active, _active = _active, None
    if active is not None:
        active.provider.shutdown()


def tracer() -> "Tracer | None":
    return _active.tracer if _active else None


def attach_nats_exporter(publish: Any, loop: Any) -> None:
    """Publish finished spans on NATS through `publish(service, span)` (once per process)."""
    if _active is None or not _active.nats_export or _active.nats_exporter is not None:
        return
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from natsfleet.telemetry.span_export import NatsSpanExporter

    exporter = NatsSpanExporter(_active.service, publish, loop)
    _active.provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=200))
    _active.nats_exporter = exporter


async def flush_nats_export() -> None:
    """Publish every span ended so far on NATS; call before closing the bus."""
    if _active is None or _active.nats_exporter is None:
        return
    # The exporter only hands publishes to this loop, so flushing here is quick.
    _active.provider.force_flush(timeout_millis=2000)
    await _active.nats_exporter.drain()


# -- propagation ------------------------------------------------------------------


def _messaging_attributes(
    operation: str, subject: str, size: int, queue: str = "", msg_id: str | None = None
) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": "nats",
        "messaging.destination.name": subject,
        "messaging.operation.name": operation,
        "messaging.operation.type": "send" if operation == "publish" else "process",
        "messaging.message.body.size": size,
    }
    if queue:
        attributes["messaging.consumer.group.name"] = queue
    if msg_id:
        attributes["messaging.message.id"] = msg_id
    return attributes


@contextlib.contextmanager
def publish_span(
    subject: str, headers: dict[str, str], size: int, msg_id: str | None = None
) -> Iterator["Span | None"]:
    """A PRODUCER span around a publish, its context injected into `headers`."""
    if _active is None:
        yield None
        return
    from opentelemetry import propagate
    from opentelemetry.trace import SpanKind

    with _active.tracer.start_as_current_span(
        f"publish {subject}",
        kind=SpanKind.PRODUCER,
        attributes=_messaging_attributes("publish", subject, size, msg_id=msg_id),
    ) as span:
        propagate.inject(headers)
        yield span


def start_publish_span(
    subject: str, headers: dict[str, str], size: int, msg_id: str | None = None
) -> "Span | None":
    """Start a PRODUCER span for a publish whose answer comes later (a request,
    a JetStream ack) and inject its context into `headers`; the caller ends it
    with `end_span`. None when tracing is off."""
    if _active is None:
        return None
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind

    span = _active.tracer.start_span(
        f"publish {subject}",
        kind=SpanKind.PRODUCER,
        attributes=_messaging_attributes("publish", subject, size, msg_id=msg_id),
    )
    propagate.inject(headers, context=trace.set_span_in_context(span))
    return span


def end_span(span: "Span", error: BaseException | None = None) -> None:
    """End a span from `start_publish_span`, marked failed by `error`."""
    if error is not None:
        from opentelemetry.trace import Status, StatusCode

        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
    span.end()


@contextlib.contextmanager
def process_span(
    subject: str, headers: Mapping[str, str], size: int, queue: str = ""
) -> Iterator["Span | None"]:
    """A CONSUMER span, child of the producer's span found in `headers`."""
    if _active is None:
        yield None
        return
    from opentelemetry import propagate
    from opentelemetry.trace import SpanKind

    parent = propagate.extract(headers)
    with _active.tracer.start_as_current_span(
        f"process {subject}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes=_messaging_attributes("process", subject, size, queue),
    ) as span:
        yield span


def capture() -> contextvars.Context | None:
    """The caller's context (its current span), for work another task does on
    its behalf later, e.g. publishing a skill's batched output; None untraced."""
    return contextvars.copy_context() if _active is not None else None


@contextlib.contextmanager
def client_span(name: str, task_id: str | None = None) -> Iterator[None]:
    """A CLIENT span around one call made for a user (a control request), so
    the request's `publish` has a named parent that says what was asked.

    The task it is about is `natsfleet.control.task.id`, not `natsfleet.task.id`:
    a `status` is its own trace, and `natsfleet trace` must find the task's."""
    if _active is None:
        yield
        return
    from opentelemetry.trace import SpanKind

    attributes = {CONTROL_TASK_ID_ATTRIBUTE: task_id} if task_id else {}
    with _active.tracer.start_as_current_span(name, kind=SpanKind.CLIENT, attributes=attributes):
        yield


def current_traceparent() -> str | None:
    """The current span's `traceparent`, to persist with a task."""
    if _active is None:
        return None
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) in hex of the current span, for log lines."""
    if _active is None:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"
