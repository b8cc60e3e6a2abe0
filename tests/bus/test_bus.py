"""The Bus against a real nats-server: request/reply, queue groups, headers,
reconnect, and every malformed case dead-lettered while serving goes on."""

import asyncio
from typing import Any

import msgspec
import pytest

from natsfleet.bus import Bus, BusConfig, Incoming, NoResponders, RequestTimeout
from natsfleet.process import NatsServer
from natsfleet.protocols import (
    VERSION_HEADER,
    AgentInbox,
    Cancel,
    Codec,
    DlqReason,
    ErrorCode,
    ErrorReply,
    Message,
    RemoteError,
    StatusRequest,
    Stream,
    TaskRecord,
    TaskState,
    TaskStatusReply,
    encode,
)

from .helpers import dead_letters

STATUS = Codec[StatusRequest](StatusRequest)
STATUS_REPLY = Codec[TaskStatusReply | ErrorReply](TaskStatusReply | ErrorReply)


async def status_handler(request: StatusRequest, incoming: Incoming) -> Message | None:
    if request.task_id == "boom":
        raise RuntimeError("handler bug")
    record = TaskRecord(task_id=request.task_id, state=TaskState.QUEUED, input=msgspec.Raw(b"{}"))
    return TaskStatusReply(task=record)


async def test_request_reply_round_trip(bus: Bus) -> None:
    subject = bus.subjects.control("status")
    await bus.subscribe(subject, STATUS, status_handler)
    reply = await bus.request(subject, StatusRequest(task_id="T1"), STATUS_REPLY, timeout_s=2)
    assert isinstance(reply, TaskStatusReply)
    assert reply.task.task_id == "T1" and reply.task.state is TaskState.QUEUED


async def test_request_errors_are_typed(bus: Bus) -> None:
    subject = bus.subjects.control("status")
    with pytest.raises(NoResponders):
        await bus.request(subject, StatusRequest(task_id="x"), STATUS_REPLY, timeout_s=0.5)

    async def silent(_: StatusRequest, __: Incoming) -> Message | None:
        return None

    await bus.subscribe(subject, STATUS, silent)
    with pytest.raises(RequestTimeout):
        await bus.request(subject, StatusRequest(task_id="x"), STATUS_REPLY, timeout_s=0.1)


async def test_queue_group_splits_load(nats_server: NatsServer, prefix: str) -> None:
    config = BusConfig(url=nats_server.url, prefix=prefix)
    buses = [await Bus(config, instance=str(i)).connect() for i in range(3)]
    received: list[list[str]] = [[], []]
    done = asyncio.Event()
    total = 200

    def handler_for(index: int) -> Any:
        async def handle(message: Cancel, _: Incoming) -> Message | None:
            received[index].append(message.task_id)
            if sum(map(len, received)) == total:
                done.set()
            return None

        return handle

    subject = bus_subject = buses[0].subjects.cancel("echo", "shared")
    for index in (0, 1):
        await buses[index].subscribe(
            bus_subject, Codec[Cancel](Cancel), handler_for(index), queue="workers"
        )
    for n in range(total):
        await buses[2].publish(subject, Cancel(task_id=str(n), token="00"))
    await asyncio.wait_for(done.wait(), 5)
    assert len(received[0]) > 0 and len(received[1]) > 0
    assert sorted(received[0] + received[1], key=int) == [str(n) for n in range(total)]
    for bus in buses:
        await bus.close()


async def test_headers_round_trip(bus: Bus) -> None:
    seen: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()

    async def handle(_: Cancel, incoming: Incoming) -> Message | None:
        seen.set_result(incoming.headers)
        return None

    bus.header_hooks.append(lambda headers: headers.setdefault("traceparent", "00-abc-def-01"))
    subject = bus.subjects.cancel("a", "b")
    await bus.subscribe(subject, Codec[Cancel](Cancel), handle)
    await bus.publish(subject, Cancel(task_id="t", token="01"), headers={"X-Custom": "yes"})
    headers = await asyncio.wait_for(seen, 2)
    assert headers["X-Custom"] == "yes"
    assert headers[VERSION_HEADER] == "1"
    assert headers["traceparent"] == "00-abc-def-01"


async def test_reconnects_after_server_restart_and_keeps_jetstream_data(
    bus: Bus, nats_server: NatsServer
) -> None:
    got: asyncio.Queue[str] = asyncio.Queue()

    async def handle(message: Cancel, _: Incoming) -> Message | None:
        await got.put(message.task_id)
        return None

    subject = bus.subjects.cancel("a", "b")
    await bus.subscribe(subject, Codec[Cancel](Cancel), handle)
    await bus.publish_js(
        bus.subjects.all_dlq().replace(">", "test"), Cancel(task_id="kept", token="01")
    )
    await bus.publish(subject, Cancel(task_id="before", token="01"))
    assert await asyncio.wait_for(got.get(), 2) == "before"

    await nats_server.restart()
    async with asyncio.timeout(10):
        while not bus.is_connected or bus.stats.reconnects < 1:
            await asyncio.sleep(0.02)
        # Re-subscription is asynchronous after a reconnect: publish until heard.
        while got.empty():
            await bus.publish(subject, Cancel(task_id="after", token="01"))
            await asyncio.sleep(0.05)
    assert await got.get() == "after"
    info = await bus.js.stream_info(bus.subjects.stream(Stream.DLQ))
    assert info.state.messages == 1
    assert bus.stats.disconnects >= 1


