"""Idempotency keys: a key's IDEM entry is trusted only as far as its task's events agree."""

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from natsfleet.client import IdempotencyKeyMismatch, idempotency_bucket_key
from natsfleet.protocols import Bucket, TaskState, idempotency_digest, new_task_id


async def test_a_key_pointing_at_a_task_not_yet_admitted_is_checked_at_its_first_event(
    fleet: Any,
) -> None:
    # No supervisor yet: submissions wait in TASKS and have no event.
    other = await fleet.client.submit("echo", {"n": 1})
    orphan = new_task_id()
    kv = await fleet.bus.kv(Bucket.IDEM)
    role = fleet.client.bus.role
    # An entry pointed at another submission's task (by a user of the same scope)...
    await kv.create(idempotency_bucket_key("order-7", role), other.encode())
    # ...and one claimed by a client that died before publishing its Submit.
    await kv.create(idempotency_bucket_key("order-8", role), orphan.encode())
    assert await fleet.client.submit("echo", {"n": 2}, key="order-7") == other
    assert await fleet.client.submit("echo", {"n": 3}, key="order-8") == orphan

    # The agent first: a supervisor that became active starts on TASKS after a
    # 0.3 s warm-up, and an agent started after it may not have said hello yet.
    await fleet.agent("a1")
    await fleet.supervisor()
    with pytest.raises(IdempotencyKeyMismatch) as info:
        await fleet.client.wait(other, timeout_s=10)
    assert info.value.task_id == other and "no key" in str(info.value)
    event = await fleet.client.wait(orphan, timeout_s=10)
    assert event.state == TaskState.COMPLETED
    assert event.key_hash == idempotency_digest("order-8")
    # Handed out for key order-7, the id keeps failing the check in this client.
    with pytest.raises(IdempotencyKeyMismatch):
        await fleet.client.wait(other, timeout_s=10)
