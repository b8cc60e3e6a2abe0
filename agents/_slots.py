"""Capacity slots of one instance.

A new assignment takes a slot only if one is free *and* no sub-task caller is
waiting to get its slot back: a parent that finished waiting on `ctx.call`
goes before new work, so it cannot be starved.
"""

import asyncio


class Slots:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self._returning = 0
        self._freed = asyncio.Event()

    def try_take(self) -> bool:
        if self.used >= self.capacity or self._returning:
            return False
        self.used += 1
        return True

    def give_back(self) -> None:
        self.used -= 1
        self._freed.set()

    async def take_back(self) -> None:
        """Wait for a slot with priority over new assignments."""
        self._returning += 1
        try:
            while self.used >= self.capacity:
                self._freed.clear()
                await self._freed.wait()
            self.used += 1
        finally:
            self._returning -= 1
