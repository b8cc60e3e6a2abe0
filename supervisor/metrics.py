"""The supervisor's metrics: tasks by state, latency by skill, attempts and
reassignments, queue depth per skill, live instances per agent.

Instruments come from OpenTelemetry's API: no-ops unless `telemetry.metrics`
installed a provider. Gauges are read from the active term's engine when
scraped or exported, so they cost nothing between reads.
"""

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Protocol

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from natsfleet.protocols import TaskRecord, is_terminal
from natsfleet.supervisor.queue import ReadyQueue
from natsfleet.supervisor.registry import Registry
from natsfleet.supervisor.store import TaskStore


class ObservedTerm(Protocol):
    """What the gauges read of the active term (its `Engine`)."""

    store: TaskStore
    queue: ReadyQueue


class SupervisorMetrics:
    """`active` returns the active term's engine, None on standby (read when scraped)."""

    def __init__(self, registry: Registry, active: Callable[[], ObservedTerm | None]) -> None:
        self.registry = registry
        self._active = active
        meter = metrics.get_meter("natsfleet.supervisor")
        self._ended = meter.create_counter(
            "natsfleet.tasks.ended", unit="{task}", description="Tasks that reached a final state"
        )
        self._duration = meter.create_histogram(
            "natsfleet.task.duration", unit="s", description="Submit to final state, by skill"
        )
        self._attempts = meter.create_counter(
            "natsfleet.attempts", unit="{attempt}", description="Attempts ended, by outcome"
        )
        self._reassigned = meter.create_counter(
            "natsfleet.reassignments",
            unit="{attempt}",
            description="Attempts lost or handed back and reassigned at once",
        )
        meter.create_observable_gauge(
            "natsfleet.tasks.active",
            callbacks=[self._active_tasks],
            unit="{task}",
            description="Unfinished tasks by state",
        )
        meter.create_observable_gauge(
            "natsfleet.queue.depth",
            callbacks=[self._queue_depth],
            unit="{task}",
            description="Tasks waiting for an instance, by skill",
        )
        meter.create_observable_gauge(
            "natsfleet.instances.live",
            callbacks=[self._live_instances],
            unit="{instance}",
            description="Live agent instances, by agent",
        )

    def task_ended(self, record: TaskRecord) -> None:
        attributes = {"skill": record.skill or record.workflow or "", "state": record.state.value}
        self._ended.add(1, attributes)
        if record.created_ms and record.updated_ms >= record.created_ms:
            self._duration.record((record.updated_ms - record.created_ms) / 1000, attributes)

    def attempt_ended(self, record: TaskRecord, outcome: str, *, reassigned: bool) -> None:
        skill = record.skill or ""
        self._attempts.add(1, {"skill": skill, "outcome": outcome})
        if reassigned:
            self._reassigned.add(1, {"skill": skill, "reason": outcome})

    def _active_tasks(self, options: CallbackOptions) -> Iterable[Observation]:
        term = self._active()
        if term is None:
            return []
        states = Counter(
            t.record.state.value for t in term.store if not is_terminal(t.record.state)
        )
        return [Observation(count, {"state": state}) for state, count in states.items()]

    def _queue_depth(self, options: CallbackOptions) -> Iterable[Observation]:
        term = self._active()
        if term is None:
            return []
        depth = Counter(term.queue.members().values())
        return [Observation(count, {"skill": skill}) for skill, count in depth.items()]

    def _live_instances(self, options: CallbackOptions) -> Iterable[Observation]:
        live = Counter(inst.agent for inst in self.registry.instances.values())
        return [Observation(count, {"agent": agent}) for agent, count in live.items()]
