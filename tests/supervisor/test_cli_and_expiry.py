"""The task CLI's exit codes against a real fleet, and the schedule-to-start and
schedule-to-close expiry paths (bounds asserted with explicit tolerances)."""

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from natsfleet.protocols import DlqReason, RemoteError, Stream, TaskState, Timeouts

NATSFLEET = str(Path(sys.executable).parent / "natsfleet")
TOLERANCE_S = 1.5  # scheduling, timer and process-start slack on a loaded 2-core machine


async def cli(fleet: Any, *args: str, timeout_s: float = 30) -> subprocess.CompletedProcess[str]:
    command = [NATSFLEET, *args, "--nats", fleet.server.url, "--prefix", fleet.prefix]
    return await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=timeout_s
    )


async def test_submit_status_cancel_exit_codes(fleet: Any) -> None:
    await fleet.supervisor()
    await fleet.agent("a1")
    done = await cli(fleet, "submit", "echo", "--input", '{"n": 3}', "--wait", "--json")
    assert done.returncode == 0, done.stderr
    final = json.loads(done.stdout.strip().splitlines()[-1])
    assert final["state"] == "completed" and final["output"] == 3
    failed = await cli(
        fleet, "submit", "echo", "--input", '{"fail": "Boom", "retryable": false}', "--wait"
    )
    assert failed.returncode == 1, failed.stdout
    rejected = await cli(fleet, "submit", "nobody", "--input", "{}", "--wait")
    assert rejected.returncode == 3, rejected.stdout
    slow = await cli(
        fleet, "submit", "echo", "--input", '{"sleep_s": 5}', "--wait", "--timeout", "0.3"
    )
    assert slow.returncode == 4, slow.stdout
    usage = await cli(fleet, "submit", "echo", "--input", "{not json")
    assert usage.returncode == 2
    unknown = await cli(fleet, "status", "NO-SUCH-TASK")
    assert unknown.returncode == 2 and "unknown_task" in unknown.stdout + unknown.stderr
    queued = await cli(fleet, "submit", "nobody", "--input", "{}", "--queue", "--json")
    assert queued.returncode == 0
    task_id = json.loads(queued.stdout.strip().splitlines()[-1])["task_id"]
    canceled = await cli(fleet, "cancel", task_id)
    assert canceled.returncode == 0, canceled.stdout + canceled.stderr
    event = await fleet.client.wait(task_id, timeout_s=10)
    assert event.state == TaskState.CANCELED


async def test_schedule_to_start_expires_unschedulable_tasks(fleet: Any) -> None:
    await fleet.supervisor()
    started = time.monotonic()
    task_id = await fleet.client.submit(
        "nobody", {}, queue=True, timeouts=Timeouts(schedule_to_start_s=0.4)
    )
    event = await fleet.client.wait(task_id, timeout_s=10)
    elapsed = time.monotonic() - started
    assert event.state == TaskState.FAILED, event
    assert 0.4 <= elapsed <= 0.4 + TOLERANCE_S, elapsed
    record = await fleet.client.status(task_id)
    assert record.dead_letter == DlqReason.UNSCHEDULABLE and record.attempts == 0


async def test_schedule_to_close_ends_a_running_task(fleet: Any) -> None:
    await fleet.supervisor()
    await fleet.agent("a1")
    started = time.monotonic()
    task_id = await fleet.client.submit(
        "echo", {"sleep_s": 5}, timeouts=Timeouts(schedule_to_close_s=0.6)
    )
    event = await fleet.client.wait(task_id, timeout_s=10)
    elapsed = time.monotonic() - started
    assert event.state == TaskState.FAILED, event
    assert 0.6 <= elapsed <= 0.6 + TOLERANCE_S, elapsed
    record = await fleet.client.status(task_id)
    assert record.dead_letter == DlqReason.DEADLINE


async def test_cancel_of_a_submit_still_waiting_in_tasks(fleet: Any) -> None:
    # One slot, busy; max_waiting=1: one task waits in the supervisor's queue and
    # the next stays in TASKS (backpressure), known only as a message there.
    await fleet.supervisor(max_waiting=1)
    await fleet.agent("a1", capacity=1)
    busy = await fleet.client.submit("echo", {"sleep_s": 5})
    first = await fleet.client.submit("echo", {"n": 1})
    deadline = time.monotonic() + 10
    while True:  # the first is admitted and waits for the slot; the second cannot be
        try:
            if (await fleet.client.status(first)).state == TaskState.QUEUED:
                break
        except RemoteError:
            pass
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    second = await fleet.client.submit("echo", {"n": 2})
    # Wait until the supervisor has been handed the second Submit (and refused it).
    tasks = fleet.bus.subjects.stream(Stream.TASKS)
    last = (await fleet.bus.js.stream_info(tasks)).state.last_seq
    while (
        await fleet.bus.js.consumer_info(tasks, "supervisor-p0-tasks-e1")
    ).delivered.stream_seq < last:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    with pytest.raises(RemoteError):
        await fleet.client.status(second)  # not admitted: only in TASKS
    ack = await fleet.client.cancel(second, "changed my mind")
    assert ack.state == TaskState.CANCELED
    event = await fleet.client.wait(second, timeout_s=10)
    assert event.state == TaskState.CANCELED
    assert (await fleet.client.status(second)).state == TaskState.CANCELED
    await fleet.client.cancel(busy)
    assert (await fleet.client.wait(first, timeout_s=10)).state == TaskState.COMPLETED
