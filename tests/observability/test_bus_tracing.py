"""Trace context crosses NATS in the bus: every `process` span is a child of
the matching `publish` span, and nothing is created when tracing is off."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from natsfleet.bus import Bus, BusConfig, Incoming
from natsfleet.client import FleetClient
from natsfleet.process import NatsServer
from natsfleet.protocols import (
    Ack,
    Cancel,
    Codec,
    ErrorReply,
    Message,
    SpanRecord,
    StatusRequest,
    Stream,
    Submit,
)
from natsfleet.telemetry import tracing


@pytest.fixture
async def bus(nats_server: NatsServer, prefix: str) -> AsyncIterator[Bus]:
    async with Bus(BusConfig(url=nats_server.url, prefix=prefix)) as connected:
        await connected.provision()
        yield connected


def by_name(exporter: InMemorySpanExporter, prefix: str) -> list:  # type: ignore[type-arg]
    return [s for s in exporter.get_finished_spans() if s.name.startswith(prefix)]


async def test_process_span_is_child_of_publish_span(bus: Bus, spans: InMemorySpanExporter) -> None:
    got = asyncio.Event()
    seen_headers: dict[str, str] = {}

    async def handle(_: Cancel, incoming: Incoming) -> Message | None:
        seen_headers.update(incoming.headers)
        got.set()
        return None

    subject = bus.subjects.cancel("writer", "w-1")
    await bus.subscribe(subject, Codec[Cancel](Cancel), handle, queue="q")
    await bus.publish(subject, Cancel(task_id="t", token="01"))
    await asyncio.wait_for(got.wait(), 2)
    await asyncio.sleep(0)  # let the handler's span end
    [publish] = by_name(spans, "publish ")
    async with asyncio.timeout(2):
        while not by_name(spans, "process "):
            await asyncio.sleep(0.01)
    [process] = by_name(spans, "process ")
    assert publish.kind is SpanKind.PRODUCER and process.kind is SpanKind.CONSUMER
    assert process.parent is not None
    assert process.parent.span_id == publish.context.span_id
    assert process.context.trace_id == publish.context.trace_id
    assert seen_headers["traceparent"].split("-")[1] == f"{publish.context.trace_id:032x}"
    attrs = process.attributes or {}
    assert attrs["messaging.system"] == "nats"
    assert attrs["messaging.destination.name"] == subject
    assert attrs["messaging.operation.name"] == "process"
    assert attrs["messaging.consumer.group.name"] == "q"
    assert attrs["messaging.message.body.size"] > 0


async def test_request_and_jetstream_hops_join_one_trace(
    bus: Bus, spans: InMemorySpanExporter
) -> None:
    async def status(_: StatusRequest, __: Incoming) -> Message | None:
        return Ack(detail="ok")

    subject = bus.subjects.control("status")
    await bus.subscribe(subject, Codec[StatusRequest](StatusRequest), status)
    reply_codec = Codec[Ack | ErrorReply](Ack | ErrorReply)
    await bus.request(subject, StatusRequest(task_id="x"), reply_codec, timeout_s=2)
    task_id = await FleetClient(bus).submit("echo", {"n": 1})
    handled = asyncio.Event()

    async def on_submit(_: Submit, __: Incoming) -> None:
        handled.set()

    consumer = asyncio.create_task(
        bus.consume(
            bus.subjects.submit(),
            "tr",
            Codec[Submit](Submit),
            on_submit,
            stream=bus.subjects.stream(Stream.TASKS),
        )
    )
    try:
        await asyncio.wait_for(handled.wait(), 5)
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
    finished = spans.get_finished_spans()
    for process in [s for s in finished if s.name.startswith("process ")]:
        subject_name = process.name.removeprefix("process ")
        [publish] = [s for s in finished if s.name == f"publish {subject_name}"]
        assert process.parent is not None and process.parent.span_id == publish.context.span_id
    submit_publish = [s for s in finished if s.name == f"publish {bus.subjects.submit()}"]
    assert (submit_publish[0].attributes or {})["messaging.message.id"] == task_id


async def test_no_configuration_means_no_tracing(bus: Bus) -> None:
    assert tracing.configure("natsfleet-test", env={}) is False
    assert not tracing.enabled()
    got: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()

    async def handle(_: Cancel, incoming: Incoming) -> Message | None:
        got.set_result(incoming.headers)
        return None

    subject = bus.subjects.cancel("a", "b")
    await bus.subscribe(subject, Codec[Cancel](Cancel), handle)
    await bus.publish(subject, Cancel(task_id="t", token="01"))
    assert "traceparent" not in await asyncio.wait_for(got, 2)


def test_environment_decides_what_is_exported() -> None:
    assert tracing.wants_tracing({}) == (False, False)
    assert tracing.wants_tracing({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}) == (
        True,
        False,
    )
    assert tracing.wants_tracing({"NATSFLEET_TRACE_NATS": "1"}) == (False, True)
    off = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "true"}
    assert tracing.wants_tracing(off) == (False, False)
    none = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_TRACES_EXPORTER": "none"}
    assert tracing.wants_tracing(none) == (False, False)


async def test_spans_are_published_on_nats_when_asked(nats_server: NatsServer, prefix: str) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    tracing.install(TracerProvider(), "natsfleet-test", nats_export=True)
    try:
        async with Bus(BusConfig(url=nats_server.url, prefix=prefix)) as bus:
            await bus.provision()
            await bus.publish(bus.subjects.cancel("a", "b"), Cancel(task_id="t", token="01"))
            codec = Codec[SpanRecord](SpanRecord)
            async with asyncio.timeout(5):
                while True:
                    info = await bus.js.stream_info(bus.subjects.stream(Stream.SPANS))
                    if info.state.messages:
                        break
                    await asyncio.sleep(0.05)
            msg = await bus.js.get_last_msg(
                bus.subjects.stream(Stream.SPANS), bus.subjects.spans("natsfleet-test")
            )
            record = codec.decode(msg.data or b"")
            assert record.name.startswith("publish ") and record.service == "natsfleet-test"
            assert len(record.trace_id) == 32 and record.kind == "producer"
    finally:
        tracing.uninstall()
