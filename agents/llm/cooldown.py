"""Per-deployment health: cooldown after repeated failures, and Retry-After.

A deployment that failed `failures` times within `window_s` rests for
`cooldown_s`; a quota error (the provider's own budget or credit is spent,
so it will not serve us until someone pays) or an auth error rests it at
once for `quota_cooldown_s`; a Retry-After rests it at least that long. A success
clears the failure count.
"""

import time
from collections import deque
from collections.abc import Callable

from natsfleet.agents.llm.config import CooldownConfig
from natsfleet.agents.llm.errors import IMMEDIATE_COOLDOWN_KINDS, ErrorKind, LLMError

Clock = Callable[[], float]


class Cooldowns:
    """Health of every deployment in this process, keyed by model name."""

    def __init__(self, config: CooldownConfig, clock: Clock = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._until: dict[str, float] = {}

    def available_at(self, name: str) -> float:
        """Monotonic time from which the deployment may be used (<= now: usable)."""
        return self._until.get(name, 0.0)

    def is_available(self, name: str) -> bool:
        return self._until.get(name, 0.0) <= self._clock()

    def success(self, name: str) -> None:
        self._failures.pop(name, None)

    def failure(self, name: str, error: LLMError) -> None:
        """Record a failure; only errors about the deployment (not the request) count."""
        if error.kind in (ErrorKind.BAD_REQUEST, ErrorKind.CONTEXT_LENGTH):
            return
        now = self._clock()
        cfg = self._config
        rest = 0.0
        if error.kind in IMMEDIATE_COOLDOWN_KINDS:
            rest = cfg.quota_cooldown_s
        else:
            window = self._failures.setdefault(name, deque())
            window.append(now)
            while window and window[0] < now - cfg.window_s:
                window.popleft()
            if len(window) >= cfg.failures:
                rest = cfg.cooldown_s
                window.clear()
        if error.retry_after_s is not None:
            rest = max(rest, error.retry_after_s)
        if rest > 0:
            self._until[name] = max(self._until.get(name, 0.0), now + rest)

    def snapshot(self) -> dict[str, float]:
        """Seconds of rest left per deployment (for status and tests)."""
        now = self._clock()
        return {k: round(v - now, 3) for k, v in self._until.items() if v > now}
