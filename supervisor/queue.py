"""Tasks waiting for an instance: per skill, highest priority first, then FIFO."""

import heapq
import itertools


class ReadyQueue:
    """Removal is lazy: a removed id is skipped when it reaches the top."""

    def __init__(self) -> None:
        self._heaps: dict[str, list[tuple[int, int, int, str]]] = {}
        self._members: dict[str, str] = {}  # task id -> skill
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._members

    def push(self, task_id: str, skill: str, priority: int, created_ms: int) -> None:
        if task_id in self._members:
            return
        self._members[task_id] = skill
        heap = self._heaps.setdefault(skill, [])
        heapq.heappush(heap, (-priority, created_ms, next(self._seq), task_id))

    def remove(self, task_id: str) -> None:
        self._members.pop(task_id, None)

    def members(self) -> dict[str, str]:
        """Waiting task id -> skill (a copy)."""
        return dict(self._members)

    def skills(self) -> list[str]:
        return [skill for skill, heap in self._heaps.items() if heap]

    def peek(self, skill: str) -> str | None:
        heap = self._heaps.get(skill)
        while heap:
            task_id = heap[0][3]
            if self._members.get(task_id) == skill:
                return task_id
            heapq.heappop(heap)
        return None

    def pop(self, skill: str) -> str | None:
        task_id = self.peek(skill)
        if task_id is not None:
            heapq.heappop(self._heaps[skill])
            del self._members[task_id]
        return task_id
