"""Finished tasks leave the supervisor's memory at once and KV STATE after their TTL."""

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from nats.js import errors as js_errors

sys.path.insert(0, str(Path(__file__).parent))
from conftest import FAST
from helpers import Tracker, dead_letters, terminal_events

from natsfleet.bus import BusConfig
from natsfleet.process import NatsServer
from natsfleet.protocols import (
    Bucket,
    DlqReason,
    RemoteError,
    Result,
    Stream,
    Submit,
    TaskState,
)
from natsfleet.supervisor import Supervisor, SupervisorConfig

RETENTION_S = 4.0
COUNT = 40


async def _until(check: Callable[[], Awaitable[bool]], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.fixture
async def supervisor(nats_server: NatsServer, prefix: str) -> AsyncIterator[Supervisor]:
    """An in-process supervisor, so the test can look at its memory."""
    raw = {**FAST, "retention_s": RETENTION_S, "supervisor_id": "sup-mem"}
    sup = Supervisor(
        msgspec.convert(raw, SupervisorConfig), BusConfig(url=nats_server.url, prefix=prefix)
    )
    running = asyncio.create_task(sup.run())
    try:
        await asyncio.wait_for(sup.active.wait(), 15)
        yield sup
    finally:
        sup.shutdown()
        await asyncio.wait_for(running, 15)


async def test_finished_tasks_leave_memory_and_expire(fleet: Any, supervisor: Supervisor) -> None:
    tracker = Tracker(fleet.bus)
    await tracker.start()
    await fleet.agent("a1", capacity=8)
    ids = await asyncio.gather(*(fleet.client.submit("echo", {"n": n}) for n in range(COUNT)))
    await tracker.done(COUNT, timeout_s=30)
    engine = supervisor.engine
    assert engine is not None

    async def memory_empty() -> bool:
        # Records and their timers both: nothing per finished task stays behind.
        return len(engine.store) == 0 and len(engine.timers) == 0

    await _until(memory_empty, 5)

    # Read from KV now: status, list, cancel of a finished task.
    record = await fleet.client.status(ids[0])
    assert record.state == TaskState.COMPLETED
    listed = {t.task_id for t in await fleet.client.list(TaskState.COMPLETED, limit=COUNT)}
    assert listed == set(ids)
    assert {t.task_id for t in await fleet.client.list(limit=COUNT)} == set(ids)
    ack = await fleet.client.cancel(ids[1], "too late")
    assert ack.state == TaskState.COMPLETED

    # A redelivered result and a duplicate Submit of finished tasks change nothing.
    before = await fleet.client.status(ids[2])
    again = Result(
        task_id=record.task_id, token=record.token or "", attempt=record.attempts,
        instance_id=record.instance_id or "", agent=record.agent or "", output=record.output,
    )  # fmt: skip
    subject = fleet.bus.subjects.result(again.agent, again.instance_id)
    await fleet.bus.publish_js(subject, again)
    submit = Submit(task_id=ids[2], skill="echo", input=msgspec.Raw(b'{"n": 2}'))
    await fleet.bus.publish_js(fleet.bus.subjects.submit(), submit)

    async def drained() -> bool:
        for stream in (Stream.RESULTS, Stream.TASKS):
            info = await fleet.bus.js.stream_info(fleet.bus.subjects.stream(stream))
            if info.state.messages:
                return False
        return True

    await _until(drained, 5)
    assert await fleet.client.status(ids[2]) == before
    finals = await terminal_events(fleet.bus, expect=ids)
    assert all(len(finals[task_id]) == 1 for task_id in ids), finals
    assert not [d for d in await dead_letters(fleet.bus) if d.reason == DlqReason.STALE]
    assert len(engine.store) == 0
    assert len(tracker.ended) == COUNT

    # The TTL removes them from KV STATE; then they are unknown.
    kv = await fleet.bus.kv(Bucket.STATE)

    async def expired() -> bool:
        try:
            await kv.get(ids[-1])
        except js_errors.KeyNotFoundError:
            return True
        return False

    await _until(expired, RETENTION_S + 5)
    with pytest.raises(RemoteError):
        await fleet.client.status(ids[-1])
    assert (await kv.status()).stream_info.state.messages == 0
