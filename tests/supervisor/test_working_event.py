"""In a busy fleet an attempt's `working` event waits `working_event_delay_s`:
a short attempt stores only its end's event (one fsync less per task under
`sync_interval: always`), a running one is still announced, with its
instance; a quiet fleet announces it at the Accept. (`busy` 0: every fleet is
busy; the tests run one task at a time.)"""

import asyncio
import contextlib
import time
from typing import Any

from natsfleet.protocols import TaskEvent, TaskState, is_terminal


async def _events(fleet: Any, task_id: str) -> list[TaskEvent]:
    """The task's stored events, up to its terminal one."""
    events = []
    async with contextlib.aclosing(fleet.client.watch(task_id)) as stream:
        async for event in stream:
            events.append(event)
            if is_terminal(event.state):
                return events
    raise AssertionError(f"no terminal event in {events}")


async def test_an_attempt_that_ends_within_the_delay_stores_only_its_end(fleet: Any) -> None:
    await fleet.supervisor(working_event_delay_s=5.0, working_event_busy_attempts=0)
    await fleet.agent("a1")
    task_id = await fleet.client.submit("echo", {"n": 1})
    assert (await fleet.client.wait(task_id, timeout_s=10)).state == TaskState.COMPLETED
    events = await asyncio.wait_for(_events(fleet, task_id), 10)
    assert [e.state for e in events] == [TaskState.COMPLETED], events
    # The attempt's instance is still on the event that ended it.
    assert events[0].instance_id == "a1"


async def test_a_running_attempt_is_announced_after_the_delay(fleet: Any) -> None:
    await fleet.supervisor(working_event_delay_s=0.3, working_event_busy_attempts=0)
    await fleet.agent("a1")
    start = time.monotonic()
    task_id = await fleet.client.submit("echo", {"n": 2, "sleep_s": 1.5})
    working_after_s = None
    states = []
    async with asyncio.timeout(15), contextlib.aclosing(fleet.client.watch(task_id)) as stream:
        async for event in stream:
            states.append(event.state)
            if event.state == TaskState.WORKING:
                working_after_s = time.monotonic() - start
                assert event.instance_id == "a1"
                assert event.token is None
            if is_terminal(event.state):
                break
    assert states == [TaskState.WORKING, TaskState.COMPLETED], states
    assert working_after_s is not None and working_after_s >= 0.3


async def test_a_quiet_fleet_announces_working_at_the_accept(fleet: Any) -> None:
    # Busy from two attempts on: one task alone is announced at once, whatever the delay.
    await fleet.supervisor(working_event_delay_s=30.0, working_event_busy_attempts=2)
    await fleet.agent("a1")
    task_id = await fleet.client.submit("echo", {"n": 3, "sleep_s": 1.0})
    events = await asyncio.wait_for(_events(fleet, task_id), 15)
    assert [e.state for e in events] == [TaskState.WORKING, TaskState.COMPLETED], events
