"""The transport seam (bus/transport.py): both implementations behave alike,
the fast one is chosen on the pinned nats-py, and tracing wraps the chosen
one instead of taking another path."""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
import pytest
from nats.aio.msg import Msg
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from natsfleet.bus import (
    BadNatsConfig,
    Bus,
    BusConfig,
    Incoming,
    NoResponders,
    RequestTimeout,
    _receive,
    transport,
)
from natsfleet.bus._fast import FastTransport
from natsfleet.bus.transport import PublicTransport, Transport, choose
from natsfleet.process import NatsServer
from natsfleet.protocols import Cancel, Codec, ErrorReply, Message, Rollcall, Stream, Submit

KINDS = ("fast", "public")


@pytest.fixture(params=KINDS)
async def tbus(request: Any, nats_server: NatsServer, prefix: str) -> AsyncIterator[Bus]:
    config = BusConfig(url=nats_server.url, prefix=prefix, transport=request.param)
    async with Bus(config, role="test") as connected:
        await connected.provision()
        yield connected


def test_the_fast_transport_is_chosen_on_the_pinned_nats_py() -> None:
    # If a nats-py release renames a private name the fast path uses, this
    # fails instead of every publish silently taking the slow path.
    assert FastTransport.missing() == []
    assert choose("auto") is FastTransport
    assert choose("fast") is FastTransport
    assert choose("public") is PublicTransport


async def test_the_choice_is_made_at_connect_and_logged(
    nats_server: NatsServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="natsfleet.bus.connection")
    async with Bus(BusConfig(url=nats_server.url, prefix=prefix)) as bus:
        assert bus.transport.kind == "fast"
        assert isinstance(bus.transport, FastTransport)
    assert any("(fast transport)" in r.getMessage() for r in caplog.records)


