"""Provisioning, durable consumption and client submission against JetStream."""

import asyncio

import pytest
from nats.js import api as js_api

from natsfleet.bus import Bus, BusConfig, Incoming, StorageConfig
from natsfleet.client import FleetClient, TaskRejected
from natsfleet.process import NatsServer
from natsfleet.protocols import (
    Bucket,
    Codec,
    DlqReason,
    ErrorCode,
    Stream,
    Subjects,
    Submit,
)

from .helpers import dead_letters

SUBMIT = Codec[Submit](Submit)


async def test_provisioning_is_idempotent_and_follows_the_design(bus: Bus) -> None:
    await bus.provision()  # a second time changes nothing
    names = bus.subjects
    tasks = await bus.js.stream_info(names.stream(Stream.TASKS))
    assert tasks.config.retention == js_api.RetentionPolicy.WORK_QUEUE
    assert tasks.config.discard == js_api.DiscardPolicy.NEW
    assert tasks.config.subjects == [names.submit()]
    results = await bus.js.stream_info(names.stream(Stream.RESULTS))
    assert results.config.retention == js_api.RetentionPolicy.WORK_QUEUE
    assert results.config.duplicate_window == pytest.approx(600)
    events = await bus.js.stream_info(names.stream(Stream.EVENTS))
    assert events.config.max_age == pytest.approx(7 * 86_400)
    dlq = await bus.js.stream_info(names.stream(Stream.DLQ))
    assert dlq.config.max_age == pytest.approx(30 * 86_400)
    for bucket in Bucket:
        await bus.kv(bucket)  # raises if missing
    idem = await bus.js.stream_info(f"KV_{names.bucket(Bucket.IDEM)}")
    assert idem.config.max_age == pytest.approx(86_400)

    await bus.provision(StorageConfig(tasks_max_msgs=10))
    tasks = await bus.js.stream_info(names.stream(Stream.TASKS))
    assert tasks.config.max_msgs == 10


async def test_provisioning_lets_an_older_state_bucket_take_message_ttls(
    nats_server: NatsServer, prefix: str
) -> None:
    # A STATE bucket as an earlier version made it: no per-message TTLs.
    name = f"KV_{Subjects(prefix).bucket(Bucket.STATE)}"
    async with Bus(BusConfig(url=nats_server.url, prefix=prefix), role="test") as bus:
        await bus.js.add_stream(
            js_api.StreamConfig(
                name=name, subjects=[f"$KV.{name[3:]}.>"], max_msgs_per_subject=1,
                allow_rollup_hdrs=True, deny_delete=True, allow_direct=True,
                discard=js_api.DiscardPolicy.NEW, allow_msg_ttl=False,
            )
        )  # fmt: skip
        assert not (await bus.js.stream_info(name)).config.allow_msg_ttl
        for _ in range(2):  # and again: nothing more to change
            await bus.provision()
            config = (await bus.js.stream_info(name)).config
            assert config.allow_msg_ttl
            assert config.max_msgs_per_subject == 1
        kv = await bus.kv(Bucket.STATE)
        await kv.create("t1", b"{}", msg_ttl=60)  # refused without the flag


async def test_submit_beyond_the_tasks_maximum_is_rejected_with_backpressure(bus: Bus) -> None:
    await bus.provision(StorageConfig(tasks_max_msgs=3))
    client = FleetClient(bus)
    for n in range(3):
        await client.submit("echo", {"n": n})
    with pytest.raises(TaskRejected) as info:
        await client.submit("echo", {"n": 4})
    assert info.value.code is ErrorCode.BACKPRESSURE and info.value.retryable


async def test_same_idempotency_key_gives_one_task(bus: Bus) -> None:
    client = FleetClient(bus)
    ids = {await client.submit("echo", {"n": 1}, key="order-42") for _ in range(3)}
    assert len(ids) == 1
    info = await bus.js.stream_info(bus.subjects.stream(Stream.TASKS))
    assert info.state.messages == 1  # re-publishes were deduplicated by Msg-Id
    other = await client.submit("echo", {"n": 1}, key="order-43")
    assert other not in ids


async def test_consume_acks_handled_dead_letters_bad_and_redelivers_failed(bus: Bus) -> None:
    client = FleetClient(bus)
    first = await client.submit("echo", {"n": 1})
    await bus.nc.publish(bus.subjects.submit(), b"not a submit")  # captured by TASKS
    second = await client.submit("echo", {"n": 2})
    seen: list[str] = []
    failed_once: set[str] = set()
    done = asyncio.Event()

    async def handle(submit: Submit, incoming: Incoming) -> None:
        if submit.task_id == second and second not in failed_once:
            failed_once.add(second)
            raise RuntimeError("transient")
        seen.append(submit.task_id)
        if len(seen) == 2:
            done.set()

    consumer = asyncio.create_task(
        bus.consume(
            bus.subjects.submit(),
            "test-consumer",
            SUBMIT,
            handle,
            stream=bus.subjects.stream(Stream.TASKS),
        )
    )
    try:
        await asyncio.wait_for(done.wait(), 5)
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
    assert seen == [first, second]
    [entry] = await dead_letters(bus, 1)
    assert entry.reason is DlqReason.DECODE_ERROR and entry.payload == b"not a submit"
    async with asyncio.timeout(5):
        while (await bus.js.stream_info(bus.subjects.stream(Stream.TASKS))).state.messages:
            await asyncio.sleep(0.02)  # work-queue retention removes acked and termed messages
