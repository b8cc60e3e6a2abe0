"""Assigns batched per instance per loop turn (supervisor/assigner.py), over a real NATS."""

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from natsfleet.bus import Bus, BusConfig, Incoming
from natsfleet.process import NatsServer
from natsfleet.protocols import (
    Accept,
    AgentInbox,
    Assign,
    AssignBatch,
    AssignBatchReply,
    Codec,
    Hello,
    Message,
    Reject,
    RejectCode,
    SkillSpec,
    new_task_id,
    new_token,
    to_raw,
)
from natsfleet.supervisor.assigner import Assigner, BadBatchReply
from natsfleet.supervisor.registry import Instance

INBOX = Codec[AgentInbox](AgentInbox)


@pytest.fixture
async def bus(nats_server: NatsServer, prefix: str) -> AsyncIterator[Bus]:
    connected = await Bus(BusConfig(url=nats_server.url, prefix=prefix), role="test").connect()
    try:
        yield connected
    finally:
        await connected.close()


def instance(batch: bool) -> Instance:
    hello = Hello(
        instance_id="i1",
        agent="mini",
        incarnation="x",
        skills=(SkillSpec(name="echo"),),
        capacity=8,
        heartbeat_interval_s=1.0,
        assign_batch=batch,
    )
    return Instance(hello=hello, last_seen=time.monotonic(), last_seen_ms=0)


def assign(n: int) -> Assign:
    return Assign(
        task_id=new_task_id(), token=new_token(), attempt=1, skill="echo", input=to_raw({"n": n})
    )


async def serve(bus: Bus, answer: Callable[[AgentInbox], Message]) -> list[AgentInbox]:
    """An instance's assign inbox that records what arrives and answers with `answer`."""
    received: list[AgentInbox] = []

    async def handle(message: AgentInbox, _: Incoming) -> Message | None:
        received.append(message)
        return answer(message)

    await bus.subscribe(bus.subjects.assign("mini", "i1"), INBOX, handle)
    return received


def accept_all(message: AgentInbox) -> Message:
    def one(a: Assign) -> Accept | Reject:
        if bytes(a.input) == b'{"n":3}':
            return Reject(task_id=a.task_id, token=a.token, instance_id="i1",
                          code=RejectCode.AT_CAPACITY)  # fmt: skip
        return Accept(task_id=a.task_id, token=a.token, instance_id="i1")

    if isinstance(message, AssignBatch):
        return AssignBatchReply(replies=tuple(one(a) for a in message.assigns))
    assert isinstance(message, Assign)
    return one(message)


async def test_assigns_ready_in_one_turn_go_as_one_batch_each_caller_gets_its_answer(
    bus: Bus,
) -> None:
    received = await serve(bus, accept_all)
    assigner = Assigner(bus, 2.0)
    target = instance(batch=True)
    assigns = [assign(n) for n in range(5)]
    replies = await asyncio.gather(*(assigner.send(target, a) for a in assigns))
    assert len(received) == 1 and isinstance(received[0], AssignBatch)
    assert [a.token for a in received[0].assigns] == [a.token for a in assigns]
    assert [r.token for r in replies] == [a.token for a in assigns]
    assert [type(r) for r in replies] == [Accept, Accept, Accept, Reject, Accept]
    assert (assigner.batches_sent, assigner.batched_assigns) == (1, 5)
    # A lone Assign goes alone.
    single = assign(9)
    reply = await assigner.send(target, single)
    assert isinstance(reply, Accept) and reply.token == single.token
    assert isinstance(received[-1], Assign)


async def test_an_instance_that_does_not_say_assign_batch_gets_one_request_each(
    bus: Bus,
) -> None:
    received = await serve(bus, accept_all)
    assigner = Assigner(bus, 2.0)
    assigns = [assign(n) for n in range(4)]
    replies = await asyncio.gather(*(assigner.send(instance(batch=False), a) for a in assigns))
    assert all(isinstance(m, Assign) for m in received) and len(received) == 4
    assert [r.token for r in replies] == [a.token for a in assigns]


async def test_a_batch_reply_that_does_not_match_fails_every_caller(bus: Bus) -> None:
    await serve(bus, lambda _: AssignBatchReply(replies=()))
    assigner = Assigner(bus, 2.0)
    results = await asyncio.gather(
        *(assigner.send(instance(batch=True), assign(n)) for n in range(3)),
        return_exceptions=True,
    )
    assert all(isinstance(r, BadBatchReply) for r in results)


async def test_a_batch_nobody_receives_fails_every_caller_alike(bus: Bus) -> None:
    assigner = Assigner(bus, 0.2)
    results = await asyncio.gather(
        *(assigner.send(instance(batch=True), assign(n)) for n in range(3)),
        return_exceptions=True,
    )
    # Nobody subscribes: NATS says so at once (no responders) for the one request.
    assert len(results) == 3
    assert all(isinstance(r, Exception) for r in results)
    assert len({type(r) for r in results}) == 1
