"""An attempt is one `invoke_agent` span under the assign's `process` span, and
its result's `publish` is inside it: the task's trace crosses the agent."""

from typing import Any

from natsfleet.process import NatsServer
from natsfleet.protocols import Accept, Failure, Result
from natsfleet.telemetry.tracing import TASK_ID_ATTRIBUTE
from tests.agents.driver import driver, running
from tests.fleet_agents import EchoAgent, Fail, Text


def parent_of(span: Any, spans: list[Any]) -> Any:
    [parent] = [s for s in spans if s.context.span_id == span.parent.span_id]
    return parent


async def test_attempt_spans_nest_under_the_assign(
    nats_server: NatsServer, prefix: str, spans: Any
) -> None:
    async with (
        driver(nats_server.url, prefix) as d,
        running(EchoAgent(), nats_server.url, prefix, instance_id="e1"),
    ):
        await d.hello("e1")
        assign, reply = await d.assign("echo", "e1", "echo", Text(text="hi"))
        assert isinstance(reply, Accept)
        assert isinstance(await d.outcome(assign.token), Result)
        failing, reply = await d.assign("echo", "e1", "fail", Fail(message="no", retryable=False))
        assert isinstance(await d.outcome(failing.token), Failure)
    finished = list(spans.get_finished_spans())
    invokes = [s for s in finished if s.name == "invoke_agent echo"]
    assert len(invokes) == 2
    ok, bad = sorted(invokes, key=lambda s: s.start_time)
    attrs = dict(ok.attributes or {})
    assert attrs["gen_ai.operation.name"] == "invoke_agent"
    assert attrs[TASK_ID_ATTRIBUTE] == assign.task_id and attrs["natsfleet.attempt"] == 1
    process = parent_of(ok, finished)
    assert process.name.startswith("process ") and process.name.endswith(".in.assign")
    # (The test driver sends raw requests, so that process span is a root here;
    # tests/observability/test_bus_tracing.py shows process under publish.)
    # The skill span, and the result's publish inside the attempt's trace.
    skills = [s for s in finished if s.name == "skill echo" and s.parent is not None]
    assert [s.parent.span_id for s in skills].count(ok.context.span_id) == 1
    result_publishes = [
        s
        for s in finished
        if s.name.startswith("publish ")
        and ".result." in s.name
        and s.context.trace_id == ok.context.trace_id
    ]
    assert len(result_publishes) == 1
    assert not bad.status.is_ok and dict(bad.attributes or {})["error.type"]
