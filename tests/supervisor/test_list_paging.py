"""`ctl.dlq` list and `ctl.list` page by stream sequence and stay fast with
100,000 DLQ entries / task records (and `natsfleet dlq list`, `natsfleet tasks`)."""

import asyncio
import subprocess
import sys
import time
from typing import Any

import msgspec
import pytest

from natsfleet.protocols import (
    Bucket,
    DeadLetter,
    DlqReason,
    DlqReply,
    DlqRequest,
    Hello,
    RemoteError,
    SkillSpec,
    TaskRecord,
    TaskState,
    encode,
    new_task_id,
)
from tests.supervisor.conftest import FAST

ENTRIES = 100_000


async def fill_dlq(fleet: Any, count: int) -> None:
    """`count` DLQ entries (error `entry <n>`), published pipelined: a window
    of unacknowledged JetStream publishes, not one round trip each."""
    bus = fleet.bus
    subject = bus.subjects.dlq(DlqReason.DECODE_ERROR.value)
    window: list[Any] = []
    for n in range(count):
        entry = DeadLetter(
            reason=DlqReason.DECODE_ERROR,
            subject=f"{fleet.prefix}.submit",
            error=f"entry {n}",
            at_ms=n,
            payload=b"x" * 200,
            task_id=f"task-{n}",
        )
        window.append(await bus.publish_async(subject, encode(entry)))
        if len(window) >= 2000:
            await asyncio.gather(*window)
            window.clear()
    await asyncio.gather(*window)


def natsfleet(fleet: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "natsfleet.cli.main", *args,
         "--nats", fleet.server.url, "--prefix", fleet.prefix],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.timeout(120)
async def test_dlq_list_pages_a_big_dlq(fleet: Any) -> None:
    await fleet.supervisor("sup-a")
    await fill_dlq(fleet, ENTRIES)

    started = time.monotonic()
    first = await fleet.client.dlq(DlqRequest(action="list", limit=100), timeout_s=10)
    assert time.monotonic() - started < 5.0
    assert first.total == ENTRIES and first.more
    assert [e.seq for e in first.entries] == list(range(ENTRIES, ENTRIES - 100, -1))
    assert first.entries[0].error == f"entry {ENTRIES - 1}"
    assert first.next_before_seq == ENTRIES - 99

    second = await fleet.client.dlq(
        DlqRequest(action="list", limit=100, before_seq=first.next_before_seq), timeout_s=10
    )
    assert [e.seq for e in second.entries] == list(range(ENTRIES - 100, ENTRIES - 200, -1))

    # Deep in the stream, as fast; the last page says nothing older remains.
    started = time.monotonic()
    last = await fleet.client.dlq(DlqRequest(action="list", limit=1000, before_seq=801))
    assert time.monotonic() - started < 5.0
    assert [e.seq for e in last.entries] == list(range(800, 0, -1))
    assert not last.more and last.next_before_seq is None
    # A page never exceeds its bound, whatever is asked.
    huge = await fleet.client.dlq(DlqRequest(action="list", limit=10**9), timeout_s=10)
    assert len(huge.entries) == 1000
    with pytest.raises(RemoteError, match="bad_request"):  # a cursor is a sequence number
        await fleet.client.dlq(DlqRequest(action="list", before_seq=0))

    # The CLI: a page within the bound, the cursor, then the next page.
    started = time.monotonic()
    out = await asyncio.to_thread(natsfleet, fleet, "dlq", "list", "--limit", "50", "--json")
    assert out.returncode == 0, out.stderr
    assert time.monotonic() - started < 10.0
    page = msgspec.json.decode(out.stdout, type=DlqReply)
    assert len(page.entries) == 50 and page.total == ENTRIES and page.more
    cursor = str(page.next_before_seq)
    out = await asyncio.to_thread(natsfleet, fleet, "dlq", "list", "--before", cursor)
    assert out.returncode == 0, out.stderr
    assert f"50 of {ENTRIES} entries; next page: --before {ENTRIES - 99}" in out.stdout


async def fill_state(fleet: Any, count: int) -> list[str]:
    """`count` finished task records written straight into KV STATE (pipelined)."""
    bus = fleet.bus
    ids = [new_task_id(1_700_000_000_000 + n) for n in range(count)]
    window: list[Any] = []
    for n, task_id in enumerate(ids):
        record = TaskRecord(
            task_id=task_id, skill="echo", state=TaskState.COMPLETED, input=msgspec.Raw(b"{}"),
            attempts=1, created_ms=1_700_000_000_000 + n, updated_ms=1_700_000_000_000 + n,
        )  # fmt: skip
        subject = bus.kv_subject(Bucket.STATE, task_id)
        window.append(await bus.publish_async(subject, msgspec.json.encode(record)))
        if len(window) >= 2000:
            await asyncio.gather(*window)
            window.clear()
    await asyncio.gather(*window)
    return ids


