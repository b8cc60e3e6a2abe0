"""The generated per-role NATS users: the fleet works, and nothing outside a role does."""

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import msgspec
import pytest

from natsfleet.bus import Bus
from natsfleet.client import FleetClient, OutputItem
from natsfleet.deploy.permissions import agent_role
from natsfleet.protocols import Bucket, OutputChunk, Stream, TaskState
from natsfleet.supervisor.lease import LeaseValue
from tests.fleet_agents import FanOut, Text
from tests.security.conftest import AuthFleet, Probe

# Short by design: a violation is reported as soon as the server sees the operation.
VIOLATION_S = 5.0


async def test_fleet_runs_as_generated_users(auth_fleet: AuthFleet) -> None:
    client = await auth_fleet.client()
    task_id = await client.submit("echo", Text(text="hi"))
    event = await client.wait(task_id, 30)
    assert event.state == TaskState.COMPLETED, event
    # A parent's sub-tasks: the agent user submits, claims IDEM keys, reads events.
    parent = await client.submit("fan_out", FanOut(texts=["a", "b"]))
    event = await client.wait(parent, 30)
    assert event.state == TaskState.COMPLETED, event
    assert msgspec.json.decode(event.output)["texts"] == ["a", "b"]
    # Following an output stream (an ordered consumer on OUTPUT: create, info
    # for the end rule, flow control, delivery on the reader's own inbox), as
    # the client user and as an agent user (a parent following a child).
    streamed = await client.submit("stream", {"chunks": 5, "gap_ms": 5}, queue=True)
    assert (await client.wait(streamed, 30)).state == TaskState.COMPLETED
    agent = FleetClient(await auth_fleet.bus("agent-echo", role=agent_role("echo")))
    for reader in (client, agent):
        items = await asyncio.wait_for(_items(reader.output_stream(streamed)), 20)
        texts = [i.message.text for i in items if isinstance(i.message, OutputChunk)]
        assert "".join(texts) == "".join(f"t{i} " for i in range(5))
    # nats-server logs "Publish Violation" / "Subscription Violation".
    log = auth_fleet.server_log.read_text()
    violations = [line for line in log.splitlines() if " Violation - " in line]
    assert violations == [], violations[:5]


async def _items(stream: AsyncIterator[OutputItem]) -> list[OutputItem]:
    return [item async for item in stream]


@dataclass(frozen=True)
class Forbidden:
    user: str
    role: str  # the inbox role the probe uses
    what: str
    kind: str  # "pub" or "sub"
    subject: Callable[[AuthFleet], str]


def _kv(bucket: Bucket) -> Callable[[AuthFleet], str]:
    return lambda f: f"$KV.{f.subjects.bucket(bucket)}.forged"


def _idem(key: str) -> Callable[[AuthFleet], str]:
    return lambda f: f"$KV.{f.subjects.bucket(Bucket.IDEM)}.{key}"


FORBIDDEN = [
    Forbidden("client", "cli", "impersonate an agent (hello)", "pub",
              lambda f: f.subjects.hello("echo", "echo-1")),
    Forbidden("client", "cli", "forge a result", "pub", lambda f: f.subjects.result("echo", "x")),
    Forbidden("client", "cli", "write task state", "pub", _kv(Bucket.STATE)),
    Forbidden("client", "cli", "write a lease", "pub", _kv(Bucket.LEASES)),
    Forbidden("client", "cli", "publish task events", "pub", lambda f: f.subjects.events("t1")),
    Forbidden("client", "cli", "send an Assign", "pub",
              lambda f: f.subjects.assign("echo", "echo-1")),
    Forbidden("client", "cli", "purge STATE", "pub",
              lambda f: f"$JS.API.STREAM.PURGE.KV_{f.subjects.bucket(Bucket.STATE)}"),
    Forbidden("client", "cli", "delete the TASKS stream", "pub",
              lambda f: f"$JS.API.STREAM.DELETE.{f.subjects.stream(Stream.TASKS)}"),
    Forbidden("client", "cli", "read an agent's assignments", "sub",
              lambda f: f.subjects.inbox("echo", "*")),
    Forbidden("client", "cli", "read the supervisor's replies", "sub",
              lambda f: f"{f.subjects.reply_inbox('supervisor', '*')}.>"),
    Forbidden("agent-echo", "agent.echo", "announce as another type", "pub",
              lambda f: f.subjects.heartbeat("parent", "parent-1")),
    Forbidden("agent-echo", "agent.echo", "report another type's result", "pub",
              lambda f: f.subjects.result("parent", "parent-1")),
    Forbidden("agent-echo", "agent.echo", "write task state", "pub", _kv(Bucket.STATE)),
    Forbidden("agent-echo", "agent.echo", "write a lease", "pub", _kv(Bucket.LEASES)),
    Forbidden("agent-echo", "agent.echo", "cancel through the control API", "pub",
              lambda f: f.subjects.control("cancel")),
    Forbidden("agent-echo", "agent.echo", "assign to another agent", "pub",
              lambda f: f.subjects.assign("parent", "parent-1")),
    Forbidden("agent-echo", "agent.echo", "take another type's assignments", "sub",
              lambda f: f.subjects.inbox("parent", "*")),
    Forbidden("agent-echo", "agent.echo", "read every announcement", "sub",
              lambda f: f.subjects.announcements()),
    Forbidden("agent-echo", "agent.echo", "read another type's replies", "sub",
              lambda f: f"{f.subjects.reply_inbox('agent.parent', '*')}.>"),
    Forbidden("agent-echo", "agent.echo", "read submissions", "sub", lambda f: f.subjects.submit()),
    Forbidden("agent-echo", "agent.echo", "write a client's idempotency key", "pub",
              _idem("client.forged")),
    Forbidden("agent-echo", "agent.echo", "write another type's idempotency key", "pub",
              _idem("agent.parent.forged")),
    Forbidden("client", "cli", "write an agent's idempotency key", "pub",
              _idem("agent.echo.forged")),
    Forbidden("client", "cli", "write a workflow step's idempotency key", "pub",
              _idem("supervisor.forged")),
]  # fmt: skip


