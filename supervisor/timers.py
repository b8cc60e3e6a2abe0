"""One heap of deadlines (epoch ms), fired by a single task.

Timers are hints: each names a task (and the attempt's token) and the engine
checks on firing whether it still applies, so nothing is ever removed from the
heap. After a restart the engine re-arms them from the persisted deadlines.
"""

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum


class TimerKind(StrEnum):
    SCHEDULE = "schedule_to_start"
    ATTEMPT = "start_to_close"
    CLOSE = "schedule_to_close"
    RETRY = "retry"


@dataclass(order=True, frozen=True, slots=True)
class Timer:
    at_ms: int
    seq: int
    kind: TimerKind = field(compare=False)
    task_id: str = field(compare=False)
    token: str | None = field(compare=False, default=None)


class Timers:
    def __init__(self) -> None:
        self._heap: list[Timer] = []
        self._seq = itertools.count()
        self._changed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._heap)

    def add(
        self, at_ms: int | None, kind: TimerKind, task_id: str, token: str | None = None
    ) -> None:
        if at_ms is None:
            return
        timer = Timer(at_ms, next(self._seq), kind, task_id, token)
        heapq.heappush(self._heap, timer)
        if self._heap[0] is timer:
            self._changed.set()

    async def run(self, fire: Callable[[Timer], None]) -> None:
        """Call `fire` for each due timer, in deadline order, until cancelled."""
        while True:
            self._changed.clear()
            if not self._heap:
                await self._changed.wait()
                continue
            delay_s = (self._heap[0].at_ms - time.time() * 1000) / 1000
            if delay_s > 0:
                try:
                    await asyncio.wait_for(self._changed.wait(), delay_s)
                except TimeoutError:
                    pass
                continue
            fire(heapq.heappop(self._heap))
