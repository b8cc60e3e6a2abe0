"""The delivery bound of `Bus.consume` (bus/redelivery.py) against a real JetStream.

A message whose handler fails the same way every time is dead-lettered after
`max_failures` and terminated; transient failures never count; and a message
is terminated only once its DLQ entry is stored.
"""

import asyncio
from collections import Counter

import nats.errors
import pytest

from natsfleet.bus import Bus, Incoming
from natsfleet.bus.deadletter import build_entry
from natsfleet.bus.redelivery import HandlerFailures, is_transient
from natsfleet.client import FleetClient
from natsfleet.protocols import Codec, DlqReason, NatsFleetError, Stream, Submit, encode
from natsfleet.supervisor.errors import Backpressure, NotLeader, RevisionConflict

from .helpers import dead_letters

SUBMIT = Codec[Submit](Submit)


class _Busy(NatsFleetError):
    retryable = True


async def _consume(bus: Bus, handler: object, max_failures: int) -> "asyncio.Task[None]":
    ready = asyncio.Event()
    task = asyncio.create_task(
        bus.consume(
            bus.subjects.submit(),
            "bound",
            SUBMIT,
            handler,  # type: ignore[arg-type]
            stream=bus.subjects.stream(Stream.TASKS),
            ready=ready,
            max_failures=max_failures,
        )
    )
    await asyncio.wait_for(ready.wait(), 5)
    return task


async def _tasks_left(bus: Bus) -> int:
    return (await bus.js.stream_info(bus.subjects.stream(Stream.TASKS))).state.messages


async def _dead_lettered(bus: Bus) -> int:
    return (await bus.js.stream_info(bus.subjects.stream(Stream.DLQ))).state.messages


async def _stop(task: "asyncio.Task[None]") -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_message_that_always_fails_is_dead_lettered_after_max_failures(bus: Bus) -> None:
    client = FleetClient(bus)
    bad = await client.submit("echo", {"n": 1})
    good = await client.submit("echo", {"n": 2})
    calls: Counter[str] = Counter()
    handled = asyncio.Event()

    async def handle(submit: Submit, _: Incoming) -> None:
        calls[submit.task_id] += 1
        if submit.task_id == bad:
            raise ValueError(f"cannot handle {submit.task_id}")
        handled.set()

    consumer = await _consume(bus, handle, max_failures=3)
    try:
        async with asyncio.timeout(20):
            await handled.wait()
            while await _tasks_left(bus):
                await asyncio.sleep(0.05)
    finally:
        await _stop(consumer)
    assert calls == {bad: 3, good: 1}
    [entry] = await dead_letters(bus, 1)
    assert entry.reason is DlqReason.HANDLER_ERROR
    assert entry.subject == bus.subjects.submit()
    assert "ValueError: cannot handle" in entry.error and "3 deliveries" in entry.error
    assert SUBMIT.decode(entry.payload).task_id == bad  # the message itself is kept
    assert await _dead_lettered(bus) == 1


async def test_transient_failures_never_count(bus: Bus) -> None:
    """A handler that cannot reach NATS, or is told to wait, keeps its message:
    more transient failures than `max_failures`, then success, and no DLQ entry."""
    task_id = await FleetClient(bus).submit("echo", {"n": 1})
    transient: list[Exception] = [
        nats.errors.TimeoutError(),
        _Busy("lease lost"),
        NotLeader(0),
        Backpressure(10),
    ]
    calls = 0
    done = asyncio.Event()

    async def handle(submit: Submit, _: Incoming) -> None:
        nonlocal calls
        calls += 1
        if calls <= len(transient):
            raise transient[calls - 1]
        done.set()

    consumer = await _consume(bus, handle, max_failures=2)
    try:
        await asyncio.wait_for(done.wait(), 30)
    finally:
        await _stop(consumer)
    assert calls == len(transient) + 1
    assert task_id and await _dead_lettered(bus) == 0


async def test_a_message_is_not_terminated_while_its_dlq_entry_cannot_be_stored(
    bus: Bus,
) -> None:
    await FleetClient(bus).submit("echo", {"n": 1})
    dlq = bus.subjects.stream(Stream.DLQ)
    await bus.js.delete_stream(dlq)  # dead-lettering now fails (no stream takes it)
    failures = 0
    failed_twice = asyncio.Event()

    async def handle(submit: Submit, _: Incoming) -> None:
        nonlocal failures
        failures += 1
        if failures >= 2:
            failed_twice.set()
        raise ValueError("always")

    consumer = await _consume(bus, handle, max_failures=1)
    try:
        await asyncio.wait_for(failed_twice.wait(), 20)
        assert await _tasks_left(bus) == 1  # nak'ed, not terminated
        await bus.provision()  # the DLQ stream is back
        async with asyncio.timeout(20):
            while await _tasks_left(bus):
                await asyncio.sleep(0.05)
    finally:
        await _stop(consumer)
    [entry] = await dead_letters(bus, 1)
    assert entry.reason is DlqReason.HANDLER_ERROR
    assert await _dead_lettered(bus) == 1


def test_failure_counts_are_bounded_and_forgotten() -> None:
    failures = HandlerFailures(limit=2)
    assert [failures.add(7), failures.add(7), failures.add(8)] == [1, 2, 1]
    failures.forget(7)
    assert failures.add(7) == 1
    for seq in range(100, 20_100):
        failures.add(seq)
    assert len(failures) == 10_000
    with pytest.raises(ValueError):
        HandlerFailures(limit=0)
    assert [HandlerFailures.delay_s(n) for n in (1, 2, 3, 6, 7, 1000)] == [1, 2, 4, 30, 30, 30]


def test_what_counts_as_transient() -> None:
    assert is_transient(nats.errors.TimeoutError())
    assert is_transient(TimeoutError())
    assert is_transient(nats.errors.NoRespondersError())
    assert is_transient(NotLeader(0)) and is_transient(Backpressure(1))
    assert not is_transient(ValueError("x"))
    assert not is_transient(OverflowError("cannot convert float infinity to integer"))
    assert not is_transient(nats.errors.BadSubjectError())
    # Meant to be redelivered once, but says something about the message: it counts.
    assert not is_transient(RevisionConflict("t", 3))


def test_a_dead_letter_of_hostile_headers_still_fits_one_message() -> None:
    """A 700 KB `Nats-Msg-Id` and a big payload: the entry is cut to fit, not lost."""
    entry = build_entry(
        reason=DlqReason.DECODE_ERROR,
        subject="p.submit",
        error="x" * 100_000,
        headers={"Nats-Msg-Id": "i" * 700_000, "Natsfleet-Version": "1"},
        payload=b"p" * 300_000,
    )
    assert len(encode(entry)) < 512 * 1024
    assert entry.headers["Natsfleet-Version"] == "1"
    assert entry.headers["Nats-Msg-Id"].endswith("(700000 characters)")