async def _stream_seqs(fleet: AuthFleet) -> dict[str, int]:
    sup = await fleet.bus("supervisor", role="supervisor")
    names = [sup.subjects.stream(s) for s in Stream]
    names += [f"KV_{sup.subjects.bucket(b)}" for b in Bucket]
    return {name: (await sup.js.stream_info(name)).state.last_seq for name in names}


async def _leases(bus: Bus) -> dict[str, tuple[str, int]]:
    """Each lease's holder and epoch (every value must be a lease)."""
    kv = await bus.kv(Bucket.LEASES)
    found = {}
    for key in await kv.keys():
        entry = await kv.get(key)
        value = msgspec.json.decode(entry.value or b"", type=LeaseValue)
        found[key] = (value.holder, value.epoch)
    return found


async def test_forbidden_actions_fail_and_change_nothing(auth_fleet: AuthFleet) -> None:
    observer = await auth_fleet.bus("supervisor", role="supervisor")
    seen: list[str] = []

    async def record(msg: object) -> None:
        seen.append(getattr(msg, "subject", "?"))

    watched = [f"{auth_fleet.prefix}.>"]
    watched += [f"$KV.{auth_fleet.subjects.bucket(b)}.>" for b in Bucket]
    subs = [await observer.nc.subscribe(s, cb=record) for s in watched]
    before = await _stream_seqs(auth_fleet)
    leases_before = await _leases(observer)
    assert leases_before  # the active supervisor holds its lease
    for case in FORBIDDEN:
        probe = await Probe.connect(auth_fleet, case.user, case.role)
        subject = case.subject(auth_fleet)
        try:
            if case.kind == "pub":
                await probe.nc.publish(subject, b'{"type":"forged"}')
                message = await probe.violation(VIOLATION_S)
                assert "publish" in message.lower(), (case.what, message)
            else:
                # The server refuses (does not register) the subscription.
                await probe.nc.subscribe(subject)
                message = await probe.violation(VIOLATION_S)
                assert "subscription" in message.lower(), (case.what, message)
        finally:
            await probe.nc.close()
    await observer.nc.flush()
    forged = [s for s in seen if not _fleet_traffic(auth_fleet, s)]
    assert forged == [], forged
    for sub in subs:
        await sub.unsubscribe()
    after = await _stream_seqs(auth_fleet)
    changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    # Only the fleet's own traffic may move (heartbeats write AGENTS, the
    # supervisor renews its lease); no forged write landed.
    leases = f"KV_{auth_fleet.subjects.bucket(Bucket.LEASES)}"
    own = {f"KV_{auth_fleet.subjects.bucket(Bucket.AGENTS)}", leases}
    assert set(changed) <= own, changed
    # A LEASES write meanwhile can only be the supervisor renewing its lease by
    # compare-and-set on its own last write: any other write would have broken
    # that chain (the renewal refused, the lease taken anew with another epoch).
    assert await _leases(observer) == leases_before


def _fleet_traffic(fleet: AuthFleet, subject: str) -> bool:
    s = fleet.subjects
    return (
        subject.endswith((".hb", ".hello"))
        or subject.startswith(
            (f"$KV.{s.bucket(Bucket.AGENTS)}.", f"$KV.{s.bucket(Bucket.LEASES)}.")
        )
        or subject == s.rollcall()
    )


@pytest.mark.parametrize("user", ["client", "agent-echo"])
async def test_users_cannot_write_state_through_kv_api(auth_fleet: AuthFleet, user: str) -> None:
    role = "cli" if user == "client" else "agent.echo"
    bus = await auth_fleet.bus(user, role=role)
    before = await _stream_seqs(auth_fleet)
    state = f"{bus.subjects.bucket(Bucket.STATE)}"
    with pytest.raises(Exception):  # noqa: B017 - denied: no JetStream API answers
        kv = await bus.js.key_value(state)
        await kv.put("forged", b"{}")
    after = await _stream_seqs(auth_fleet)
    assert before[f"KV_{state}"] == after[f"KV_{state}"]
