"""What the governor's KV bucket says right now: `natsfleet llm` and metrics read this.

Each row is computed from one key's state at `now`: the current rate (this
window plus the previous one pro-rated), the limit, how far ahead the
schedule is booked, the circuit and cooldown, budgets spent and reserved
(live holds only: an expired hold is shown as released, as writers treat it).
"""

import time

import msgspec
from nats.js.kv import KeyValue

from natsfleet.agents.llm.budgets import BudgetState
from natsfleet.agents.llm.health import HealthState
from natsfleet.agents.llm.ratelimit import RateState
from natsfleet.bus.kvread import latest_entries

_KINDS = {"dep": "deployment", "key": "api key", "tenant": "tenant"}


class RateRow(msgspec.Struct, frozen=True, kw_only=True):
    kind: str  # deployment | api key | tenant
    name: str  # the deployment, the key's hash, the tenant
    window_s: float
    requests: float  # in the last window
    rpm: int | None  # the limit per window
    tokens: float
    tpm: int | None
    booked_ahead_s: float  # how far in the future the next free slot is


class HealthRow(msgspec.Struct, frozen=True, kw_only=True):
    deployment: str
    circuit: str  # closed | open | half_open
    cooling_s: float
    recent_failures: int
    reason: str
    updated_by: str


class BudgetRow(msgspec.Struct, frozen=True, kw_only=True):
    scope: str
    limit_usd: float | None
    spent_usd: float
    reserved_usd: float
    holds: int
    calls: int


class GovernorView(msgspec.Struct, frozen=True, kw_only=True):
    rates: tuple[RateRow, ...] = ()
    health: tuple[HealthRow, ...] = ()
    budgets: tuple[BudgetRow, ...] = ()


def rate_row(key: str, state: RateState, now: float) -> RateRow:
    _, kind, name = key.split(".", 2)
    requests, tokens = state.rate(now)
    ahead = max(
        state.next_request_at if state.rpm else 0.0, state.next_token_at if state.tpm else 0.0
    )
    return RateRow(
        kind=_KINDS.get(kind, kind),
        name=name,
        window_s=state.window_s,
        requests=round(requests, 2),
        rpm=state.rpm,
        tokens=round(tokens, 1),
        tpm=state.tpm,
        booked_ahead_s=round(max(0.0, ahead - now), 3),
    )


def health_row(key: str, state: HealthState, now: float, window_s: float = 3600.0) -> HealthRow:
    return HealthRow(
        deployment=state.name or key.removeprefix("health."),
        circuit=state.circuit(now),
        cooling_s=round(max(0.0, state.cooling_until - now), 3),
        recent_failures=sum(1 for t in state.failures if t >= now - window_s),
        reason=state.reason,
        updated_by=state.updated_by,
    )


def budget_row(key: str, state: BudgetState, now: float) -> BudgetRow:
    live = state.live_holds(now)
    return BudgetRow(
        scope=state.scope or key.removeprefix("budget."),
        limit_usd=state.limit_usd,
        spent_usd=state.spent_usd,
        reserved_usd=sum(h.usd for h in live.values()),
        holds=len(live),
        calls=state.calls,
    )


async def read_view(kv: KeyValue, *, now: float | None = None) -> GovernorView:
    """Every rate, health and budget key of the bucket, as rows (sorted by key)."""
    # Not kv.keys(): nats.py can end its listing before the replay arrives
    # (nats-io/nats.py#842) and report an empty bucket; latest_entries reads
    # to the stream's last sequence.
    latest = {e.key: e for e in await latest_entries(kv)}
    now = time.time() if now is None else now
    rates: list[RateRow] = []
    health: list[HealthRow] = []
    budgets: list[BudgetRow] = []
    for key in sorted(latest):
        entry = latest[key]
        if entry.operation is not None or not entry.value:
            continue  # deleted, purged or expired
        value = entry.value
        try:
            if key.startswith("rate."):
                rates.append(rate_row(key, msgspec.json.decode(value, type=RateState), now))
            elif key.startswith("health."):
                health.append(health_row(key, msgspec.json.decode(value, type=HealthState), now))
            elif key.startswith("budget."):
                budgets.append(budget_row(key, msgspec.json.decode(value, type=BudgetState), now))
        except msgspec.DecodeError:
            continue  # written by another version: not ours to show
    return GovernorView(rates=tuple(rates), health=tuple(health), budgets=tuple(budgets))
