"""`Bus.consume` on its own pull loop (bus/pull.py): credit bounds, order, lost consumers."""

import asyncio

from natsfleet.bus import Bus, Incoming
from natsfleet.client import FleetClient
from natsfleet.process import NatsServer
from natsfleet.protocols import Codec, Stream, Submit

SUBMIT = Codec[Submit](Submit)


async def _consume(bus: Bus, durable: str, handle: object, **kwargs: object) -> asyncio.Task[None]:
    return asyncio.create_task(
        bus.consume(
            bus.subjects.submit(),
            durable,
            SUBMIT,
            handle,  # type: ignore[arg-type]
            stream=bus.subjects.stream(Stream.TASKS),
            **kwargs,  # type: ignore[arg-type]
        )
    )


class _Seen:
    """A handler that records task ids, and a wait for one of them."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self._changed = asyncio.Event()

    async def handle(self, submit: Submit, _: Incoming) -> None:
        self.ids.append(submit.task_id)
        self._changed.set()

    async def until(self, task_id: str) -> None:
        while task_id not in self.ids:
            self._changed.clear()
            await self._changed.wait()


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_parallel_handlers_never_exceed_the_batch_and_each_message_is_acked_once(
    bus: Bus,
) -> None:
    client = FleetClient(bus)
    ids = [await client.submit("echo", {"n": n}) for n in range(60)]
    running = 0
    most = 0
    seen: list[str] = []
    done = asyncio.Event()

    async def handle(submit: Submit, _: Incoming) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)  # hold the credit a little while others arrive
        running -= 1
        seen.append(submit.task_id)
        if len(seen) == len(ids):
            done.set()

    async def acked_all() -> None:
        # Work queue: every acknowledged message is gone from TASKS (the ack
        # follows the handler, so the last ones may still be on their way).
        while (await bus.js.stream_info(bus.subjects.stream(Stream.TASKS))).state.messages:
            await asyncio.sleep(0.02)

    consumer = await _consume(bus, "credit", handle, batch=8, parallel=True)
    try:
        await asyncio.wait_for(done.wait(), 10)
        await asyncio.wait_for(acked_all(), 5)
    finally:
        await _stop(consumer)
    assert sorted(seen) == sorted(ids)
    assert 1 < most <= 8


async def test_sequential_consumption_keeps_stream_order(bus: Bus) -> None:
    client = FleetClient(bus)
    ids = [await client.submit("echo", {"n": n}) for n in range(30)]
    seen: list[str] = []
    done = asyncio.Event()

    async def handle(submit: Submit, _: Incoming) -> None:
        await asyncio.sleep(0)
        seen.append(submit.task_id)
        if len(seen) == len(ids):
            done.set()

    consumer = await _consume(bus, "ordered", handle, batch=4)
    try:
        await asyncio.wait_for(done.wait(), 10)
    finally:
        await _stop(consumer)
    assert seen == ids


async def test_a_deleted_consumer_is_recreated_and_consumption_goes_on(bus: Bus) -> None:
    client = FleetClient(bus)
    seen = _Seen()
    consumer = await _consume(bus, "lost", seen.handle)
    try:
        first = await client.submit("echo", {"n": 1})
        await asyncio.wait_for(seen.until(first), 5)
        await bus.js.delete_consumer(bus.subjects.stream(Stream.TASKS), "lost")
        second = await client.submit("echo", {"n": 2})
        # Noticed by the request's 409 or by its silence (2 heartbeats + 1 s).
        await asyncio.wait_for(seen.until(second), 8)
    finally:
        await _stop(consumer)


async def test_consumption_resumes_after_a_server_restart(
    bus: Bus, nats_server: NatsServer
) -> None:
    client = FleetClient(bus)
    seen = _Seen()
    consumer = await _consume(bus, "restart", seen.handle)
    try:
        first = await client.submit("echo", {"n": 1})
        await asyncio.wait_for(seen.until(first), 5)
        await nats_server.restart()
        # The client reconnects on its own; submit again until JetStream is back.
        second = None
        deadline = asyncio.get_running_loop().time() + 10
        while second is None:
            try:
                second = await client.submit("echo", {"n": 2})
            except Exception:
                assert asyncio.get_running_loop().time() < deadline, "JetStream never came back"
                await asyncio.sleep(0.1)
        await asyncio.wait_for(seen.until(second), 8)
    finally:
        await _stop(consumer)


async def test_the_first_message_is_delivered_at_once_not_after_a_heartbeat(bus: Bus) -> None:
    client = FleetClient(bus)
    ready = asyncio.Event()
    handled = asyncio.Event()

    async def handle(_: Submit, __: Incoming) -> None:
        handled.set()

    consumer = await _consume(bus, "first", handle, ready=ready)
    try:
        await asyncio.wait_for(ready.wait(), 5)
        await client.submit("echo", {"n": 1})
        # The pull loop's idle wake-up is 1 s: delivery must not wait for it.
        await asyncio.wait_for(handled.wait(), 0.5)
    finally:
        await _stop(consumer)


async def test_messages_trickling_in_are_handled_promptly_with_requests_overlapping(
    bus: Bus,
) -> None:
    # Credit comes back one message at a time, so several pull requests are
    # outstanding at once; the server serves them round-robin, and the credit
    # count must stay right or pulling stalls until a request expires.
    client = FleetClient(bus)
    handled: dict[str, float] = {}
    sent: dict[str, float] = {}
    loop = asyncio.get_running_loop()

    async def handle(submit: Submit, _: Incoming) -> None:
        handled[submit.task_id] = loop.time()
        await asyncio.sleep(0.03)

    consumer = await _consume(bus, "trickle", handle, batch=3, parallel=True)
    try:
        for n in range(30):
            task_id = await client.submit("echo", {"n": n})
            sent[task_id] = loop.time()
            await asyncio.sleep(0.02)
        async with asyncio.timeout(5):
            while len(handled) < len(sent):
                await asyncio.sleep(0.02)
    finally:
        await _stop(consumer)
    waits = [handled[t] - sent[t] for t in sent]
    assert max(waits) < 0.5, sorted(waits)[-3:]


async def test_a_slow_handler_in_order_does_not_make_live_requests_look_dead(bus: Bus) -> None:
    # Credit 4, two messages: the first handler blocks past 2 heartbeats + 1 s
    # while a request with 2 credits idles on the server. Its heartbeats must
    # still be read, or the request is written off and pulled again, and the
    # server then has more credit than we count.
    client = FleetClient(bus)
    seen: list[str] = []
    most_credit = 0
    release = asyncio.Event()

    async def handle(submit: Submit, _: Incoming) -> None:
        seen.append(submit.task_id)
        if len(seen) == 1:
            await release.wait()

    ids = [await client.submit("echo", {"n": n}) for n in range(2)]
    consumer = await _consume(bus, "slow", handle, batch=4)
    try:
        async with asyncio.timeout(5):
            while not bus.pulls:
                await asyncio.sleep(0.01)
        (pull,) = bus.pulls
        loop = asyncio.get_running_loop()

        async def sample(until_s: float) -> None:
            nonlocal most_credit
            until = loop.time() + until_s
            while loop.time() < until:
                most_credit = max(most_credit, pull.outstanding + pull.held)
                await asyncio.sleep(0.05)

        await sample(3.6)
        ids += [await client.submit("echo", {"n": n}) for n in range(2, 8)]
        await sample(0.5)
        release.set()
        async with asyncio.timeout(5):
            while len(seen) < len(ids):
                await asyncio.sleep(0.02)
    finally:
        release.set()
        await _stop(consumer)
    assert seen == ids  # in order, each once
    assert most_credit <= 4
