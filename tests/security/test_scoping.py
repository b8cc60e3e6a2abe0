"""What a role can write, under the generated per-role users: outcomes and IDEM.

Every agent user may publish outcomes on its own type's `result.<type>.*`
subjects, so the supervisor must not accept an outcome for a task assigned
elsewhere, whatever token or instance the outcome's fields claim. Every role
submits with idempotency keys, so none may point another's key elsewhere.
"""

import asyncio
import contextlib
import hashlib
import time

import msgspec
import pytest
from msgspec import structs

from natsfleet.bus import Bus
from natsfleet.client import FleetClient, IdempotencyKeyMismatch
from natsfleet.protocols import (
    Bucket,
    DeadLetter,
    DlqReason,
    DlqRequest,
    ErrorCode,
    Failure,
    FailureKind,
    Hello,
    OutcomeBatch,
    RemoteError,
    Result,
    TaskRecord,
    TaskState,
    to_raw,
)
from tests.fleet_agents import Sleep, Slept, Text
from tests.security.conftest import AuthFleet
from tests.supervisor.helpers import dead_letters


async def _running(fleet: AuthFleet, task_id: str) -> TaskRecord:
    """The task's record once an attempt holds a token (read as the client user)."""
    client = await fleet.client()
    deadline = time.monotonic() + 20
    while True:
        try:
            record = await client.status(task_id)
            if record.token is not None and record.state == TaskState.WORKING:
                return record
        except RemoteError:  # not admitted yet
            pass
        assert time.monotonic() < deadline, f"{task_id} never started"
        await asyncio.sleep(0.05)


async def _wrong_instance_entries(
    fleet: AuthFleet, task_id: str, count: int, timeout_s: float = 20
) -> list[DeadLetter]:
    sup = await fleet.bus("supervisor", role="supervisor")
    deadline = time.monotonic() + timeout_s
    while True:
        found = [
            e
            for e in await dead_letters(sup)
            if e.task_id == task_id and e.reason == DlqReason.WRONG_INSTANCE
        ]
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, f"{len(found)} of {count} wrong_instance entries"
        await asyncio.sleep(0.1)


async def test_agent_of_another_type_holding_the_token_cannot_complete_a_task(
    auth_fleet: AuthFleet,
) -> None:
    client = await auth_fleet.client()
    task_id = await client.submit("sleep", Sleep(ms=3000, steps=30))
    record = await _running(auth_fleet, task_id)
    assert record.agent == "echo" and record.instance_id == "echo-1", record
    token = record.token
    assert token is not None
    s = auth_fleet.subjects

    # A `parent` agent that learned the token reports on the subjects its user
    # may publish: once honestly, once claiming to be the echo instance.
    parent = await auth_fleet.bus("agent-parent", role="agent.parent")
    honest = Result(task_id=task_id, token=token, attempt=1, instance_id="parent-1",
                    agent="parent", output=to_raw("forged"))  # fmt: skip
    lying = msgspec.structs.replace(honest, instance_id="echo-1", agent="echo")
    await parent.publish_js(s.result("parent", "parent-1"), honest, msg_id=f"{task_id}:f1")
    failure = Failure(task_id=task_id, token=token, attempt=1, instance_id="echo-1", agent="echo",
                      kind=FailureKind.ERROR, error_type="forged", retryable=False)  # fmt: skip
    batch = OutcomeBatch(outcomes=(lying, failure))
    await parent.publish_js(s.result("parent", "parent-2"), batch, msg_id=f"{task_id}:f2")
    # An agent of the right type, but not the instance the attempt was given to.
    echo = await auth_fleet.bus("agent-echo", role="agent.echo")
    await echo.publish_js(s.result("echo", "echo-9"), lying, msg_id=f"{task_id}:f3")

    entries = await _wrong_instance_entries(auth_fleet, task_id, 4)
    assert sorted(e.subject for e in entries) == sorted(
        [s.result("echo", "echo-9"), s.result("parent", "parent-1")]
        + [s.result("parent", "parent-2")] * 2
    ), entries
    event = await client.wait(task_id, 30)
    assert event.state == TaskState.COMPLETED, event
    output = msgspec.json.decode(event.output, type=Slept)
    assert output.instance_id == "echo-1"
    final = await client.status(task_id)
    assert [a.outcome for a in final.history] == ["completed"], final.history
    assert final.instance_id == "echo-1"
    # A refused outcome has nothing to re-run (the task itself completed).
    listed = await client.dlq(DlqRequest(action="list"))
    seq = next(e.seq for e in listed.entries if e.reason == DlqReason.WRONG_INSTANCE)
    with pytest.raises(RemoteError) as info:
        await client.dlq(DlqRequest(action="retry", seq=seq))
    assert info.value.code == ErrorCode.BAD_REQUEST


