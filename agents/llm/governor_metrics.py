"""OpenTelemetry metrics of the fleet governor, from each process's view of it.

Gauges read what the process last saw of every key it uses (health: the
whole fleet, kept current by the watch), through the same rows as
`natsfleet llm` (governor_view.py). Budgets of tasks and runs are left out:
one series per task would grow without bound; `natsfleet llm` shows them.
Instruments are created once; governors register while they run.
"""

import time
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from natsfleet.agents.llm.budgets import BudgetState
from natsfleet.agents.llm.governor_view import budget_row, health_row, rate_row
from natsfleet.agents.llm.ratelimit import RateState

if TYPE_CHECKING:
    from natsfleet.agents.llm.governor import Governor

_governors: "weakref.WeakSet[Governor]" = weakref.WeakSet()


def register(governor: "Governor") -> None:
    _governors.add(governor)


def unregister(governor: "Governor") -> None:
    _governors.discard(governor)


def _rates(_: CallbackOptions) -> Iterable[Observation]:
    now = time.time()
    for gov in list(_governors):
        for key, state in gov.cells().items():
            if isinstance(state, RateState) and key.startswith("rate."):
                row = rate_row(key, state, now)
                attrs = {"scope": row.kind, "name": row.name}
                yield Observation(row.requests, {**attrs, "unit": "requests"})
                yield Observation(row.tokens, {**attrs, "unit": "tokens"})


def _limits(_: CallbackOptions) -> Iterable[Observation]:
    now = time.time()
    for gov in list(_governors):
        for key, state in gov.cells().items():
            if isinstance(state, RateState) and key.startswith("rate."):
                row = rate_row(key, state, now)
                attrs = {"scope": row.kind, "name": row.name}
                if row.rpm is not None:
                    yield Observation(row.rpm, {**attrs, "unit": "requests"})
                if row.tpm is not None:
                    yield Observation(row.tpm, {**attrs, "unit": "tokens"})


def _cooldowns(_: CallbackOptions) -> Iterable[Observation]:
    now = time.time()
    for gov in list(_governors):
        for name, state in list(gov.health.mirror.items()):
            row = health_row(name, state, now)
            yield Observation(row.cooling_s, {"deployment": row.deployment, "circuit": row.circuit})


def _budgets(kind: str) -> "metrics.CallbackT":
    def observe(_: CallbackOptions) -> Iterable[Observation]:
        now = time.time()
        for gov in list(_governors):
            for key, state in gov.cells().items():
                if not isinstance(state, BudgetState):
                    continue
                if not key.startswith(("budget.fleet.", "budget.tenant.")):
                    continue  # per task and run: unbounded series
                row = budget_row(key, state, now)
                value = row.spent_usd if kind == "spent" else row.reserved_usd
                yield Observation(value, {"scope": row.scope})

    return observe


def _kv_ops(_: CallbackOptions) -> Iterable[Observation]:
    yield Observation(sum(gov.stats.ops for gov in list(_governors)))


def _throttled(_: CallbackOptions) -> Iterable[Observation]:
    yield Observation(sum(gov.throttled for gov in list(_governors)))


def _late(_: CallbackOptions) -> Iterable[Observation]:
    yield Observation(sum(gov.late for gov in list(_governors)))


def _waited(_: CallbackOptions) -> Iterable[Observation]:
    yield Observation(sum(gov.wait_s_total for gov in list(_governors)))


_meter = metrics.get_meter("natsfleet.llm.governor")
_meter.create_observable_gauge(
    "natsfleet.llm.governor.rate",
    callbacks=[_rates],
    description="Calls and tokens in the last window",
)
_meter.create_observable_gauge(
    "natsfleet.llm.governor.limit", callbacks=[_limits], description="Fleet-wide limit per window"
)
_meter.create_observable_gauge(
    "natsfleet.llm.governor.cooldown",
    callbacks=[_cooldowns],
    unit="s",
    description="Seconds a deployment still rests, fleet-wide, with its circuit",
)
_meter.create_observable_gauge(
    "natsfleet.llm.governor.budget.spent", callbacks=[_budgets("spent")], unit="USD"
)
_meter.create_observable_gauge(
    "natsfleet.llm.governor.budget.reserved", callbacks=[_budgets("reserved")], unit="USD"
)
_meter.create_observable_counter(
    "natsfleet.llm.governor.kv_ops", callbacks=[_kv_ops], description="KV reads and writes"
)
_meter.create_observable_counter(
    "natsfleet.llm.governor.throttled", callbacks=[_throttled], description="Calls refused"
)
_meter.create_observable_counter(
    "natsfleet.llm.governor.wait", callbacks=[_waited], unit="s", description="Time calls waited"
)
_meter.create_observable_counter(
    "natsfleet.llm.governor.late",
    callbacks=[_late],
    description="Calls that woke too late for their slot and booked again",
)