MALFORMED: list[tuple[str, bytes, dict[str, str], DlqReason]] = [
    ("garbage", b"\x00\x01 not json", {}, DlqReason.DECODE_ERROR),
    ("wrong-type", encode(StatusRequest(task_id="x")), {}, DlqReason.UNKNOWN_TYPE),
    ("missing-field", b'{"type": "task.cancel", "token": "01"}', {}, DlqReason.DECODE_ERROR),
    ("unknown-tag", b'{"type": "task.explode", "task_id": "x"}', {}, DlqReason.UNKNOWN_TYPE),
    (
        "too-large",
        b'{"type": "task.cancel", "pad": "' + b"x" * 5000 + b'"}',
        {},
        DlqReason.TOO_LARGE,
    ),
    (
        "future-version",
        encode(Cancel(task_id="x", token="01")),
        {VERSION_HEADER: "99"},
        DlqReason.UNSUPPORTED_VERSION,
    ),
]


async def test_malformed_messages_are_dead_lettered_and_serving_goes_on(bus: Bus) -> None:
    good: asyncio.Queue[str] = asyncio.Queue()

    async def handle(message: AgentInbox, _: Incoming) -> Message | None:
        await good.put(message.task_id)
        return None

    subject = bus.subjects.inbox("echo", "e-1").replace("*", "cancel")
    await bus.subscribe(subject, Codec[AgentInbox](AgentInbox), handle, max_bytes=4096)
    for _, payload, headers, _ in MALFORMED:
        # Nats-Msg-Id on the original must not leak onto the DLQ wrapper.
        await bus.nc.publish(subject, payload, headers={**headers, "Nats-Msg-Id": "orig"})
        await bus.publish(subject, Cancel(task_id="still-serving", token="01"))
        assert await asyncio.wait_for(good.get(), 2) == "still-serving"

    entries = await dead_letters(bus, len(MALFORMED))
    assert [entry.reason for entry in entries] == [case[3] for case in MALFORMED]
    for entry, (_, payload, _, _) in zip(entries, MALFORMED, strict=True):
        assert entry.subject == subject
        assert entry.payload == payload
        assert entry.headers.get("Nats-Msg-Id") == "orig"  # kept as data only
        assert entry.error and entry.source == bus.source


async def test_malformed_request_gets_typed_error_reply(bus: Bus) -> None:
    subject = bus.subjects.control("status")
    await bus.subscribe(subject, STATUS, status_handler)
    reply = await bus.nc.request(subject, b"{not json", timeout=2)
    error = Codec[ErrorReply](ErrorReply).decode(reply.data)
    assert error.code is ErrorCode.BAD_REQUEST
    with pytest.raises(RemoteError) as info:
        await bus.request(subject, Cancel(task_id="x", token="1"), STATUS_REPLY, timeout_s=2)
    assert info.value.code is ErrorCode.UNKNOWN_TYPE
    # A handler bug is answered `internal`, dead-lettered, and the next request served.
    with pytest.raises(RemoteError) as info:
        await bus.request(subject, StatusRequest(task_id="boom"), STATUS_REPLY, timeout_s=2)
    assert info.value.code is ErrorCode.INTERNAL and info.value.retryable
    ok = await bus.request(subject, StatusRequest(task_id="fine"), STATUS_REPLY, timeout_s=2)
    assert isinstance(ok, TaskStatusReply)
    reasons = [entry.reason for entry in await dead_letters(bus, 3)]
    assert reasons == [DlqReason.DECODE_ERROR, DlqReason.UNKNOWN_TYPE, DlqReason.HANDLER_ERROR]


async def test_payload_over_max_payload_travels_through_the_object_store(bus: Bus) -> None:
    subject = bus.subjects.control("status")
    await bus.subscribe(subject, STATUS, status_handler)
    big_id = "x" * (3 * 1024 * 1024)
    reply = await bus.request(subject, StatusRequest(task_id=big_id), STATUS_REPLY, timeout_s=5)
    assert isinstance(reply, TaskStatusReply) and reply.task.task_id == big_id
    assert bus.stats.blobs_offloaded == 2  # the request and the reply


async def test_slow_consumer_is_counted_not_fatal(nats_server: NatsServer, prefix: str) -> None:
    config = BusConfig(url=nats_server.url, prefix=prefix, pending_msgs_limit=5)
    async with Bus(config) as slow, Bus(BusConfig(url=nats_server.url, prefix=prefix)) as fast:
        release = asyncio.Event()
        handled: list[str] = []

        async def handle(message: Cancel, _: Incoming) -> Message | None:
            await release.wait()
            handled.append(message.task_id)
            return None

        subject = slow.subjects.cancel("a", "b")
        await slow.subscribe(subject, Codec[Cancel](Cancel), handle)
        for n in range(50):
            await fast.publish(subject, Cancel(task_id=str(n), token="01"))
        await fast.nc.flush()
        async with asyncio.timeout(5):
            while slow.stats.slow_consumer_errors == 0:
                await asyncio.sleep(0.01)
        release.set()
        # Still serving: a message sent once the backlog drains is handled
        # (re-sent while the buffer may still be full and drop it).
        async with asyncio.timeout(5):
            while "last" not in handled:
                await fast.publish(subject, Cancel(task_id="last", token="01"))
                await asyncio.sleep(0.05)
