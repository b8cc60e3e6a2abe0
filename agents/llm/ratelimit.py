"""Fleet-wide request and token rates: GCRA schedules in KV, reserved ahead.

Each limited scope (a deployment, an API key, a tenant) is one KV key holding
the theoretical arrival time of its next request and of its next token
(GCRA, the algorithm behind redis-cell). A call does not poll for capacity:
one compare-and-set books the earliest slot the schedule allows, and the
caller sleeps until that instant. Slots are handed out in booking order
(FIFO across the fleet, arrival order within a process, see kvcell.py), and
every waiter wakes at its own instant, so there is no thundering herd. A call
whose slot lies beyond its deadline books nothing and fails with `Throttled`.

With `burst_s = 0` calls are paced `window_s / rpm` apart, so no window of
`window_s` holds more than `rpm` starts; tokens are paced the same way by each
call's estimate (prompt plus allowed output, as providers count them), and the
difference to the real usage is settled after the call.
"""

import math

import msgspec

from natsfleet.agents.llm.errors import ErrorKind, LLMError
from natsfleet.agents.llm.governor_config import RateLimit
from natsfleet.agents.llm.kvcell import Op


class Throttled(LLMError):
    """No capacity under a fleet-wide rate limit within the call's remaining time."""

    kind = ErrorKind.THROTTLED

    def __init__(self, *, deployment: str, scope: str, wait_s: float) -> None:
        self.scope = scope
        self.wait_s = wait_s
        super().__init__(
            f"fleet rate limit {scope}: next slot in {wait_s:.3f} s, after the deadline",
            retryable=True,
            deployment=deployment,
            retry_after_s=wait_s,
        )


class RateState(msgspec.Struct, frozen=True, kw_only=True):
    """One scope's schedule (wall-clock seconds) and what `natsfleet llm` shows."""

    rpm: int | None = None
    tpm: int | None = None
    window_s: float = 60.0
    next_request_at: float = 0.0
    next_token_at: float = 0.0
    window_start: float = 0.0
    window_requests: int = 0
    window_tokens: int = 0
    last_requests: int = 0
    last_tokens: int = 0

    def rate(self, now: float) -> tuple[float, float]:
        """(requests, tokens) in the last `window_s`, the previous window pro-rated."""
        start = math.floor(now / self.window_s) * self.window_s
        if self.window_start == start:
            share = 1.0 - (now - start) / self.window_s
            return (
                self.window_requests + share * self.last_requests,
                self.window_tokens + share * self.last_tokens,
            )
        if self.window_start == start - self.window_s:
            share = 1.0 - (now - start) / self.window_s
            return share * self.window_requests, share * self.window_tokens
        return 0.0, 0.0


def _counted(state: RateState, slot: float, requests: int, tokens: int) -> dict[str, object]:
    start = math.floor(slot / state.window_s) * state.window_s
    if start <= state.window_start:  # this window (or a settlement for an older one)
        return {
            "window_requests": state.window_requests + requests,
            "window_tokens": max(0, state.window_tokens + tokens),
        }
    adjacent = start - state.window_start <= state.window_s * 1.000001
    return {
        "window_start": start,
        "window_requests": requests,
        "window_tokens": max(0, tokens),
        "last_requests": state.window_requests if adjacent else 0,
        "last_tokens": state.window_tokens if adjacent else 0,
    }


def book(
    limit: RateLimit, window_s: float, tokens: int, not_before: float, latest: float | None
) -> Op[RateState, tuple[bool, float]]:
    """Book one request of `tokens` at the earliest slot >= `not_before` (a wall
    time the caller read: a clock read here would differ between scopes).

    The op's result is `(booked, slot)`; unbooked when the slot is after `latest`.
    """

    def op(state: RateState) -> tuple[RateState, tuple[bool, float]]:
        if state.window_s != window_s:
            state = msgspec.structs.replace(state, window_s=window_s, window_start=0.0)
        slot = max(not_before, earliest(state, limit))
        if latest is not None and slot > latest:
            return state, (False, slot)
        new = msgspec.structs.replace(
            state,
            rpm=limit.rpm,
            tpm=limit.tpm,
            next_request_at=max(state.next_request_at, slot)
            + (window_s / limit.rpm if limit.rpm else 0.0),
            next_token_at=max(state.next_token_at, slot)
            + (tokens * window_s / limit.tpm if limit.tpm else 0.0),
            **_counted(state, slot, 1, tokens),
        )
        return new, (True, slot)

    return op


def earliest(state: RateState, limit: RateLimit) -> float:
    """The earliest slot `state` allows; a lower bound if `state` is stale."""
    slot = 0.0
    if limit.rpm:
        slot = max(slot, state.next_request_at - limit.burst_s)
    if limit.tpm:
        slot = max(slot, state.next_token_at - limit.burst_s)
    return slot


def settle_tokens(
    limit: RateLimit, window_s: float, slot: float, delta: int
) -> Op[RateState, None]:
    """Correct a booking by `delta` tokens (real usage minus the estimate)."""

    def op(state: RateState) -> tuple[RateState, None]:
        if not limit.tpm or delta == 0:
            return state, None
        new = msgspec.structs.replace(
            state,
            next_token_at=state.next_token_at + delta * window_s / limit.tpm,
            **_counted(state, slot, 0, delta),
        )
        return new, None

    return op