async def test_task_events_carry_no_tokens(auth_fleet: AuthFleet) -> None:
    # Every agent user may read EVENTS (ctx.call waits on a child's events), so
    # a token there would be readable by every agent type.
    client = await auth_fleet.client()
    task_id = await client.submit("sleep", Sleep(ms=300, steps=3))
    await _running(auth_fleet, task_id)
    assert (await client.wait(task_id, 30)).state == TaskState.COMPLETED
    events = []
    async with contextlib.aclosing(client.watch(task_id)) as stream:
        async for event in stream:
            events.append(event)
            if event.state == TaskState.COMPLETED:
                break
    assert TaskState.WORKING in [e.state for e in events], events
    assert [e.token for e in events] == [None] * len(events), events


async def _overwrite(bus: Bus, bucket: str, key: str, task_id: str) -> bool:
    """Write an IDEM entry as `bus`'s user; False if the server refused it."""
    try:
        await bus.js.publish(f"$KV.{bucket}.{key}", task_id.encode(), timeout=2)
    except Exception:
        return False
    return True


async def test_idempotency_keys_cannot_be_redirected_to_another_task(
    auth_fleet: AuthFleet,
) -> None:
    client = await auth_fleet.client()
    mine = await client.submit("echo", Text(text="mine"), key="order-1")
    other = await client.submit("echo", Text(text="other"), key="order-2")
    for task_id in (mine, other):
        assert (await client.wait(task_id, 30)).state == TaskState.COMPLETED
    bucket = auth_fleet.subjects.bucket(Bucket.IDEM)
    digest = hashlib.sha256(b"order-1").hexdigest()
    keys = [digest, f"client.{digest}"]  # the entry of key order-1, before and after scoping

    # An agent user cannot write a client's key at all.
    agent = await auth_fleet.bus("agent-echo", role="agent.echo")
    assert [await _overwrite(agent, bucket, key, other) for key in keys] == [False, False]
    assert await client.submit("echo", Text(text="mine"), key="order-1") == mine

    # Another client (same user) can, but the task it points at was submitted
    # with another key, so the submit refuses it instead of returning it.
    rogue = await auth_fleet.bus("client", role="cli")
    assert True in [await _overwrite(rogue, bucket, key, other) for key in keys]
    with pytest.raises(IdempotencyKeyMismatch) as info:
        await client.submit("echo", Text(text="mine"), key="order-1")
    assert info.value.task_id == other and not info.value.retryable

    # An agent's own keys (ctx.call) work in its scope, the check included.
    violations = auth_fleet.server_log.read_text().count(" Violation - ")
    assert violations >= 2  # the agent's two refused writes above are logged
    calls = FleetClient(agent)
    child = await calls.submit("echo", Text(text="child"), key="parent-x/0")
    assert (await calls.wait(child, 30)).state == TaskState.COMPLETED
    assert await calls.submit("echo", Text(text="child"), key="parent-x/0") == child
    await agent.nc.flush()
    assert auth_fleet.server_log.read_text().count(" Violation - ") == violations


async def test_an_agent_cannot_announce_an_instance_of_another_type(auth_fleet: AuthFleet) -> None:
    """A Hello with a new incarnation ends the named instance's attempts: one
    sent by a `parent` agent (on the subjects its user may publish) naming the
    echo instance is refused, and the echo attempt runs on undisturbed."""
    client = await auth_fleet.client()
    task_id = await client.submit("sleep", Sleep(ms=2000, steps=20))
    record = await _running(auth_fleet, task_id)
    assert record.instance_id == "echo-1", record
    s = auth_fleet.subjects
    parent = await auth_fleet.bus("agent-parent", role="agent.parent")
    forged = Hello(
        instance_id="echo-1", agent="echo", incarnation="evil", skills=(), capacity=1,
        heartbeat_interval_s=1.0,
    )  # fmt: skip
    await parent.publish(s.hello("parent", "echo-1"), forged)
    await parent.publish(
        s.hello("parent", "phantom-1"), structs.replace(forged, instance_id="phantom-1")
    )
    event = await client.wait(task_id, 30)
    assert event.state == TaskState.COMPLETED, event
    final = await client.status(task_id)
    assert [(a.instance_id, a.outcome) for a in final.history] == [("echo-1", "completed")]
    sup = await auth_fleet.bus("supervisor", role="supervisor")
    refused = [
        e for e in await dead_letters(sup)
        if e.reason == DlqReason.WRONG_INSTANCE and e.subject.endswith(".hello")
    ]  # fmt: skip
    assert sorted(e.subject for e in refused) == sorted(
        [s.hello("parent", "echo-1"), s.hello("parent", "phantom-1")]
    ), refused
    agents = await client.agents()
    assert "phantom-1" not in [a.instance_id for a in agents]
