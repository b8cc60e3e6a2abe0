"""The agent runtime in-process against a real nats-server, driven by a test
stand-in for the supervisor (tests/agents/driver.py)."""

import asyncio

import msgspec
import pytest

from natsfleet.agents import AgentRuntime, TaskContext, skill
from natsfleet.bus import BusConfig
from natsfleet.process import NatsServer
from natsfleet.protocols import (
    MSG_ID_HEADER,
    Accept,
    Assign,
    AssignBatch,
    AssignBatchAnswer,
    AssignBatchReply,
    Codec,
    ErrorCode,
    Failure,
    FailureKind,
    OutputChunk,
    Progress,
    Reject,
    RejectCode,
    Result,
    TaskOutput,
    decode_raw,
    new_task_id,
    new_token,
    to_raw,
)
from tests.agents.driver import driver, error_reply, running
from tests.fleet_agents import FAST, EchoAgent, Echoed, Slept, Text

pytestmark = pytest.mark.asyncio


async def test_hello_and_result(nats_server: NatsServer, prefix: str) -> None:
    async with (
        driver(nats_server.url, prefix) as d,
        running(EchoAgent(), nats_server.url, prefix, instance_id="e1"),
    ):
        hello = await d.hello("e1")
        assert hello.agent == "echo" and hello.agent_version == "1.2"
        assert hello.capacity == FAST.capacity and hello.pid > 0 and hello.incarnation
        skills = {s.name: s for s in hello.skills}
        assert set(skills) == {"echo", "sleep", "fail", "stream"}
        assert skills["echo"].version == "2"
        assert skills["echo"].description == "Return the text."
        assert "text" in str(skills["echo"].input_schema)
        assert "instance_id" in str(skills["echo"].output_schema)

        assign, reply = await d.assign("echo", "e1", "echo", Text(text="hi"))
        assert isinstance(reply, Accept) and reply.token == assign.token
        outcome = await d.outcome(assign.token)
        assert isinstance(outcome, Result)
        assert decode_raw(outcome.output, Echoed) == Echoed(text="hi", instance_id="e1", attempt=1)
        assert d.outcome_headers[assign.token][MSG_ID_HEADER] == f"{assign.task_id}:{assign.token}"


async def test_heartbeats_carry_in_flight_progress_and_recent(
    nats_server: NatsServer, prefix: str
) -> None:
    async with (
        driver(nats_server.url, prefix) as d,
        running(EchoAgent(), nats_server.url, prefix, instance_id="e1"),
    ):
        await d.hello("e1")
        assign, reply = await d.assign("echo", "e1", "sleep", {"ms": 800, "steps": 4})
        assert isinstance(reply, Accept)
        beat = await d.heartbeat(
            lambda h: any(f.token == assign.token and (f.progress or 0) > 0 for f in h.in_flight)
        )
        held = next(f for f in beat.in_flight if f.token == assign.token)
        assert held.task_id == assign.task_id and held.note.startswith("step")
        assert beat.load == 1 and beat.capacity == FAST.capacity and not beat.draining
        await d.outcome(assign.token)
        done = await d.heartbeat(lambda h: assign.token in h.recent)
        assert done.in_flight == () and done.load == 0
        assert [h.seq for h in d.heartbeats] == sorted(h.seq for h in d.heartbeats)


async def test_capacity_is_enforced_with_reject(nats_server: NatsServer, prefix: str) -> None:
    config = msgspec.structs.replace(FAST, capacity=2)
    async with (
        driver(nats_server.url, prefix) as d,
        running(EchoAgent(), nats_server.url, prefix, instance_id="e1", config=config),
    ):
        await d.hello("e1")
        replies = [(await d.assign("echo", "e1", "sleep", {"ms": 400}))[1] for _ in range(3)]
        assert [type(r) for r in replies] == [Accept, Accept, Reject]
        assert isinstance(replies[2], Reject) and replies[2].code == RejectCode.AT_CAPACITY


async def test_repeated_assign_runs_once(nats_server: NatsServer, prefix: str) -> None:
    agent = EchoAgent()
    async with (
        driver(nats_server.url, prefix) as d,
        running(agent, nats_server.url, prefix, instance_id="e1"),
    ):
        await d.hello("e1")
        first, reply = await d.assign("echo", "e1", "sleep", {"ms": 200})
        assert isinstance(reply, Accept)
        _, again = await d.assign("echo", "e1", "sleep", {"ms": 200}, **_same(first))
        assert isinstance(again, Accept)
        await d.outcome(first.token)
        _, late = await d.assign("echo", "e1", "sleep", {"ms": 200}, **_same(first))
        assert isinstance(late, Accept)
        await d.heartbeat(lambda h: first.token in h.recent)
        assert agent.runs[first.task_id] == 1
        assert [o.token for o in d.outcomes].count(first.token) == 1


def _same(assign: Assign) -> dict[str, str]:
    return {"task_id": assign.task_id, "token": assign.token}


