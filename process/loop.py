"""The event loop every long-running natsfleet process runs on."""

import asyncio
from collections.abc import Callable


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when it is installed, else asyncio's default.

    Use with `asyncio.Runner(loop_factory=loop_factory())`. uvloop roughly
    halves the cost of nats-py's socket writes and callbacks, which is most of
    a supervisor's time on the hot path (docs/performance.md).
    """
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def wait_event(event: asyncio.Event, timeout_s: float) -> bool:
    """Wait until `event` is set or `timeout_s` has passed; True if it was set.

    Not `asyncio.wait_for(event.wait(), ...)`: on Python 3.11 that swallows a
    cancellation arriving just as the event is set (python/cpython#86296), and
    a loop around it then never stops (a consumer, a timer loop, a term that
    cannot end). `asyncio.timeout` tells its own cancellation from others.
    """
    if event.is_set():
        return True
    try:
        async with asyncio.timeout(timeout_s):
            await event.wait()
    except TimeoutError:
        return False
    return True