@pytest.mark.timeout(120)
async def test_task_list_pages_a_big_state(fleet: Any) -> None:
    await fleet.supervisor("sup-a")
    ids = await fill_state(fleet, ENTRIES)
    newest_first = ids[::-1]

    started = time.monotonic()
    first = await fleet.client.list_page(limit=100, timeout_s=10)
    assert time.monotonic() - started < 5.0
    assert first.total == ENTRIES and first.more
    assert [t.task_id for t in first.tasks] == newest_first[:100]
    assert first.next_before_seq is not None
    second = await fleet.client.list_page(limit=100, before_seq=first.next_before_seq)
    assert [t.task_id for t in second.tasks] == newest_first[100:200]

    # Deep pages are as fast; walking them all lists every task once.
    started = time.monotonic()
    deep = await fleet.client.list_page(limit=1000, before_seq=1001, timeout_s=10)
    assert time.monotonic() - started < 5.0
    assert [t.task_id for t in deep.tasks] == newest_first[-1000:]
    assert not deep.more and deep.next_before_seq is None
    # A filter that matches nothing still answers quickly, with a cursor to go on.
    started = time.monotonic()
    none = await fleet.client.list_page(TaskState.FAILED, limit=10, timeout_s=10)
    assert time.monotonic() - started < 5.0
    assert none.tasks == () and none.more and none.next_before_seq is not None
    huge = await fleet.client.list_page(limit=10**9, timeout_s=10)
    assert len(huge.tasks) == 1000
    with pytest.raises(RemoteError, match="bad_request"):
        await fleet.client.list_page(before_seq=-5)

    # The CLI: the first page, and the cursor to the next.
    out = await asyncio.to_thread(natsfleet, fleet, "tasks", "--limit", "20")
    assert out.returncode == 0, out.stderr
    assert newest_first[0] in out.stdout
    assert f"20 of {ENTRIES} tasks; next page: --before " in out.stdout
    cursor = out.stdout.rsplit("--before ", 1)[1].split()[0]
    out = await asyncio.to_thread(natsfleet, fleet, "tasks", "--limit", "20", "--before", cursor)
    assert out.returncode == 0, out.stderr
    assert newest_first[20] in out.stdout and newest_first[0] not in out.stdout


async def test_live_state_pages_from_memory(fleet: Any) -> None:
    await fleet.supervisor("sup-a")
    # Nobody offers `later`: queued tasks wait in the supervisor's memory.
    ids = {await fleet.client.submit("later", {"n": n}, queue=True) for n in range(25)}

    async def queued() -> int:
        return (await fleet.client.list_page(TaskState.QUEUED, limit=1)).total

    deadline = time.monotonic() + 15
    while await queued() < len(ids):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    seen: list[str] = []
    cursor = None
    for _ in range(3):
        page = await fleet.client.list_page(TaskState.QUEUED, limit=10, before_seq=cursor)
        assert page.total == len(ids)
        seen += [t.task_id for t in page.tasks]
        cursor = page.next_before_seq
        assert page.more == (cursor is not None)
    assert len(seen) == len(ids) and set(seen) == ids and cursor is None


async def test_agents_page_and_each_reply_fits_a_message(fleet: Any) -> None:
    timeouts = {**FAST["timeouts"], "heartbeat_timeout_s": 60.0}
    await fleet.supervisor("sup-a", timeouts=timeouts)
    # 1,200 instances announcing a skill with a 1 KB description: 1.4 MB in all,
    # more than a server's default max payload (1 MB) in one reply.
    skill = SkillSpec(name="echo", description="d" * 1024)
    count = 1200
    for n in range(count):
        instance = f"e{n:04d}"
        hello = Hello(
            instance_id=instance, agent="echo", incarnation="i1", skills=(skill,),
            capacity=1, heartbeat_interval_s=30.0,
        )  # fmt: skip
        await fleet.bus.publish(fleet.bus.subjects.hello("echo", instance), hello)
    deadline = time.monotonic() + 20
    while (page := await fleet.client.agents_page(limit=1)).total < count:
        assert time.monotonic() < deadline, page.total
        await asyncio.sleep(0.1)

    first = await fleet.client.agents_page()
    assert [a.instance_id for a in first.agents] == [f"e{n:04d}" for n in range(500)]
    assert first.more and first.next_after == "e0499" and first.total == count
    assert len(encode(first)) < fleet.bus.nc.max_payload
    second = await fleet.client.agents_page(after=first.next_after, limit=1000)
    assert len(second.agents) == 500 and second.agents[0].instance_id == "e0500"
    everyone = await fleet.client.agents()  # every page, in order
    assert [a.instance_id for a in everyone] == [f"e{n:04d}" for n in range(count)]
