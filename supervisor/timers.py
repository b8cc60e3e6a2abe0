"""One heap of deadlines (epoch ms), fired by a single task.

Timers are hints: each names a task (and the attempt's token) and the engine
checks on firing whether it still applies. A finished task's timers are
forgotten (`forget`), so the heap holds the timers of live tasks only, not
three per task for up to `schedule_to_close_s` after it ended: the heap is
rebuilt without forgotten entries once they are the majority. After a
restart the engine re-arms timers from the persisted deadlines.
"""

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from natsfleet.process.loop import wait_event


class TimerKind(StrEnum):
    SCHEDULE = "schedule_to_start"
    ATTEMPT = "start_to_close"
    CLOSE = "schedule_to_close"
    RETRY = "retry"


@dataclass(frozen=True, slots=True)
class Timer:
    at_ms: int
    seq: int
    kind: TimerKind
    task_id: str
    token: str | None = None


_COMPACT_MIN = 1024


class Timers:
    def __init__(self) -> None:
        # (at_ms, seq, timer): tuples compare in C, the heap's hot loop.
        self._heap: list[tuple[int, int, Timer]] = []
        self._seq = itertools.count()
        self._changed = asyncio.Event()
        self._by_task: dict[str, list[int]] = {}
        self._live: set[int] = set()

    def __len__(self) -> int:
        """Timers still armed (forgotten ones are not counted)."""
        return len(self._live)

    def add(
        self, at_ms: int | None, kind: TimerKind, task_id: str, token: str | None = None
    ) -> None:
        if at_ms is None:
            return
        seq = next(self._seq)
        timer = Timer(at_ms, seq, kind, task_id, token)
        heapq.heappush(self._heap, (at_ms, seq, timer))
        self._live.add(seq)
        self._by_task.setdefault(task_id, []).append(seq)
        if self._heap[0][1] == seq:
            self._changed.set()

    def forget(self, task_id: str) -> None:
        """Disarm every timer of a task that ended."""
        for seq in self._by_task.pop(task_id, ()):
            self._live.discard(seq)
        if len(self._heap) > _COMPACT_MIN and len(self._heap) > 2 * len(self._live):
            self._heap = [entry for entry in self._heap if entry[1] in self._live]
            heapq.heapify(self._heap)

    def _pop(self) -> Timer | None:
        _, seq, timer = heapq.heappop(self._heap)
        if seq not in self._live:
            return None
        self._live.discard(seq)
        seqs = self._by_task.get(timer.task_id)
        if seqs is not None:
            seqs.remove(seq)
            if not seqs:
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
