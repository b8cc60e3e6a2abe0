"""The outbox sends outcomes ready together as one `OutcomeBatch` (real JetStream)."""

import asyncio

from natsfleet.agents.outbox import Outbox
from natsfleet.bus import Bus, BusConfig
from natsfleet.process import NatsServer
from natsfleet.protocols import (
    AttemptOutcome,
    Codec,
    Failure,
    OutcomeBatch,
    Result,
    ResultsMessage,
    Stream,
    new_task_id,
    new_token,
    to_raw,
)

RESULTS = Codec[ResultsMessage](ResultsMessage)


def outcome(n: int) -> AttemptOutcome:
    common = dict(task_id=new_task_id(), token=new_token(), attempt=1, instance_id="i1",
                  agent="echo")  # fmt: skip
    if n % 2:
        return Failure(**common, error_type="boom")  # type: ignore[arg-type]
    return Result(**common, output=to_raw(n))  # type: ignore[arg-type]


async def stored(bus: Bus, count: int) -> list[ResultsMessage]:
    # RESULTS is a work queue: read it as the supervisor does, by a pull consumer.
    sub = await bus.js.pull_subscribe(
        bus.subjects.results(), durable="peek", stream=bus.subjects.stream(Stream.RESULTS)
    )
    try:
        msgs = []
        while len(msgs) < count:
            msgs += await sub.fetch(count - len(msgs), timeout=5)
        return [RESULTS.decode(msg.data) for msg in msgs]
    finally:
        await sub.unsubscribe()


async def test_outcomes_ready_together_go_as_one_batch_then_alone(
    nats_server: NatsServer, prefix: str
) -> None:
    bus = await Bus(BusConfig(url=nats_server.url, prefix=prefix), role="agent").connect()
    try:
        await bus.provision()
        acked: list[str] = []
        changed = asyncio.Event()

        def on_acked(token: str) -> None:
            acked.append(token)
            changed.set()

        async def until_acked(count: int) -> None:
            while len(acked) < count:
                changed.clear()
                await changed.wait()

        box = Outbox(bus, bus.subjects.result("echo", "i1"), on_acked)
        together = [outcome(n) for n in range(3)]
        for each in together:
            assert box.put(each)
        assert not box.put(together[0])  # one outcome per token, ever
        runner = asyncio.create_task(box.run())
        try:
            await asyncio.wait_for(until_acked(3), 5)
            alone = outcome(4)
            box.put(alone)
            await asyncio.wait_for(until_acked(4), 5)
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        assert acked == [o.token for o in together] + [alone.token]
        assert len(box) == 0
        batch, single = await stored(bus, 2)
        assert isinstance(batch, OutcomeBatch) and list(batch.outcomes) == together
        assert single == alone
    finally:
        await bus.close()


async def test_big_outcomes_are_not_batched(nats_server: NatsServer, prefix: str) -> None:
    bus = await Bus(BusConfig(url=nats_server.url, prefix=prefix), role="agent").connect()
    try:
        await bus.provision()
        acked: list[str] = []
        box = Outbox(bus, bus.subjects.result("echo", "i1"), acked.append)
        big = [
            Result(
                task_id=new_task_id(),
                token=new_token(),
                attempt=1,
                instance_id="i1",
                agent="echo",
                output=to_raw("x" * 200_000),
            )
            for _ in range(3)
        ]
        for each in big:
            box.put(each)
        runner = asyncio.create_task(box.run())
        try:
            async with asyncio.timeout(5):
                while len(acked) < 3:
                    await asyncio.sleep(0.01)
        finally:
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
        # ~200 KB each: one per message, never a multi-megabyte batch.
        assert await stored(bus, 3) == big
    finally:
        await bus.close()
