"""`ctx.call` against a tiny in-test responder playing the supervisor's part:
it takes submissions from TASKS, assigns each to an echo instance, and
publishes the terminal TaskEvent that `FleetClient.wait` listens for."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from natsfleet.process import NatsServer
from natsfleet.protocols import (
    Accept,
    Codec,
    ErrorInfo,
    Result,
    Stream,
    Submit,
    TaskEvent,
    TaskState,
    decode_raw,
)
from tests.agents.driver import Driver, driver, running
from tests.fleet_agents import EchoAgent, FannedIn, ParentAgent

_SUBMIT = Codec[Submit](Submit)


class Responder:
    def __init__(self, d: Driver, echo_instance: str) -> None:
        self.d = d
        self.echo_instance = echo_instance
        self.submits: list[Submit] = []
        self.first_seen = asyncio.Event()
        self.release_first = asyncio.Event()

    async def run(self) -> None:
        bus = self.d.bus
        psub = await bus.js.pull_subscribe(
            bus.subjects.submit(), durable="responder", stream=bus.subjects.stream(Stream.TASKS)
        )
        try:
            while True:
                try:
                    msgs = await psub.fetch(1, timeout=0.5)
                except TimeoutError:
                    continue
                for msg in msgs:
                    await msg.ack()
                    await self._serve(_SUBMIT.decode(msg.data))
        finally:
            await psub.unsubscribe()

    async def _serve(self, submit: Submit) -> None:
        self.submits.append(submit)
        if len(self.submits) == 1:
            self.first_seen.set()
            await self.release_first.wait()
        assert submit.skill is not None
        assign, reply = await self.d.assign(
            "echo", self.echo_instance, submit.skill, submit.input, task_id=submit.task_id
        )
        assert isinstance(reply, Accept)
        outcome = await self.d.outcome(assign.token)
        if isinstance(outcome, Result):
            event = TaskEvent(
                task_id=submit.task_id,
                state=TaskState.COMPLETED,
                at_ms=_now_ms(),
                output=outcome.output,
            )
        else:
            event = TaskEvent(
                task_id=submit.task_id,
                state=TaskState.FAILED,
                at_ms=_now_ms(),
                error=ErrorInfo(error_type=outcome.error_type, detail=outcome.detail),
            )
        await self.d.bus.publish_js(self.d.subjects.events(submit.task_id), event)


def _now_ms() -> int:
    return int(time.time() * 1000)


@contextlib.asynccontextmanager
async def responding(responder: Responder) -> AsyncIterator[Responder]:
    task = asyncio.create_task(responder.run())
    try:
        yield responder
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_call_returns_typed_result_and_frees_the_slot(
    nats_server: NatsServer, prefix: str
) -> None:
    url = nats_server.url
    async with (
        driver(url, prefix) as d,
        running(EchoAgent(), url, prefix, instance_id="e1"),
        running(ParentAgent(), url, prefix, instance_id="p1"),
        responding(Responder(d, "e1")) as responder,
    ):
        await d.hello("e1")
        await d.hello("p1")
        first, reply = await d.assign("parent", "p1", "fan_out", {"texts": ["a", "b"]})
        assert isinstance(reply, Accept)
        await asyncio.wait_for(responder.first_seen.wait(), 10)
        child = responder.submits[0]
        assert child.idempotency_key == f"{first.task_id}/0"
        assert child.parent_id == first.task_id and child.skill == "echo"
        # Waiting on its child, the parent holds no slot: capacity 1 takes another task.
        beat = await d.heartbeat(lambda h: h.instance_id == "p1" and h.load == 0)
        assert [f.token for f in beat.in_flight] == [first.token]
        second, reply = await d.assign("parent", "p1", "fan_out", {"texts": ["c"]})
        assert isinstance(reply, Accept)
        responder.release_first.set()
        for assign, texts in ((first, ["a", "b"]), (second, ["c"])):
            outcome = await d.outcome(assign.token, timeout_s=15)
            assert isinstance(outcome, Result), outcome
            assert decode_raw(outcome.output, FannedIn).texts == texts
        keys = sorted(s.idempotency_key or "" for s in responder.submits)
        assert keys == sorted([f"{first.task_id}/0", f"{first.task_id}/1", f"{second.task_id}/0"])
