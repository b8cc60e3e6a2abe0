"""The supervisor's spans: one `attempt <n> <skill>` span per Assign, a child of
the task's trace (the submit's context is kept in the record's `traceparent`).

The Assign request is sent inside it, so the agent's work nests under it;
how the attempt ended, and what happens next (retry, reassignment), are its
attributes and events. Nothing happens unless tracing is configured.
"""

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import msgspec

from natsfleet.protocols import ErrorInfo, TaskRecord
from natsfleet.telemetry import tracing

if TYPE_CHECKING:
    from opentelemetry.trace import Span


def with_trace(record: TaskRecord) -> TaskRecord:
    """Keep the current trace context (the submit's) with a new record."""
    if not tracing.enabled():
        return record
    return msgspec.structs.replace(record, traceparent=tracing.current_traceparent())


class AttemptSpans:
    """Open attempt spans by token; ended when the attempt ends, whichever way."""

    def __init__(self) -> None:
        self._open: dict[str, Span] = {}

    def start(self, record: TaskRecord) -> None:
        tracer = tracing.tracer()
        if tracer is None or record.token is None:
            return
        from opentelemetry import propagate

        parent = propagate.extract({"traceparent": record.traceparent or ""})
        attributes: dict[str, Any] = {
            tracing.TASK_ID_ATTRIBUTE: record.task_id,
            "natsfleet.attempt": record.attempts,
            "natsfleet.skill": record.skill or "",
            "natsfleet.instance.id": record.instance_id or "",
            "natsfleet.agent": record.agent or "",
        }
        if record.workflow_id:
            attributes[tracing.WORKFLOW_ID_ATTRIBUTE] = record.workflow_id
        self._open[record.token] = tracer.start_span(
            f"attempt {record.attempts} {record.skill}", context=parent, attributes=attributes
        )

    @contextlib.contextmanager
    def current(self, token: str | None) -> Iterator[None]:
        """Make the attempt's span current (for sending its Assign)."""
        span = self._open.get(token or "")
        if span is None:
            yield
            return
        from opentelemetry.trace import use_span

        with use_span(span, end_on_exit=False):
            yield

    def end(
        self,
        token: str | None,
        outcome: str = "",
        error: ErrorInfo | None = None,
        then: str = "",
    ) -> None:
        """End the attempt's span: `outcome` ("completed", "lost", ...), and `then`
        what the supervisor does next ("retry in 0.4 s", "reassign", "fail")."""
        span = self._open.pop(token or "", None)
        if span is None:
            return
        from opentelemetry.trace import Status, StatusCode

        if outcome:
            span.set_attribute("natsfleet.attempt.outcome", outcome)
        if error is not None:
            span.set_attribute("error.type", error.error_type)
            span.set_status(Status(StatusCode.ERROR, outcome or error.error_type))
        if then:
            span.add_event(then, {"natsfleet.reason": outcome})
        span.end()
