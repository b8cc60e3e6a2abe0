"""`wait_event`: a timed wait on an event that never swallows a cancellation."""

import asyncio

from natsfleet.process.loop import wait_event


async def test_it_says_whether_the_event_was_set() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.01) is False
    asyncio.get_running_loop().call_soon(event.set)
    assert await wait_event(event, 2) is True
    assert await wait_event(event, 0) is True  # already set


async def test_a_loop_around_it_stops_when_cancelled_as_the_event_is_set() -> None:
    # On Python 3.11, `asyncio.wait_for(event.wait(), ...)` returns normally
    # here (python/cpython#86296) and such a loop would run forever.
    event = asyncio.Event()

    async def loop() -> None:
        while True:
            await wait_event(event, 1.0)
            event.clear()

    task = asyncio.create_task(loop())
    for _ in range(3):  # a few loop turns: the task is inside its wait
        await asyncio.sleep(0)
    event.set()
    await asyncio.sleep(0)  # the inner wait has completed; the loop has not resumed
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2.5)
    assert task in done and task.cancelled()
