"""Supervisors that die, stall or restart, and a NATS server that restarts."""

import asyncio
import signal
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).parent))
from conftest import FAST
from helpers import Tracker, terminal_events

from natsfleet.protocols import Bucket, Stream, TaskRecord, TaskState

LEASE_TTL_S = FAST["lease_ttl_s"]


async def _submit_many(fleet: Any, count: int, spec: dict[str, Any]) -> list[str]:
    ids: list[str] = []
    for start in range(0, count, 100):
        stop = min(start + 100, count)
        batch = [fleet.client.submit("echo", {**spec, "n": i}) for i in range(start, stop)]
        ids += await asyncio.gather(*batch)
    return ids


async def _check_exactly_once(fleet: Any, ids: list[str]) -> None:
    finals = await terminal_events(fleet.bus, expect=ids)
    for task_id in ids:
        events = finals.get(task_id, [])
        assert len(events) == 1, (task_id, events)
        record = await fleet.client.status(task_id)
        assert record.state == TaskState.COMPLETED, record
        assert sum(1 for a in record.history if a.outcome == "completed") == 1


async def test_kill_supervisor_during_1000_tasks_and_restart(fleet: Any) -> None:
    tracker = Tracker(fleet.bus)
    await tracker.start()
    sup = await fleet.supervisor("sup-a")
    await fleet.agent("a1", capacity=16)
    await fleet.agent("a2", capacity=16)
    ids = await _submit_many(fleet, 1000, {"sleep_s": 0.01})
    await tracker.done(300, timeout_s=60)
    await sup.kill()
    await fleet.supervisor("sup-a2")
    await tracker.done(1000, timeout_s=90)
    await _check_exactly_once(fleet, ids)


async def test_standby_takes_over_after_kill(fleet: Any) -> None:
    tracker = Tracker(fleet.bus)
    await tracker.start()
    active = await fleet.supervisor("sup-a")
    await fleet.supervisor("sup-b", wait_active=False)
    await fleet.agent("a1", capacity=8)
    ids = await _submit_many(fleet, 200, {"sleep_s": 0.05})
    await tracker.done(50, timeout_s=30)
    await active.kill()
    killed = time.monotonic()
    await fleet.active("sup-b", timeout_s=LEASE_TTL_S + 5)
    took_s = time.monotonic() - killed
    assert took_s < LEASE_TTL_S + 1.0, took_s
    await tracker.done(200, timeout_s=60)
    await _check_exactly_once(fleet, ids)


async def test_deposed_supervisor_changes_no_task(fleet: Any) -> None:
    writes: list[tuple[str, int]] = []
    kv = await fleet.bus.kv(Bucket.STATE)
    watcher = await kv.watchall()

    async def collect() -> None:
        async for entry in watcher:
            if entry is not None and entry.value:
                record = msgspec.json.decode(entry.value, type=TaskRecord)
                writes.append((record.task_id, record.epoch))

    collector = asyncio.create_task(collect())
    tracker = Tracker(fleet.bus)
    await tracker.start()
    active = await fleet.supervisor("sup-a")
    await fleet.supervisor("sup-b", wait_active=False)
    await fleet.agent("a1", capacity=8)
    ids = await _submit_many(fleet, 100, {"sleep_s": 0.3})
    await tracker.done(10, timeout_s=30)
    active.signal(signal.SIGSTOP)
    await fleet.active("sup-b", timeout_s=LEASE_TTL_S + 5)
    takeover = len(writes)
    active.signal(signal.SIGCONT)
    ids += await _submit_many(fleet, 100, {"sleep_s": 0.01})
    await tracker.done(200, timeout_s=60)

    async def deposed_noticed() -> None:
        while "stops acting" not in active.log():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(deposed_noticed(), 10)
    await _check_exactly_once(fleet, ids)
    collector.cancel()
    await watcher.stop()
    old_epoch = writes[0][1]
    # From the moment the standby acted, every write carries its newer epoch.
    first_new = next(i for i, (_, epoch) in enumerate(writes) if epoch > old_epoch)
    assert first_new <= takeover
    late = [w for w in writes[first_new:] if w[1] <= old_epoch]
    assert late == [], late[:5]


async def test_results_published_while_no_supervisor_runs(fleet: Any) -> None:
    tracker = Tracker(fleet.bus)
    await tracker.start()
    sup = await fleet.supervisor("sup-a")
    await fleet.agent("a1", capacity=20)
    ids = await _submit_many(fleet, 20, {"sleep_s": 0.5})

    async def all_running() -> None:
        while len(await fleet.client.list(TaskState.WORKING)) < 20:
            await asyncio.sleep(0.05)

    await asyncio.wait_for(all_running(), 10)
    await sup.kill()
    results = fleet.bus.subjects.stream(Stream.RESULTS)

    async def results_stored() -> None:
        while (await fleet.bus.js.stream_info(results)).state.messages < 20:
            await asyncio.sleep(0.05)

    await asyncio.wait_for(results_stored(), 10)
    assert not tracker.ended
    await fleet.supervisor("sup-b")
    await tracker.done(20, timeout_s=20)
    await _check_exactly_once(fleet, ids)


async def test_nats_server_restart_loses_nothing_acknowledged(fleet: Any) -> None:
    tracker = Tracker(fleet.bus)
    await tracker.start()
    await fleet.supervisor("sup-a")
    await fleet.agent("a1", capacity=8)
    ids = await _submit_many(fleet, 200, {"sleep_s": 0.02})
    await tracker.done(30, timeout_s=30)
    await fleet.server.restart()
    await tracker.done(len(ids), timeout_s=90)
    await _check_exactly_once(fleet, ids)
