"""The journal on its own against a real nats-server: claims, fencing, a lost
acknowledgement, hostile entries."""

import time

import pytest

from natsfleet.agents.loop import (
    Claim,
    Journal,
    JournalError,
    JournalFencedError,
    ToolResult,
    TurnRecord,
)
from natsfleet.agents.loop.journal import _Conflict
from natsfleet.bus import Bus
from natsfleet.protocols import Bucket, new_task_id


def journal(bus: Bus, task_id: str, token: str, attempt: int) -> Journal:
    return Journal(
        bus.js,
        bucket=bus.subjects.bucket(Bucket.JOURNAL),
        task_id=task_id,
        token=token,
        attempt=attempt,
        instance_id=f"i-{token}",
    )


def turn(text: str) -> TurnRecord:
    return TurnRecord(text=text)


async def test_a_newer_claim_fences_every_older_writer(bus: Bus) -> None:
    task_id = new_task_id()
    started = time.monotonic()
    first = await journal(bus, task_id, "a", 1).open()
    assert time.monotonic() - started < 2.0  # an empty journal is not waited out
    await first.write("0.0", turn("one"))
    second = await journal(bus, task_id, "b", 2).open()
    assert second.get("0.0") == turn("one")  # what the first wrote is replayed
    with pytest.raises(JournalFencedError):
        await first.write("0.0.0", ToolResult(name="t", status="ok", content="x"))
    await second.write("0.0.0", ToolResult(name="t", status="ok", content="y"))
    # The older attempt cannot claim back, even reading everything afresh.
    with pytest.raises(JournalFencedError, match="attempt 2 owns it"):
        await journal(bus, task_id, "a2", 1).open()
    reader = journal(bus, task_id, "r", 0)
    await reader.load()
    assert set(reader.entries) == {"claim", "0.0", "0.0.0"}
    claim = reader.get("claim")
    assert isinstance(claim, Claim) and claim.token == "b"
    result = reader.get("0.0.0")
    assert isinstance(result, ToolResult) and result.content == "y"


async def test_after_a_hand_back_the_later_claim_of_the_same_number_wins(bus: Bus) -> None:
    task_id = new_task_id()
    handed_back = await journal(bus, task_id, "a", 3).open()
    again = await journal(bus, task_id, "b", 3).open()
    with pytest.raises(JournalFencedError):
        await handed_back.write("0.0", turn("late"))
    await again.write("0.0", turn("mine"))
    assert again.writes == 2  # its claim and its turn


async def test_a_write_whose_ack_was_lost_is_recognised(bus: Bus) -> None:
    task_id = new_task_id()
    mine = await journal(bus, task_id, "a", 1).open()
    await mine.write("0.0", turn("one"))
    subject = f"$KV.{bus.subjects.bucket(Bucket.JOURNAL)}.{task_id}.0.0"
    from natsfleet.agents.loop.journal import _ENCODER

    # The last entry is ours: a lost ack of that write counts as written.
    assert await mine._landed(subject, _ENCODER.encode(turn("one"))) is not None
    # Someone else's entry is last: we were fenced.
    await journal(bus, task_id, "b", 2).open()
    with pytest.raises(_Conflict):
        await mine._landed(subject, _ENCODER.encode(turn("one")))


async def test_an_unreadable_entry_is_a_typed_error(bus: Bus) -> None:
    task_id = new_task_id()
    await bus.js.publish(f"$KV.{bus.subjects.bucket(Bucket.JOURNAL)}.{task_id}.0.0", b"{oops")
    with pytest.raises(JournalError, match="unreadable entry") as caught:
        await journal(bus, task_id, "a", 1).open()
    assert not caught.value.retryable  # every attempt would meet it: fail the task now
