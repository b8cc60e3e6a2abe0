"""Spans of meaning in an agent process: `invoke_agent <name>` per attempt, a
span per skill inside it, and `execute_tool <name>` for tool calls.

They nest under the `process <assign subject>` span the bus opens, which is a
child of the supervisor's attempt span: one trace per task across processes.
Nothing happens unless tracing is configured.
"""

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from natsfleet.protocols import Failure
from natsfleet.telemetry import tracing

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

    from natsfleet.agents.attempt import Attempt


_NO_SPAN: contextlib.nullcontext[None] = contextlib.nullcontext()


def invoke_agent(
    agent: str, instance_id: str, attempt: "Attempt"
) -> contextlib.AbstractContextManager["Span | None"]:
    """The attempt's span, current while its skill runs (nothing without tracing)."""
    tracer = tracing.tracer()
    if tracer is None:
        return _NO_SPAN  # no generator per attempt when nobody traces
    return _invoke_agent(tracer, agent, instance_id, attempt)


@contextlib.contextmanager
def _invoke_agent(
    tracer: "Tracer", agent: str, instance_id: str, attempt: "Attempt"
) -> Iterator["Span | None"]:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": agent,
        tracing.TASK_ID_ATTRIBUTE: attempt.task_id,
        "natsfleet.attempt": attempt.number,
        "natsfleet.skill": attempt.skill.name,
        "natsfleet.instance.id": instance_id,
    }
    if attempt.assign.workflow_id:
        attributes[tracing.WORKFLOW_ID_ATTRIBUTE] = attempt.assign.workflow_id
    with (
        tracer.start_as_current_span(f"invoke_agent {agent}", attributes=attributes) as outer,
        tracer.start_as_current_span(f"skill {attempt.skill.name}"),
    ):
        yield outer


def record_outcome(span: "Span | None", outcome: object) -> None:
    """Mark the attempt's span with how it ended (type and kind, never a message)."""
    if span is None or not isinstance(outcome, Failure):
        return
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("error.type", outcome.error_type)
    span.set_attribute("natsfleet.failure.kind", outcome.kind.value)
    span.set_status(Status(StatusCode.ERROR, outcome.kind.value))


@contextlib.contextmanager
def execute_tool(name: str, **attributes: str | int | float | bool) -> Iterator["Span | None"]:
    """A span around one tool call (`with execute_tool("search_flights"): ...`)."""
    tracer = tracing.tracer()
    if tracer is None:
        yield None
        return
    base: dict[str, Any] = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name}
    with tracer.start_as_current_span(
        f"execute_tool {name}", attributes={**base, **attributes}
    ) as span:
        yield span
