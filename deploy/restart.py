"""Restart decisions for `natsfleet up`: Erlang's one_for_one intensity, with backoff.

A child that crashes is restarted alone (one_for_one). More than
`max_restarts` restarts within `within_s` seconds means restarting does not
help: that child is stopped for good and the reason is logged. Between
restarts the wait doubles from `backoff_initial_s` up to `backoff_max_s`, so
a crash loop does not spin the CPU.
"""

import time
from collections import deque
from collections.abc import Callable


class RestartIntensity:
    """Remembers one child's recent restarts and decides on the next one."""

    def __init__(
        self,
        *,
        max_restarts: int,
        within_s: float,
        backoff_initial_s: float,
        backoff_max_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_restarts = max_restarts
        self.within_s = within_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self._clock = clock
        self._restarts: deque[float] = deque()

    def _forget_old(self, now: float) -> None:
        while self._restarts and now - self._restarts[0] > self.within_s:
            self._restarts.popleft()

    def allow_restart(self) -> bool:
        """Record a crash; True if the child may be restarted, False to give up."""
        now = self._clock()
        self._forget_old(now)
        if len(self._restarts) >= self.max_restarts:
            return False
        self._restarts.append(now)
        return True

    @property
    def recent_restarts(self) -> int:
        self._forget_old(self._clock())
        return len(self._restarts)

    def backoff_s(self) -> float:
        """Wait before the restart just allowed: doubles with each recent restart."""
        count = max(len(self._restarts), 1)
        return float(min(self.backoff_initial_s * 2 ** (count - 1), self.backoff_max_s))
