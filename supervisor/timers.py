"""One heap of wake-up times (epoch ms), fired by a single task.

The heap knows nothing of what a timer means: `kind` is a timeout kind or a
wake-up of deadlines.py, which arms them. Timers are hints: each names a task
(and the attempt's token) and whoever fires it checks whether it still
applies. Arming is idempotent: a timer equal to one still armed (same task,
kind, time and token) is not added twice, so the deadlines of a record can be
re-armed after every write. A finished task's timers are forgotten
(`forget`), so the heap holds the timers of live tasks only, not three per
task for up to `schedule_to_close_s` after it ended: the heap is rebuilt
without forgotten entries once they are the majority.
"""

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

from natsfleet.process.loop import wait_event


@dataclass(frozen=True, slots=True)
class Timer:
    at_ms: int
    seq: int
    kind: str  # a `TimerKind` or a `WakeUp` (deadlines.py)
    task_id: str
    token: str | None = None


_COMPACT_MIN = 1024
# What makes two timers of one task the same: (kind, at_ms, token).
_Key = tuple[str, int, str | None]


class Timers:
    def __init__(self) -> None:
        # (at_ms, seq, timer): tuples compare in C, the heap's hot loop.
        self._heap: list[tuple[int, int, Timer]] = []
        self._seq = itertools.count()
        self._changed = asyncio.Event()
        self._by_task: dict[str, dict[_Key, int]] = {}
        self._live: set[int] = set()

    def __len__(self) -> int:
        """Timers still armed (forgotten ones are not counted)."""
        return len(self._live)

    def add(self, at_ms: int | None, kind: str, task_id: str, token: str | None = None) -> None:
        """Arm a timer; nothing if `at_ms` is None or the same timer is armed already."""
        if at_ms is None:
            return
        armed = self._by_task.get(task_id)
        if armed is None:
            armed = self._by_task[task_id] = {}
        key = (kind, at_ms, token)
        if key in armed:
            return
        seq = next(self._seq)
        armed[key] = seq
        heapq.heappush(self._heap, (at_ms, seq, Timer(at_ms, seq, kind, task_id, token)))
        self._live.add(seq)
        if self._heap[0][1] == seq:
            self._changed.set()

    def forget(self, task_id: str) -> None:
        """Disarm every timer of a task that ended."""
        armed = self._by_task.pop(task_id, None)
        if armed is None:
            return
        for seq in armed.values():
            self._live.discard(seq)
        if len(self._heap) > _COMPACT_MIN and len(self._heap) > 2 * len(self._live):
            self._heap = [entry for entry in self._heap if entry[1] in self._live]
            heapq.heapify(self._heap)

    def _pop(self) -> Timer | None:
        _, seq, timer = heapq.heappop(self._heap)
        if seq not in self._live:
            return None
        self._live.discard(seq)
        armed = self._by_task.get(timer.task_id)
        if armed is not None:
            armed.pop((timer.kind, timer.at_ms, timer.token), None)
            if not armed:
                del self._by_task[timer.task_id]
        return timer

    async def run(self, fire: Callable[[Timer], None]) -> None:
        """Call `fire` for each due timer, in deadline order, until cancelled."""
        while True:
            self._changed.clear()
            if not self._heap:
                await self._changed.wait()
                continue
            if self._heap[0][1] not in self._live:
                heapq.heappop(self._heap)  # forgotten: drop without waiting for it
                continue
            delay_s = (self._heap[0][0] - time.time() * 1000) / 1000
            if delay_s > 0:
                await wait_event(self._changed, delay_s)
                continue
            timer = self._pop()
            if timer is not None:
                fire(timer)
