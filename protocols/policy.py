"""Retry policy and the four task timeouts (Temporal's names)."""

import math
import random
from typing import Annotated

import msgspec

from natsfleet.protocols.limits import Coefficient, Count, Fraction, Label, Seconds


class Timeouts(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Per-task timeouts in seconds; `None` takes the fleet default.

    - `schedule_to_start_s`: how long a task may wait for a capable instance.
    - `start_to_close_s`: one attempt, counted from `Accept`.
    - `heartbeat_timeout_s`: silence of the instance holding the attempt.
    - `schedule_to_close_s`: the whole task, retries included.
    """

    schedule_to_start_s: Seconds | None = None
    start_to_close_s: Seconds | None = None
    heartbeat_timeout_s: Seconds | None = None
    schedule_to_close_s: Seconds | None = None

    def merged_over(self, defaults: "Timeouts") -> "Timeouts":
        """These values where set, `defaults` elsewhere."""
        return Timeouts(
            schedule_to_start_s=_pick(self.schedule_to_start_s, defaults.schedule_to_start_s),
            start_to_close_s=_pick(self.start_to_close_s, defaults.start_to_close_s),
            heartbeat_timeout_s=_pick(self.heartbeat_timeout_s, defaults.heartbeat_timeout_s),
            schedule_to_close_s=_pick(self.schedule_to_close_s, defaults.schedule_to_close_s),
        )


def _pick(value: float | None, default: float | None) -> float | None:
    return default if value is None else value


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How failed attempts are retried.

    The n-th retry waits `initial_interval_s * backoff_coefficient**(n-1)`,
    capped at `maximum_interval_s`, with +/- `jitter` (a fraction) applied.
    `maximum_attempts` counts every attempt, the first included (0 = unlimited).
    """

    initial_interval_s: Seconds = 1.0
    backoff_coefficient: Coefficient = 2.0
    maximum_interval_s: Seconds = 60.0
    maximum_attempts: Count = 3
    non_retryable_errors: Annotated[tuple[Label, ...], msgspec.Meta(max_length=256)] = ()
    jitter: Fraction = 0.1

    def delay_s(self, failed_attempts: int, rng: random.Random | None = None) -> float:
        """Backoff before the next attempt after `failed_attempts` (>= 1) failures."""
        exponent = max(failed_attempts - 1, 0)
        try:
            grown = self.initial_interval_s * self.backoff_coefficient**exponent
        except OverflowError:  # after ~1000 doublings: the cap was reached long before
            grown = math.inf if self.initial_interval_s > 0 else 0.0
        base = min(grown, self.maximum_interval_s)
        if self.jitter <= 0:
            return base
        spread = base * self.jitter
        return max(0.0, base + (rng or random).uniform(-spread, spread))

    def allows_another(self, attempts_so_far: int) -> bool:
        return self.maximum_attempts <= 0 or attempts_so_far < self.maximum_attempts

    def is_retryable(self, error_type: str, retryable: bool) -> bool:
        return retryable and error_type not in self.non_retryable_errors
