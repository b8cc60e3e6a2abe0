"""FleetClient.submit checks ids, keys and numbers by the supervisor's rule
(protocols/limits.py) before anything is claimed or published."""

from typing import Any

import pytest

from natsfleet.bus import Bus
from natsfleet.client import FleetClient
from natsfleet.client.fleet import IdempotencyKeyMismatch, idempotency_bucket_key
from natsfleet.protocols import Bucket, InvalidValue, RetryPolicy, Stream, Timeouts

BAD: list[dict[str, Any]] = [
    {"task_id": "a b"},
    {"task_id": "*"},
    {"task_id": ">"},
    {"task_id": "a.b"},
    {"task_id": "\x01"},
    {"task_id": "x" * 100_000},
    {"skill": "echo echo"},
    {"skill": "s" * 200},
    {"parent_id": "p.*"},
    {"workflow_id": ""},
    {"key": "k" * 5000},
    {"key": "k\x00"},
    {"timeouts": Timeouts(start_to_close_s=1e308)},
    {"timeouts": Timeouts(schedule_to_close_s=-1)},
    {"retry": RetryPolicy(initial_interval_s=1e308, maximum_interval_s=1e308)},
    {"retry": RetryPolicy(backoff_coefficient=1e308)},
    {"priority": 2**40},
    {"budget_usd": -1.0},
]


@pytest.mark.parametrize("fields", BAD, ids=lambda f: repr(f)[:40])
async def test_a_bad_submit_raises_and_sends_nothing(bus: Bus, fields: dict[str, Any]) -> None:
    client = FleetClient(bus)
    arguments: dict[str, Any] = {"skill": "echo", **fields}
    with pytest.raises(InvalidValue) as info:
        await client.submit(input={"n": 1}, **arguments)
    assert isinstance(info.value, ValueError)  # callers catching ValueError still do
    tasks = await bus.js.stream_info(bus.subjects.stream(Stream.TASKS))
    assert tasks.state.messages == 0
    idem = await bus.js.stream_info(f"KV_{bus.subjects.bucket(Bucket.IDEM)}")
    assert idem.state.messages == 0  # no key claimed for a submit never sent


async def test_a_hostile_id_claimed_for_a_key_is_refused(bus: Bus) -> None:
    kv = await bus.kv(Bucket.IDEM)
    await kv.create(idempotency_bucket_key("order-1", bus.role), b"not an id.*")
    # The key's check (client/fleet.py, _check_key) refuses it before it becomes a subject.
    with pytest.raises(IdempotencyKeyMismatch, match="not a task id"):
        await FleetClient(bus).submit("echo", {"n": 1}, key="order-1")


async def test_a_good_submit_still_goes_through(bus: Bus) -> None:
    client = FleetClient(bus)
    task_id = await client.submit(
        "later.skill",
        {"n": 1},
        key="order/42 é",
        timeouts=Timeouts(schedule_to_close_s=3600),
        retry=RetryPolicy(maximum_attempts=0),
        priority=5,
        budget_usd=2.5,
        task_id="my-task_1",
    )
    assert task_id == "my-task_1"
    assert await client.submit("later.skill", {"n": 1}, key="order/42 é") == task_id


@pytest.mark.parametrize("task_id", ["a b", "*", ">", "x" * 100_000, "a.b"])
async def test_watching_a_bad_task_id_raises_before_subscribing(bus: Bus, task_id: str) -> None:
    client = FleetClient(bus)
    with pytest.raises(InvalidValue):
        await client.wait(task_id, timeout_s=5)
    with pytest.raises(InvalidValue):
        async for _ in client.output(task_id):
            pass
    assert bus.is_connected  # nothing the server would refuse was sent
    assert await client.submit("echo", {"n": 1})
