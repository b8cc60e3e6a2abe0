"""Submission to result through real supervisor and agent processes."""

import asyncio
from typing import Any

from natsfleet.protocols import TaskState


async def test_task_completes(fleet: Any) -> None:
    await fleet.supervisor()
    await fleet.agent("a1")
    task_id = await fleet.client.submit("echo", {"n": 7})
    event = await fleet.client.wait(task_id, timeout_s=10)
    assert event.state == TaskState.COMPLETED, event
    assert bytes(event.output or b"") == b"7"
    record = await fleet.client.status(task_id)
    assert record.state == TaskState.COMPLETED
    assert record.attempts == 1


async def test_many_tasks(fleet: Any) -> None:
    await fleet.supervisor()
    await fleet.agent("a1", capacity=8)
    await fleet.agent("a2", capacity=8)
    ids = [await fleet.client.submit("echo", {"n": i}) for i in range(100)]
    events = await asyncio.gather(*(fleet.client.wait(t, timeout_s=20) for t in ids))
    assert all(e.state == TaskState.COMPLETED for e in events)
