"""The supervisor's timer heap: due timers fire in order, forgotten ones never, memory bounded."""

import asyncio
import time

from natsfleet.supervisor.deadlines import TimerKind, WakeUp
from natsfleet.supervisor.timers import Timer, Timers


async def test_due_timers_fire_in_deadline_order_and_forgotten_ones_never() -> None:
    timers = Timers()
    fired: list[Timer] = []
    now = int(time.time() * 1000)
    timers.add(now + 60, TimerKind.CLOSE, "b")
    timers.add(now + 20, TimerKind.SCHEDULE, "a")
    timers.add(now + 40, TimerKind.ATTEMPT, "gone", "tok")
    timers.add(now + 30, TimerKind.CLOSE, "gone")
    timers.add(None, WakeUp.RETRY, "never")  # no deadline: nothing armed
    timers.forget("gone")
    assert len(timers) == 2
    runner = asyncio.create_task(timers.run(fired.append))
    try:
        async with asyncio.timeout(2):
            while len(fired) < 2:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
    finally:
        runner.cancel()
    assert [(t.task_id, t.kind) for t in fired] == [
        ("a", TimerKind.SCHEDULE),
        ("b", TimerKind.CLOSE),
    ]
    assert len(timers) == 0


def test_forgotten_timers_do_not_accumulate() -> None:
    timers = Timers()
    far = int(time.time() * 1000) + 3_600_000  # schedule_to_close: an hour away
    for n in range(50_000):
        task_id = f"t{n}"
        timers.add(far, TimerKind.SCHEDULE, task_id)
        timers.add(far, TimerKind.CLOSE, task_id)
        timers.add(far, TimerKind.ATTEMPT, task_id, "tok")
        timers.forget(task_id)  # the task completed
    assert len(timers) == 0
    # The heap is compacted once forgotten entries are the majority.
    assert len(timers._heap) <= 2 * 1024 + 3