async def test_malformed_assignments_are_rejected_and_dead_lettered(
    nats_server: NatsServer, prefix: str
) -> None:
    async with (
        driver(nats_server.url, prefix) as d,
        running(EchoAgent(), nats_server.url, prefix, instance_id="e1"),
    ):
        await d.hello("e1")
        bad, reply = await d.assign("echo", "e1", "echo", {"text": 42})
        assert isinstance(reply, Reject) and reply.code == RejectCode.BAD_INPUT
        assert "Expected `str`" in reply.detail
        entry = await d.dead_letter("bad_input")
        assert entry.task_id == bad.task_id and entry.subject == d.subjects.assign("echo", "e1")

        unknown, reply = await d.assign("echo", "e1", "translate", {"text": "x"})
        assert isinstance(reply, Reject) and reply.code == RejectCode.UNKNOWN_SKILL
        assert "echo" in reply.detail
        assert (await d.dead_letter("unknown_skill")).task_id == unknown.task_id

        garbage = await d.request_raw(d.subjects.assign("echo", "e1"), b"\x00not json{")
        assert error_reply(garbage).code == ErrorCode.BAD_REQUEST
        assert (await d.dead_letter("decode_error")).payload == b"\x00not json{"

        assign, reply = await d.assign("echo", "e1", "echo", Text(text="still here"))
        assert isinstance(reply, Accept)
        assert isinstance(await d.outcome(assign.token), Result)


async def test_an_assign_batch_is_answered_one_for_one_in_order(
    nats_server: NatsServer, prefix: str
) -> None:
    async with (
        driver(nats_server.url, prefix) as d,
        running(EchoAgent(), nats_server.url, prefix, instance_id="e1"),
    ):
        hello = await d.hello("e1")
        assert hello.assign_batch

        def make(skill: str, value: object) -> Assign:
            return Assign(task_id=new_task_id(), token=new_token(), attempt=1, skill=skill,
                          input=to_raw(value))  # fmt: skip

        assigns = (
            make("echo", {"text": "a"}),
            make("translate", {"text": "b"}),
            make("echo", {"text": 42}),
            make("echo", {"text": "d"}),
        )
        answer = await d.bus.request(
            d.subjects.assign("echo", "e1"),
            AssignBatch(assigns=assigns),
            Codec[AssignBatchAnswer](AssignBatchAnswer),
        )
        assert isinstance(answer, AssignBatchReply)
        assert [r.token for r in answer.replies] == [a.token for a in assigns]
        kinds = [(type(r), getattr(r, "code", None)) for r in answer.replies]
        assert kinds == [
            (Accept, None),
            (Reject, RejectCode.UNKNOWN_SKILL),
            (Reject, RejectCode.BAD_INPUT),
            (Accept, None),
        ]
        for accepted in (assigns[0], assigns[3]):
            assert isinstance(await d.outcome(accepted.token), Result)
        # The dead letter holds the one Assign at fault, not the whole batch.
        entry = await d.dead_letter("bad_input")
        assert entry.task_id == assigns[2].task_id
        assert Codec[Assign](Assign).decode(entry.payload) == assigns[2]


async def test_cancel_reaches_running_skill(nats_server: NatsServer, prefix: str) -> None:
    agent = EchoAgent()
    async with (
        driver(nats_server.url, prefix) as d,
        running(agent, nats_server.url, prefix, instance_id="e1"),
    ):
        await d.hello("e1")
        assign, _ = await d.assign("echo", "e1", "sleep", {"ms": 20_000, "steps": 1})
        await d.heartbeat(lambda h: any(f.token == assign.token for f in h.in_flight))
        await d.cancel("echo", "e1", "unknown-task", "0000000000000000")  # ignored
        await d.cancel("echo", "e1", assign.task_id, assign.token)
        outcome = await d.outcome(assign.token, timeout_s=5)
        assert isinstance(outcome, Failure)
        assert outcome.kind == FailureKind.CANCELED and not outcome.retryable
        assert agent.cancelled_seen == [assign.task_id]


async def test_errors_become_failures_without_tracebacks(
    nats_server: NatsServer, prefix: str
) -> None:
    async with (
        driver(nats_server.url, prefix) as d,
        running(EchoAgent(), nats_server.url, prefix, instance_id="e1"),
    ):
        await d.hello("e1")
        typed, _ = await d.assign("echo", "e1", "fail", {"message": "no", "retryable": False})
        crash, _ = await d.assign("echo", "e1", "fail", {"message": "boom", "how": "crash"})
        late, _ = await d.assign("echo", "e1", "sleep", {"ms": 5_000}, remaining_ms=100)
        typed_out, crash_out, late_out = [await d.outcome(a.token) for a in (typed, crash, late)]
        assert isinstance(typed_out, Failure) and isinstance(crash_out, Failure)
        assert (typed_out.error_type, typed_out.detail, typed_out.retryable) == (
            "SkillError",
            "no",
            False,
        )
        assert (crash_out.error_type, crash_out.detail, crash_out.retryable) == (
            "ValueError",
            "boom",
            True,
        )
        assert "Traceback" not in crash_out.detail
        assert isinstance(late_out, Failure) and late_out.kind == FailureKind.TIMEOUT
        assert late_out.retryable and late_out.duration_ms < 2_000


