"""Fleet-wide budgets: reserve the estimate before a call, settle the real cost after.

One KV key per scope (a task, a workflow run, a tenant's day, the fleet's
day) holds what was spent and the live reservations ("holds"). Reserving is a
compare-and-set that admits the hold only if spent + held + estimate fits the
limit, so N concurrent callers against a budget that fits k calls send
exactly k. Every hold carries an expiry (the call's time bound plus a grace):
a hold of a process that died is dropped by the next write to the scope, and
ignored by readers once expired, so budget is never leaked.
"""

import time

import msgspec

from natsfleet.agents.llm.errors import BudgetExceeded, LLMError
from natsfleet.agents.llm.kvcell import Op

#: Float sums of equal costs must not refuse the k-th call of a budget of exactly k.
_SLACK = 1e-9


class Hold(msgspec.Struct, frozen=True, kw_only=True):
    usd: float
    expires_at: float  # wall clock, seconds


class BudgetState(msgspec.Struct, frozen=True, kw_only=True):
    scope: str = ""
    limit_usd: float | None = None
    spent_usd: float = 0.0
    calls: int = 0
    holds: dict[str, Hold] = msgspec.field(default_factory=dict)

    def live_holds(self, now: float) -> dict[str, Hold]:
        return {k: h for k, h in self.holds.items() if h.expires_at > now}

    def reserved_usd(self, now: float) -> float:
        return sum(h.usd for h in self.live_holds(now).values())


class FleetBudgetExceeded(BudgetExceeded):
    """A fleet-wide budget cannot take this call: spent plus live reservations plus
    its estimate exceed the limit. Never retryable."""

    def __init__(
        self,
        *,
        scope: str,
        spent_usd: float,
        reserved_usd: float,
        limit_usd: float,
        estimate_usd: float,
    ) -> None:
        self.scope = scope
        self.spent_usd = spent_usd
        self.reserved_usd = reserved_usd
        self.limit_usd = limit_usd
        self.estimate_usd = estimate_usd
        LLMError.__init__(
            self,
            f"{scope} budget ${limit_usd:.6f} (fleet-wide): spent ${spent_usd:.6f}, "
            f"reserved ${reserved_usd:.6f} by calls in flight, "
            f"next call estimated at ${estimate_usd:.6f}",
            retryable=False,
        )


def reserve(
    scope: str, limit_usd: float, hold_id: str, usd: float, expires_at: float, *, fixed: bool
) -> Op[BudgetState, FleetBudgetExceeded | None]:
    """Hold `usd` under `hold_id` if it fits. `fixed`: the first writer's limit stays
    (a task's or run's budget); else the configured limit applies (days)."""

    def op(state: BudgetState) -> tuple[BudgetState, FleetBudgetExceeded | None]:
        now = time.time()
        holds = state.live_holds(now)
        limit = state.limit_usd if fixed and state.limit_usd is not None else limit_usd
        held = sum(h.usd for h in holds.values())
        if state.spent_usd + held + usd > limit * (1 + _SLACK) + _SLACK:
            refused = FleetBudgetExceeded(
                scope=scope,
                spent_usd=state.spent_usd,
                reserved_usd=held,
                limit_usd=limit,
                estimate_usd=usd,
            )
            # Dropping expired holds is worth a write; a refusal alone is not.
            pruned = (
                state
                if len(holds) == len(state.holds)
                else msgspec.structs.replace(state, holds=holds)
            )
            return pruned, refused
        holds[hold_id] = Hold(usd=usd, expires_at=expires_at)
        new = msgspec.structs.replace(state, scope=scope, limit_usd=limit, holds=holds)
        return new, None

    return op


def settle(hold_id: str, cost_usd: float | None) -> Op[BudgetState, None]:
    """Drop the hold; add the real cost (None: the call never happened)."""

    def op(state: BudgetState) -> tuple[BudgetState, None]:
        holds = state.live_holds(time.time())
        holds.pop(hold_id, None)
        if cost_usd is None:
            return msgspec.structs.replace(state, holds=holds), None
        return msgspec.structs.replace(
            state, holds=holds, spent_usd=state.spent_usd + cost_usd, calls=state.calls + 1
        ), None

    return op
