"""The deposed supervisor's create window: a late create plus a late ack of its Submit."""

import asyncio
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).parent))
from conftest import FAST
from helpers import terminal_events

from natsfleet.protocols import Bucket, Codec, RemoteError, Stream, Submit, TaskState, encode
from natsfleet.supervisor import transitions as tr
from natsfleet.supervisor.config import SupervisorConfig

_SUBMIT = Codec[Submit](Submit)


async def _state(fleet: Any, task_id: str) -> TaskState | None:
    try:
        return (await fleet.client.status(task_id)).state
    except RemoteError:  # not admitted yet
        return None


async def test_late_create_and_ack_of_a_deposed_supervisor_is_adopted(fleet: Any) -> None:
    # Term 1 (epoch 1) with a long ack wait: what it fetched stays its own.
    sup_a = await fleet.supervisor("sup-a", ack_wait_s=30.0)
    await fleet.agent("a1", capacity=4)
    hello = fleet.hellos["a1"].result()
    tasks = fleet.bus.subjects.stream(Stream.TASKS)
    deadline = time.monotonic() + 10
    while not (consumers := await fleet.bus.js.consumers_info(tasks)):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    (old,) = [c.name for c in consumers]
    await sup_a.kill()

    # As the deposed term: two Submits fetched (delivered, not acked) on its consumer...
    ids = [await fleet.client.submit("echo", {"n": n}) for n in (1, 2)]
    psub = await fleet.bus.js.pull_subscribe_bind(durable=old, stream=tasks)
    msgs = await psub.fetch(2, timeout=5)
    submits = {s.task_id: s for s in (_SUBMIT.decode(m.data) for m in msgs)}
    assert sorted(submits) == sorted(ids)

    # ...a new term loads STATE (it announces itself after take-over; a long
    # warm-up holds its consumption back, so the late creates land first)...
    sup_b = await fleet.supervisor("sup-b", registry_warmup_s=3.0)

    # ...then the deposed term's creates land, with its old epoch: one waiting
    # task, one assigned to a1 (the Assign never sent), and its acks follow.
    kv = await fleet.bus.kv(Bucket.STATE)
    cfg = msgspec.convert(FAST, SupervisorConfig)
    now = int(time.time() * 1000)
    queued = tr.new_record(submits[ids[0]], cfg.timeouts, cfg.retry, now)
    running = tr.assigned(
        tr.new_record(submits[ids[1]], cfg.timeouts, cfg.retry, now),
        token=secrets.token_hex(8), instance_id="a1", agent=hello.agent, now_ms=now,
        assign_timeout_s=cfg.assign_timeout_s,
    )  # fmt: skip
    for record in (queued, running):
        await kv.create(record.task_id, encode(tr.adopted(record, 1, now)))
    for msg in msgs:
        await msg.ack()
    await fleet.bus.nc.flush()

    for task_id in ids:
        event = await fleet.client.wait(task_id, timeout_s=15)
        assert event.state == TaskState.COMPLETED, event
    finals = await terminal_events(fleet.bus, expect=ids)
    for task_id in ids:
        assert len(finals[task_id]) == 1, finals[task_id]
        record = await fleet.client.status(task_id)
        assert record.epoch > 1, record
        assert sum(1 for a in record.history if a.outcome == "completed") == 1, record
    # The assigned one's phantom attempt was lost (a1's heartbeat lacks its token).
    assert [a.outcome for a in (await fleet.client.status(ids[1])).history] == [
        "lost",
        "completed",
    ]
    assert "adopting it" in sup_b.log()


async def test_late_ack_of_a_result_by_a_deposed_supervisor_hides_nothing(fleet: Any) -> None:
    sup_a = await fleet.supervisor("sup-a", ack_wait_s=30.0)
    await fleet.agent("a1", capacity=4)
    task_id = await fleet.client.submit("echo", {"n": 7, "sleep_s": 0.5})
    results = fleet.bus.subjects.stream(Stream.RESULTS)
    deadline = time.monotonic() + 10
    while await _state(fleet, task_id) != TaskState.WORKING:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    (old,) = [c.name for c in await fleet.bus.js.consumers_info(results)]
    await sup_a.kill()

    # As the deposed term: the result fetched on its consumer, not yet acked...
    while (await fleet.bus.js.stream_info(results)).state.messages == 0:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    psub = await fleet.bus.js.pull_subscribe_bind(durable=old, stream=results)
    (msg,) = await psub.fetch(1, timeout=5)
    # ...a new term takes over, then the deposed term's ack lands.
    await fleet.supervisor("sup-b")
    await msg.ack()
    await fleet.bus.nc.flush()

    event = await fleet.client.wait(task_id, timeout_s=10)
    assert event.state == TaskState.COMPLETED, event
    record = await fleet.client.status(task_id)
    assert [a.outcome for a in record.history] == ["completed"], record.history
    finals = await terminal_events(fleet.bus, expect=[task_id])
    assert len(finals[task_id]) == 1