async def test_stream_is_batched(nats_server: NatsServer, prefix: str) -> None:
    codec = Codec[TaskOutput](TaskOutput)
    async with (
        driver(nats_server.url, prefix) as d,
        running(EchoAgent(), nats_server.url, prefix, instance_id="e1"),
    ):
        await d.hello("e1")
        received: list[OutputChunk | Progress] = []
        final = asyncio.Event()

        async def on_output(message: TaskOutput, _: object) -> None:
            received.append(message)
            if isinstance(message, OutputChunk) and message.final:
                final.set()

        task_id = "stream-task"
        await d.bus.subscribe(d.subjects.task_output(task_id), codec, on_output)
        assign, _ = await d.assign("echo", "e1", "stream", {"chunks": 200}, task_id=task_id)
        outcome = await d.outcome(assign.token)
        assert isinstance(outcome, Result)
        await asyncio.wait_for(final.wait(), 5)
        chunks = [m for m in received if isinstance(m, OutputChunk)]
        text = "".join(c.text for c in chunks)
        assert text == decode_raw(outcome.output, Text).text
        assert len(chunks) < 50  # 200 pieces, a handful of messages
        assert [c.seq for c in chunks] == sorted(c.seq for c in chunks)


async def test_rollcall_repeats_hello(nats_server: NatsServer, prefix: str) -> None:
    async with (
        driver(nats_server.url, prefix) as d,
        running(EchoAgent(), nats_server.url, prefix, instance_id="e1") as runtime,
    ):
        first = await d.hello("e1")
        await d.rollcall()
        await d.wait_for(lambda: len(d.hellos) >= 2)
        assert d.hellos[1].incarnation == first.incarnation == runtime.incarnation


async def test_slept_result_type(nats_server: NatsServer, prefix: str) -> None:
    async with (
        driver(nats_server.url, prefix) as d,
        running(EchoAgent(), nats_server.url, prefix, instance_id="e1"),
    ):
        await d.hello("e1")
        assign, _ = await d.assign("echo", "e1", "sleep", {"ms": 10})
        outcome = await d.outcome(assign.token)
        assert isinstance(outcome, Result)
        assert decode_raw(outcome.output, Slept).instance_id == "e1"


async def test_waits_for_nats_at_start_and_stops_on_shutdown() -> None:
    import logging
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    retrying = asyncio.Event()

    class OnRetry(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "cannot reach NATS" in record.getMessage():  # the first failed try
                retrying.set()

    handler = OnRetry()
    bus_log = logging.getLogger("natsfleet.bus.connection")
    bus_log.addHandler(handler)
    try:
        runtime = AgentRuntime(
            EchoAgent(), bus_config=BusConfig(url=f"nats://127.0.0.1:{port}", prefix="none")
        )
        task = asyncio.create_task(runtime.run())
        await asyncio.wait_for(retrying.wait(), 10)
        runtime.shutdown()
        await asyncio.wait_for(task, 2)
        assert not runtime.ready.is_set()
    finally:
        bus_log.removeHandler(handler)


async def test_context_carries_the_agents_llm_and_tools(
    nats_server: NatsServer, prefix: str
) -> None:
    seen: list[tuple[object, dict[str, object]]] = []

    class Equipped(EchoAgent):
        name = "equipped"

        async def setup(self) -> None:
            self.llm = "fake-llm"
            self.tools = {"search": len}

        @skill
        async def look(self, input: Text, ctx: TaskContext) -> Text:
            seen.append((ctx.llm, ctx.tools))
            assert ctx.span is None and ctx.remaining_s is None
            return input

    async with (
        driver(nats_server.url, prefix) as d,
        running(Equipped(), nats_server.url, prefix, instance_id="q1"),
    ):
        await d.hello("q1")
        assign, _ = await d.assign("equipped", "q1", "look", Text(text="x"))
        assert isinstance(await d.outcome(assign.token), Result)
        assert seen == [("fake-llm", {"search": len})]


async def test_an_instance_the_supervisor_would_refuse_does_not_start() -> None:
    """A Hello that breaks the edge rule (protocols/limits.py) fails at construction,
    not as an instance whose every hello is dead-lettered."""
    from natsfleet.agents import Agent
    from natsfleet.protocols import InvalidValue

    class Verbose(Agent):
        name = "verbose"
        version = "v" * 300

        @skill
        async def echo(self, input: Text, ctx: TaskContext) -> Text:
            return input

    with pytest.raises(InvalidValue, match="agent_version"):
        AgentRuntime(Verbose(), bus_config=BusConfig(prefix="none"))
    with pytest.raises(InvalidValue, match="instance id"):
        AgentRuntime(EchoAgent(), bus_config=BusConfig(prefix="none"), instance_id="x" * 129)
