"""Agents that die, stall, fail or refuse; the supervisor's answers."""

import asyncio
import signal
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from helpers import dead_letters, effects

from natsfleet.protocols import DlqReason, RetryPolicy, TaskState

HB_TIMEOUT_S = 0.4


async def _running_on(fleet: Any, task_id: str) -> str:
    """Wait for the task's `working` event; return the instance running it."""
    async for event in fleet.client.watch(task_id):
        if event.state == TaskState.WORKING:
            return str(event.instance_id)
    raise AssertionError("no working event")


async def test_kill_agent_mid_task_completes_elsewhere(fleet: Any, tmp_path: Path) -> None:
    await fleet.supervisor()
    agents = {name: await fleet.agent(name) for name in ("a1", "a2")}
    task_id = await fleet.client.submit("echo", {"n": 1, "sleep_s": 1.0, "effects": str(tmp_path)})
    holder = await asyncio.wait_for(_running_on(fleet, task_id), 5)
    await agents[holder].kill()
    killed_at = time.monotonic()
    event = await fleet.client.wait(task_id, timeout_s=10)
    took_s = time.monotonic() - killed_at
    assert event.state == TaskState.COMPLETED
    assert event.instance_id != holder
    # Detection within the heartbeat timeout, plus the second run (1 s), plus 1 s.
    assert took_s < HB_TIMEOUT_S + 1.0 + 1.0, took_s
    raw, done = effects(tmp_path)
    assert done == [task_id] and len(raw) == 2
    record = await fleet.client.status(task_id)
    assert record.attempts == 2 and record.history[0].outcome == "lost"


async def test_sigstop_past_heartbeat_timeout_late_result_is_stale(
    fleet: Any, tmp_path: Path
) -> None:
    await fleet.supervisor()
    agents = {name: await fleet.agent(name) for name in ("a1", "a2")}
    spec = {"n": 5, "sleep_s": 0.5, "effects": str(tmp_path)}
    task_id = await fleet.client.submit("echo", spec)
    holder = await asyncio.wait_for(_running_on(fleet, task_id), 5)
    agents[holder].signal(signal.SIGSTOP)
    event = await fleet.client.wait(task_id, timeout_s=10)
    assert event.state == TaskState.COMPLETED and event.instance_id != holder
    agents[holder].signal(signal.SIGCONT)

    async def stale_recorded() -> None:
        while not any(d.reason == DlqReason.STALE for d in await dead_letters(fleet.bus)):
            await asyncio.sleep(0.05)

    await asyncio.wait_for(stale_recorded(), 10)
    stale = [d for d in await dead_letters(fleet.bus) if d.reason == DlqReason.STALE]
    assert [d.task_id for d in stale] == [task_id]
    raw, done = effects(tmp_path)
    assert len(raw) == 2, raw  # two raw executions ...
    assert done == [task_id]  # ... one deduplicated effect
    record = await fleet.client.status(task_id)
    assert record.state == TaskState.COMPLETED and record.instance_id != holder


async def test_poison_task_fails_after_max_attempts_with_backoff(fleet: Any) -> None:
    await fleet.supervisor()
    await fleet.agent("a1")
    await fleet.agent("a2")
    policy = RetryPolicy(
        initial_interval_s=0.2, backoff_coefficient=2.0, maximum_attempts=3, jitter=0.0
    )
    poison = await fleet.client.submit("echo", {"fail": "Boom"}, retry=policy)
    good = [await fleet.client.submit("echo", {"n": i, "sleep_s": 0.05}) for i in range(20)]
    event = await fleet.client.wait(poison, timeout_s=15)
    assert event.state == TaskState.FAILED
    record = await fleet.client.status(poison)
    assert record.attempts == 3 and len(record.history) == 3
    gaps = [
        (b.started_ms - (a.ended_ms or 0)) / 1000
        for a, b in zip(record.history, record.history[1:], strict=False)
    ]
    assert 0.18 <= gaps[0] < 0.6, gaps  # 0.2 s, then 0.4 s
    assert 0.38 <= gaps[1] < 0.9, gaps
    letters = [d for d in await dead_letters(fleet.bus) if d.task_id == poison]
    assert [d.reason for d in letters] == [DlqReason.MAX_ATTEMPTS]
    assert len(letters[0].attempts) == 3
    done = await asyncio.gather(*(fleet.client.wait(t, timeout_s=10) for t in good))
    assert all(e.state == TaskState.COMPLETED for e in done)


async def test_non_retryable_fails_after_one_attempt(fleet: Any) -> None:
    await fleet.supervisor()
    await fleet.agent("a1")
    task_id = await fleet.client.submit("echo", {"fail": "Fatal", "retryable": False})
    event = await fleet.client.wait(task_id, timeout_s=10)
    assert event.state == TaskState.FAILED
    record = await fleet.client.status(task_id)
    assert record.attempts == 1
    letters = [d for d in await dead_letters(fleet.bus) if d.task_id == task_id]
    assert [d.reason for d in letters] == [DlqReason.NON_RETRYABLE]


async def test_idempotency_key_three_times_is_one_task(fleet: Any) -> None:
    await fleet.supervisor()
    await fleet.agent("a1")
    ids = {await fleet.client.submit("echo", {"n": 3}, key="order-42") for _ in range(3)}
    assert len(ids) == 1
    (task_id,) = ids
    assert (await fleet.client.wait(task_id, timeout_s=10)).state == TaskState.COMPLETED
    tasks = await fleet.client.list()
    assert [t.task_id for t in tasks] == [task_id]


async def test_unknown_skill_is_rejected_unless_queued(fleet: Any) -> None:
    await fleet.supervisor()
    await fleet.agent("a1")
    task_id = await fleet.client.submit("nobody", {})
    event = await fleet.client.wait(task_id, timeout_s=5)
    assert event.state == TaskState.REJECTED
    queued = await fleet.client.submit("later", {"n": 9}, queue=True)
    await fleet.agent("b1", skills="later")
    assert (await fleet.client.wait(queued, timeout_s=10)).state == TaskState.COMPLETED


async def test_cancel_queued_and_running(fleet: Any) -> None:
    await fleet.supervisor()
    await fleet.agent("a1", capacity=1)
    running = await fleet.client.submit("echo", {"sleep_s": 30})
    await asyncio.wait_for(_running_on(fleet, running), 5)
    queued = await fleet.client.submit("echo", {"n": 1})
    async for event in fleet.client.watch(queued):
        assert event.state == TaskState.QUEUED  # the slot is taken: it waits
        break
    ack = await fleet.client.cancel(queued)
    assert ack.state == TaskState.CANCELED
    ack = await fleet.client.cancel(running)
    assert ack.state == TaskState.CANCELED
    for task_id in (queued, running):
        assert (await fleet.client.wait(task_id, timeout_s=5)).state == TaskState.CANCELED
    # The running attempt was stopped: the slot frees and new work runs.
    after = await fleet.client.submit("echo", {"n": 2})
    assert (await fleet.client.wait(after, timeout_s=10)).state == TaskState.COMPLETED
