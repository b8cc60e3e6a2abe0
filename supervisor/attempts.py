"""Attempts in flight: which token runs where, and each instance's load.

Kept in memory only; a new leader rebuilds it from the records it loads.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from natsfleet.protocols import InFlight


@dataclass(slots=True)
class Attempt:
    task_id: str
    token: str
    instance_id: str
    agent: str
    hb_timeout_s: float
    since: float = field(default_factory=time.monotonic)
    accepted: bool = False
    # Heartbeats with seq <= accept_seq + 1 may have been sent before the
    # Accept, so only later ones can prove the token missing. None: any
    # heartbeat proves it (an attempt restored after a supervisor restart).
    accept_seq: int | None = None
    deadline_ms: int | None = None
    # An end has been asked for (by the sweep, a heartbeat or a timer).
    ending: bool = False
    # The latest progress a heartbeat reported (shown by `ctl.status`).
    progress: InFlight | None = None


def _unwatched(instance_id: str, used: int) -> None:
    pass


class AttemptTable:
    """`on_load(instance_id, slots taken)` hears every change of `load` (the
    registry's pick index, `Placement.set_used`)."""

    def __init__(self, on_load: Callable[[str, int], None] = _unwatched) -> None:
        self._by_token: dict[str, Attempt] = {}
        self._by_instance: dict[str, set[str]] = {}
        # Slots taken per instance: running attempts plus Assigns being prepared.
        self.load: dict[str, int] = {}
        self._on_load = on_load

    def __len__(self) -> int:
        return len(self._by_token)

    def get(self, token: str | None) -> Attempt | None:
        return None if token is None else self._by_token.get(token)

    def reserve(self, instance_id: str) -> None:
        used = self.load[instance_id] = self.load.get(instance_id, 0) + 1
        self._on_load(instance_id, used)

    def unreserve(self, instance_id: str) -> None:
        left = self.load.get(instance_id, 0) - 1
        if left > 0:
            self.load[instance_id] = left
        else:
            self.load.pop(instance_id, None)
        self._on_load(instance_id, max(left, 0))

    def add(self, attempt: Attempt, *, reserved: bool) -> None:
        """Register an attempt; `reserved` if its slot was reserved before."""
        self._by_token[attempt.token] = attempt
        self._by_instance.setdefault(attempt.instance_id, set()).add(attempt.token)
        if not reserved:
            self.reserve(attempt.instance_id)

    def release(self, token: str | None) -> Attempt | None:
        attempt = self._by_token.pop(token, None) if token is not None else None
        if attempt is not None:
            tokens = self._by_instance.get(attempt.instance_id)
            if tokens is not None:
                tokens.discard(token or "")
                if not tokens:
                    del self._by_instance[attempt.instance_id]
            self.unreserve(attempt.instance_id)
        return attempt

    def holds(self, instance_id: str) -> bool:
        """Whether any attempt runs on the instance."""
        return instance_id in self._by_instance

    def on_instance(self, instance_id: str) -> list[Attempt]:
        tokens = self._by_instance.get(instance_id, set())
        return [self._by_token[t] for t in list(tokens) if t in self._by_token]

    def all(self) -> list[Attempt]:
        return list(self._by_token.values())