def test_a_nats_py_without_a_needed_private_name_gets_the_public_transport(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # As if nats-py renamed a private name: the fast transport's own list of
    # what it needs names one the client does not have.
    monkeypatch.setattr(_receive, "INTERNALS", (*_receive.INTERNALS, "_renamed_in_a_release"))
    assert "Client._renamed_in_a_release" in FastTransport.missing()
    with caplog.at_level(logging.WARNING, logger=transport.__name__):
        assert choose("auto") is PublicTransport
    assert "_renamed_in_a_release" in caplog.text
    with pytest.raises(BadNatsConfig, match="_renamed_in_a_release"):
        choose("fast", "nats://127.0.0.1:4222")


def test_an_unknown_transport_setting_is_refused_before_connecting() -> None:
    with pytest.raises(ValueError, match="NATSFLEET_TRANSPORT must be one of auto, fast, public"):
        BusConfig.from_env({"NATSFLEET_TRANSPORT": "quick"})
    assert BusConfig.from_env({"NATSFLEET_TRANSPORT": "public"}).transport == "public"


# -- conformance: every test below runs over both transports --------------------------


async def test_publish_delivers_subject_reply_headers_and_payload(tbus: Bus) -> None:
    got: list[Msg] = []
    t: Transport = tbus.transport
    await t.subscribe("c.>", got.append)
    await t.publish("c.one", b"payload", {"A": "b", "Nats-Msg-Id": "x:1"}, "r.1")
    await t.publish("c.two", b"", None)
    await t.publish("c.three", b"plain", None, "r.3")
    async with asyncio.timeout(2):
        while len(got) < 3:
            await tbus.nc.flush()
    one, two, three = got
    assert (one.subject, one.reply, one.data) == ("c.one", "r.1", b"payload")
    assert one.headers is not None and one.headers["A"] == "b"
    assert one.headers["Nats-Msg-Id"] == "x:1"
    assert (two.subject, two.reply, two.data, two.headers) == ("c.two", "", b"", None)
    assert (three.reply, three.data) == ("r.3", b"plain")


async def test_an_unsubscribed_direct_handler_gets_nothing_more(tbus: Bus) -> None:
    got: list[bytes] = []
    sub = await tbus.transport.subscribe("u", lambda msg: got.append(msg.data))
    await tbus.transport.publish("u", b"1")
    async with asyncio.timeout(2):
        while not got:
            await tbus.nc.flush()
    await sub.unsubscribe()
    await tbus.transport.publish("u", b"2")
    await tbus.nc.flush()
    await asyncio.sleep(0.05)
    assert got == [b"1"]


async def test_typed_request_reply_no_responders_and_timeout(tbus: Bus, prefix: str) -> None:
    codec = Codec[Rollcall | ErrorReply](Rollcall | ErrorReply)

    async def echo(value: Rollcall | ErrorReply, _: Incoming) -> Message | None:
        assert isinstance(value, Rollcall)
        return Rollcall(supervisor_id=value.supervisor_id + "!")

    async def silent(value: Rollcall | ErrorReply, _: Incoming) -> Message | None:
        await asyncio.sleep(0.4)
        return None

    await tbus.subscribe(f"{prefix}.echo", codec, echo)
    await tbus.subscribe(f"{prefix}.silent", codec, silent, concurrency=4)
    reply = await tbus.request(f"{prefix}.echo", Rollcall(supervisor_id="s"), codec)
    assert reply == Rollcall(supervisor_id="s!")
    with pytest.raises(NoResponders):
        await tbus.request(f"{prefix}.nobody", Rollcall(supervisor_id="s"), codec, timeout_s=1)
    with pytest.raises(RequestTimeout):
        await tbus.request(f"{prefix}.silent", Rollcall(supervisor_id="s"), codec, timeout_s=0.2)


async def test_jetstream_publish_acks_deduplicates_and_reports_api_errors(tbus: Bus) -> None:
    subject = tbus.subjects.submit()
    submit = Submit(task_id="01TRANSPORT", skill="write", input=msgspec.Raw(b"{}"))
    first = await tbus.publish_js(subject, submit, msg_id="m-1")
    again = await tbus.publish_js(subject, submit, msg_id="m-1")
    assert first.seq > 0 and not first.duplicate
    assert again.duplicate and again.seq == first.seq
    stream = tbus.subjects.stream(Stream.TASKS)
    assert first.stream == stream
    # A failed expected-last-sequence check is the stream's typed error.
    future = await tbus.publish_async(subject, b"{}", {"Nats-Expected-Last-Sequence": "999999"})
    with pytest.raises(nats.js.errors.APIError):
        await future
    assert tbus.transport.api_prefix == "$JS.API"


async def test_consumed_messages_are_acked_once_and_not_redelivered(tbus: Bus) -> None:
    subject = tbus.subjects.submit()
    for n in range(5):
        await tbus.publish_js(
            subject, Submit(task_id=f"01ACK{n}", skill="edit", input=msgspec.Raw(b"{}"))
        )
    seen: list[str] = []
    done = asyncio.Event()

    async def handle(submit: Submit, _: Incoming) -> None:
        seen.append(submit.task_id)
        if len(seen) == 5:
            done.set()

    codec = Codec[Submit](Submit)
    consuming = asyncio.create_task(
        tbus.consume(subject, "conformance", codec, handle, ack_wait_s=30)
    )
    try:
        await asyncio.wait_for(done.wait(), 5)
        stream = tbus.subjects.stream(Stream.TASKS)
        async with asyncio.timeout(2):
            while (info := await tbus.js.consumer_info(stream, "conformance")).num_ack_pending:
                await asyncio.sleep(0.02)
        assert info.num_redelivered == 0 and info.num_pending == 0
    finally:
        consuming.cancel()
        await asyncio.gather(consuming, return_exceptions=True)
    assert seen == [f"01ACK{n}" for n in range(5)]


# -- tracing wraps the chosen transport --------------------------------------------------


async def test_with_tracing_on_every_send_goes_through_the_chosen_transport(
    tbus: Bus, prefix: str, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    chosen = tbus.transport

    def counting(name: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.append(f"{name} {args[0]}")
            return await method(*args, **kwargs)

        return wrapper

    for name in ("publish", "request", "publish_js"):
        monkeypatch.setattr(chosen, name, counting(name, getattr(chosen, name)))
    codec = Codec[Cancel](Cancel)

    async def answer(value: Cancel, _: Incoming) -> Message | None:
        return value

    await tbus.subscribe(f"{prefix}.req", codec, answer)
    await tbus.publish(f"{prefix}.plain", Cancel(task_id="t", token="01"))
    await tbus.request(f"{prefix}.req", Cancel(task_id="t", token="01"), codec)
    await tbus.publish_js(
        tbus.subjects.submit(), Submit(task_id="01TRACED", skill="x", input=msgspec.Raw(b"{}"))
    )
    assert f"publish {prefix}.plain" in calls
    assert f"request {prefix}.req" in calls
    assert f"publish_js {tbus.subjects.submit()}" in calls
    names = {span.name for span in spans.get_finished_spans()}
    assert {
        f"publish {prefix}.plain",
        f"publish {prefix}.req",
        f"publish {tbus.subjects.submit()}",
    } <= names
    # The request's span ended when its reply came, and the handler's span is its child.
    [request_span] = [s for s in spans.get_finished_spans() if s.name == f"publish {prefix}.req"]
    [process] = [s for s in spans.get_finished_spans() if s.name == f"process {prefix}.req"]
    assert process.parent is not None and process.parent.span_id == request_span.context.span_id


@pytest.mark.parametrize(
    "name", ["_process_msg", "_process_headers", "_remove_sub", "_ps", "parse"]
)
def test_a_private_name_the_fast_client_overrides_is_still_checked_in_nats_py(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # FleetNats overrides these (or sets them itself, `_ps`), so asking the
    # fast client whether it has them always says yes; what matters is
    # whether nats-py still calls them, i.e. whether nats-py has them.
    from nats.aio.client import Client as NatsClient
    from nats.protocol.parser import Parser

    if name == "parse":
        monkeypatch.delattr(Parser, name)
        expected = f"Parser.{name}"
    elif name == "_ps":
        init = NatsClient.__init__

        def without_parser(self: NatsClient) -> None:
            init(self)
            del self._ps

        monkeypatch.setattr(NatsClient, "__init__", without_parser)
        expected = "Client._ps"
    else:
        monkeypatch.delattr(NatsClient, name)
        expected = f"Client.{name}"
    assert expected in FastTransport.missing()
    with pytest.raises(BadNatsConfig, match=expected.split(".")[1]):
        choose("fast", "nats://127.0.0.1:4222")


async def test_a_traced_jetstream_publish_that_times_out_ends_its_span_failed(
    tbus: Bus, prefix: str, spans: InMemorySpanExporter
) -> None:
    # The caller's own bound (`timeout_s` below `js_timeout_s`, as the agent's
    # outbox uses): the span ends with the error the caller got, not as a success.
    from opentelemetry.trace import StatusCode

    silent = f"{prefix}.silent"
    await tbus.transport.subscribe(silent, lambda msg: None)  # answers nothing
    with pytest.raises(nats.errors.TimeoutError):
        await tbus.publish_js(silent, Cancel(task_id="t", token="01"), timeout_s=0.1)
    await asyncio.sleep(0)  # the future's done callbacks (which end the span) run next
    [span] = [s for s in spans.get_finished_spans() if s.name == f"publish {silent}"]
    assert span.status.status_code == StatusCode.ERROR
    assert "TimeoutError" in (span.status.description or "")
