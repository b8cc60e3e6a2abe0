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
