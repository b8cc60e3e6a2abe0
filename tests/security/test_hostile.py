"""Hostile input at every subject a real supervisor and a real agent subscribe to.

hypothesis makes the payloads (random bytes, JSON of the wrong shape, valid
messages with mutated bytes, unknown protocol versions); the test sends them
to agent inboxes, announcements, rollcall, results, submit and the control
API, then checks: no process died, every request got a typed answer, every
undecodable message is in the DLQ under its subject, and a real task still
completes. Then the named cases: oversized, deeply nested, missing blobs,
results for unknown tasks, heartbeats claiming tasks they do not hold, and a
flood of submits (backpressure, bounded supervisor memory).
"""

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from natsfleet.bus import Bus, BusConfig
from natsfleet.client import FleetClient, TaskRejected
from natsfleet.process import NatsServer
from natsfleet.protocols import (
    BLOB_HEADER,
    VERSION_HEADER,
    AgentAnnouncement,
    AgentInbox,
    AttemptOutcome,
    Codec,
    ControlRequest,
    ErrorCode,
    Heartbeat,
    InFlight,
    ProtocolError,
    RemoteError,
    Result,
    Rollcall,
    Stream,
    Submit,
    TaskState,
    is_id,
    to_raw,
)
from tests.fleet_agents import Sleep, Text
from tests.procs import AgentProcess, AgentProcs
from tests.supervisor.helpers import dead_letters

SUPERVISOR = {
    "timeouts": {"heartbeat_timeout_s": 1.0},
    "assign_timeout_s": 1.0,
    "lease_ttl_s": 2.0,
    "ack_wait_s": 1.0,
    "registry_warmup_s": 0.2,
}

VALID: list[bytes] = [
    msgspec.json.encode(
        {"type": "task.assign", "task_id": "t1", "token": "k", "attempt": 1, "skill": "echo",
         "input": {"text": "x"}, "remaining_ms": 1000}
    ),
    msgspec.json.encode(
        {"type": "agent.hb", "instance_id": "echo-1", "agent": "echo", "incarnation": "i",
         "seq": 1, "load": 0, "capacity": 4}
    ),
    msgspec.json.encode(
        {"type": "task.result", "task_id": "nope", "token": "k", "attempt": 1,
         "instance_id": "echo-1", "agent": "echo", "output": None}
    ),
    msgspec.json.encode({"type": "task.submit", "task_id": "fz", "skill": "echo", "input": {}}),
    msgspec.json.encode({"type": "ctl.status", "task_id": "nope"}),
]  # fmt: skip

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, len(data) - 1))
        match draw(st.sampled_from(["flip", "cut", "insert"])):
            case "flip":
                data[where] ^= 1 << draw(st.integers(0, 7))
            case "cut":
                del data[where:]
                if not data:
                    break
            case "insert":
                data[where:where] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


def _tagged() -> st.SearchStrategy[bytes]:
    """Known tags with fields of the wrong shape."""
    tags = ["task.assign", "task.cancel", "agent.hb", "agent.hello", "task.result",
            "task.submit", "ctl.status", "ctl.dlq", "agent.rollcall", "nope"]  # fmt: skip
    return st.builds(
        lambda tag, body: msgspec.json.encode({**body, "type": tag}),
        st.sampled_from(tags),
        st.dictionaries(st.sampled_from(["task_id", "token", "seq", "input", "x"]), _json),
    )


PAYLOADS = st.one_of(
    st.binary(max_size=2048),
    _json.map(msgspec.json.encode),
    _mutated(),
    _tagged(),
)
VERSIONS = st.sampled_from([None, None, None, "1", "0", "2", "999", "", "x" * 300])


def hostile_inputs(count: int) -> list[tuple[int, bytes, str | None]]:
    """(target index, payload, version header) drawn by hypothesis."""
    found: list[tuple[int, bytes, str | None]] = []

    @settings(
        max_examples=count,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        deadline=None,
    )
    @given(st.integers(0, 1000), PAYLOADS, VERSIONS)
    def collect(target: int, payload: bytes, version: str | None) -> None:
        found.append((target, payload, version))

    collect()
    return found


@dataclass(frozen=True)
class Target:
    subject: str
    request: bool
    codec: Codec[Any]


def targets(bus: Bus) -> list[Target]:
    s = bus.subjects
    inbox, ann = Codec[AgentInbox](AgentInbox), Codec[AgentAnnouncement](AgentAnnouncement)
    ctl = Codec[ControlRequest](ControlRequest)
    return [
        Target(s.assign("echo", "echo-1"), True, inbox),
        Target(s.cancel("echo", "echo-1"), False, inbox),
        Target(s.rollcall(), False, Codec[Rollcall](Rollcall)),
        Target(s.hello("echo", "echo-1"), False, ann),
        Target(s.heartbeat("echo", "echo-1"), False, ann),
        Target(s.heartbeat("echo", "ghost"), False, ann),
        Target(s.bye("echo", "ghost"), False, ann),
        Target(s.result("echo", "echo-1"), False, Codec[AttemptOutcome](AttemptOutcome)),
        Target(s.submit(), False, Codec[Submit](Submit)),
        *(Target(s.control(verb), True, ctl) for verb in ("status", "list", "cancel", "dlq")),
        Target(s.control("bogus"), True, ctl),
    ]


def _is_bad(target: Target, payload: bytes, version: str | None) -> bool:
    if version is not None and version != "1":
        return True
    try:
        target.codec.decode(payload)
    except ProtocolError:
        return True
    return False


@dataclass
class Hostile:
    server: NatsServer
    bus: Bus
    client: FleetClient
    supervisor: AgentProcess
    agent: AgentProcess


@pytest.fixture
async def hostile(nats_server: NatsServer, prefix: str, tmp_path: Path) -> AsyncIterator[Hostile]:
    async with AgentProcs(nats_server.url, prefix, tmp_path) as procs:
        bus = await Bus(BusConfig(url=nats_server.url, prefix=prefix), role="test").connect()
        await bus.provision()
        client = FleetClient(bus)
        sup = await procs.start_supervisor("sup", SUPERVISOR)
        agent = await procs.start(
            "tests.fleet_agents:EchoAgent", instance_id="echo-1", heartbeat_s=0.2
        )
        await _until_agent(client)
        try:
            yield Hostile(nats_server, bus, client, sup, agent)
        finally:
            await bus.close()


async def _until_agent(client: FleetClient, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if any(i.alive for i in await client.agents("echo", timeout_s=1.0)):
                return
        except Exception:  # no supervisor yet
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("the echo agent did not come up")


async def _still_serving(h: Hostile) -> None:
    assert h.supervisor.returncode is None, h.supervisor.log()[-2000:]
    assert h.agent.returncode is None, h.agent.log()[-2000:]
    await _until_agent(h.client, 10)
    task_id = await h.client.submit("echo", Text(text="after"))
    event = await h.client.wait(task_id, 30)
    assert event.state == TaskState.COMPLETED, event


async def _dlq_by_subject(bus: Bus) -> Counter[str]:
    return Counter(entry.subject for entry in await dead_letters(bus))


async def _until_dead_lettered(bus: Bus, expected: Counter[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        found = await _dlq_by_subject(bus)
        missing = {s: (n, found[s]) for s, n in expected.items() if found[s] < n}
        if not missing:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not dead-lettered (expected, found): {missing}")
        await asyncio.sleep(0.2)


async def _send(h: Hostile, target: Target, payload: bytes, version: str | None) -> None:
    headers = {VERSION_HEADER: version} if version is not None else None
    if not target.request:
        await h.bus.nc.publish(target.subject, payload, headers=headers)
        return
    reply = await h.bus.nc.request(target.subject, payload, timeout=10, headers=headers)
    answer = msgspec.json.decode(reply.data)
    assert isinstance(answer, dict), answer
    if _is_bad(target, payload, version):
        # A typed refusal: the protocol's ErrorReply, or an agent's Reject.
        assert answer.get("type") in ("error", "task.reject"), (target.subject, answer)
        if answer["type"] == "error":
            assert answer["code"] in set(ErrorCode), answer


async def test_fuzz_every_subscribed_subject(hostile: Hostile) -> None:
    h = hostile
    all_targets = targets(h.bus)
    expected: Counter[str] = Counter()
    before = await _dlq_by_subject(h.bus)
    for index, payload, version in hostile_inputs(250):
        target = all_targets[index % len(all_targets)]
        await _send(h, target, payload, version)
        if not target.request and _is_bad(target, payload, version):
            expected[target.subject] += 1
    await h.bus.nc.flush()
    await _until_dead_lettered(h.bus, expected + before, timeout_s=30)
    await _still_serving(h)


async def test_named_hostile_cases(hostile: Hostile) -> None:
    h = hostile
    s = h.bus.subjects
    hb = s.heartbeat("echo", "echo-1")
    max_payload = h.bus.nc.max_payload
    before = await _dlq_by_subject(h.bus)
    sends: list[tuple[str, bytes, dict[str, str] | None]] = [
        (hb, b"x" * (max_payload - 4096), None),  # as large as NATS allows
        (hb, b"[" * 200_000 + b"]" * 200_000, None),  # deeply nested JSON
        (hb, b'{"type":"agent.hb"' + b',"x":{"a":' * 5000 + b"1" + b"}" * 5001, None),
        (hb, b"", {BLOB_HEADER: "no-such-blob"}),  # a blob reference to nothing
        (hb, VALID[1], {VERSION_HEADER: "2"}),  # an unknown protocol version
        (s.result("echo", "echo-1"), VALID[2], None),  # a result for an unknown task
    ]
    for subject, payload, headers in sends:
        await h.bus.nc.publish(subject, payload, headers=headers)
    expected = Counter({hb: 5, s.result("echo", "echo-1"): 1})
    await _until_dead_lettered(h.bus, expected + before, timeout_s=30)
    reasons = Counter(e.reason.value for e in await dead_letters(h.bus))
    for reason in ("decode_error", "blob_missing", "unsupported_version", "stale"):
        assert reasons[reason] >= 1, reasons

    # A heartbeat claiming a task it does not hold changes nothing about that task.
    task_id = await h.client.submit("sleep", Sleep(ms=1500))
    await _until_state(h.client, task_id, TaskState.ASSIGNED)
    ghost = Heartbeat(
        instance_id="ghost", agent="echo", incarnation="g", seq=5, load=1, capacity=4,
        in_flight=(InFlight(task_id=task_id, token="forged"),),
    )  # fmt: skip
    for seq in range(3):
        await h.bus.publish(hb.replace("echo-1", "ghost"), msgspec.structs.replace(ghost, seq=seq))
    event = await h.client.wait(task_id, 30)
    assert event.state == TaskState.COMPLETED, event
    record = await h.client.status(task_id)
    assert record.instance_id == "echo-1" and record.attempts == 1, record
    forged = Result(task_id=task_id, token="forged", attempt=1, instance_id="ghost",
                    agent="echo", output=to_raw("forged"))  # fmt: skip
    await h.bus.publish_js(s.result("echo", "ghost"), forged, msg_id=f"{task_id}:forged")
    await _until_dead_lettered(h.bus, Counter({s.result("echo", "ghost"): 1}), 20)
    assert msgspec.json.decode((await h.client.status(task_id)).output) != "forged"
    await _still_serving(h)


# Well-formed JSON of the right type whose ids or numbers break the edge rule
# (protocols/limits.py): wildcards, dots, spaces, control characters, the
# empty string, ids far over the length limit, numbers that overflow.
HOSTILE_IDS = st.one_of(
    st.sampled_from(
        ["", "*", ">", "a b", "a.b", "\x01", "ok\n", "\u00e9", "a" * 129, "x" * 100_000]
    ),
    st.text(min_size=1, max_size=30).filter(lambda text: not is_id(text)),
)
HOSTILE_NUMBERS = st.sampled_from([1e308, -1.0, 2**62, -(2**62)])


def _semantic_cases(s: Any) -> st.SearchStrategy[tuple[str, bool, dict[str, Any]]]:
    """(subject, is a request, message) with one hostile id or number."""
    hb = {
        "type": "agent.hb",
        "instance_id": "ghost",
        "agent": "echo",
        "incarnation": "g",
        "seq": 1,
        "load": 0,
        "capacity": 1,
    }
    hello = {
        "type": "agent.hello",
        "instance_id": "ghost",
        "agent": "echo",
        "incarnation": "g",
        "skills": [{"name": "echo"}],
        "capacity": 1,
        "heartbeat_interval_s": 1.0,
    }
    result = {
        "type": "task.result",
        "task_id": "t",
        "token": "k",
        "attempt": 1,
        "instance_id": "echo-1",
        "agent": "echo",
        "output": None,
    }
    submit = {"type": "task.submit", "task_id": "t", "skill": "echo", "input": {}}
    assign = {
        "type": "task.assign",
        "task_id": "t",
        "token": "k",
        "attempt": 1,
        "skill": "echo",
        "input": {"text": "x"},
    }
    ids = [
        (s.heartbeat("echo", "ghost"), False, hb, ["instance_id", "agent", "incarnation"]),
        (s.hello("echo", "ghost"), False, hello, ["instance_id", "agent", "incarnation"]),
        (s.bye("echo", "ghost"), False, {**hb, "type": "agent.bye"}, ["instance_id", "agent"]),
        (s.result("echo", "echo-1"), False, result, ["task_id", "token", "instance_id", "agent"]),
        (s.submit(), False, submit, ["task_id", "skill", "parent_id", "workflow_id"]),
        (s.assign("echo", "echo-1"), True, assign, ["task_id", "token", "skill", "parent_id"]),
        (s.cancel("echo", "echo-1"), False, {"type": "task.cancel", "task_id": "t", "token": "k"},
         ["task_id", "token"]),
    ]  # fmt: skip
    numbers = [
        (s.submit(), False, submit, ["priority", "budget_usd", "submitted_ms"]),
        (s.heartbeat("echo", "ghost"), False, hb, ["load", "capacity"]),
        (s.result("echo", "echo-1"), False, result, ["attempt"]),
    ]

    @st.composite
    def case(draw: st.DrawFn) -> tuple[str, bool, dict[str, Any]]:
        if draw(st.booleans()):
            subject, request, base, fields = draw(st.sampled_from(ids))
            value: Any = draw(HOSTILE_IDS)
        else:
            subject, request, base, fields = draw(st.sampled_from(numbers))
            value = draw(HOSTILE_NUMBERS)
        field = draw(st.sampled_from(fields))
        if draw(st.booleans()) and subject == s.submit():  # or deep inside: numbers in policies
            field = draw(st.sampled_from(["timeouts", "retry"]))
            inner = "start_to_close_s" if field == "timeouts" else "initial_interval_s"
            value = {inner: draw(st.sampled_from([1e308, -1.0]))}
        return subject, request, {**base, field: value}

    return case()


def semantic_inputs(s: Any, count: int) -> list[tuple[str, bool, dict[str, Any]]]:
    found: list[tuple[str, bool, dict[str, Any]]] = []

    @settings(max_examples=count, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck), deadline=None)  # fmt: skip
    @given(_semantic_cases(s))
    def collect(item: tuple[str, bool, dict[str, Any]]) -> None:
        found.append(item)

    collect()
    return found


async def test_semantically_hostile_messages_are_dead_lettered_once(hostile: Hostile) -> None:
    """Valid JSON of the right type with hostile ids, tokens and numbers: each is
    refused at decoding (a typed answer for a request, one DLQ entry under its
    subject otherwise), none is redelivered, and both processes keep working."""
    h = hostile
    s = h.bus.subjects
    codecs = {t.subject: t.codec for t in targets(h.bus)}
    codecs[s.heartbeat("echo", "ghost")] = codecs[s.hello("echo", "ghost")] = codecs[
        s.bye("echo", "ghost")
    ] = Codec[AgentAnnouncement](AgentAnnouncement)
    before = await _dlq_by_subject(h.bus)
    expected: Counter[str] = Counter()
    for subject, request, message in semantic_inputs(s, 120):
        payload = msgspec.json.encode(message)
        target = Target(subject, request, codecs[subject])
        assert _is_bad(target, payload, None), message  # the rule refuses it
        await _send(h, target, payload, None)
        if not request:
            expected[subject] += 1
    await h.bus.nc.flush()
    await _until_dead_lettered(h.bus, expected + before, timeout_s=60)
    tasks = s.stream(Stream.TASKS)
    deadline = time.monotonic() + 20
    while (await h.bus.js.stream_info(tasks)).state.messages:  # settled: nothing comes back
        assert time.monotonic() < deadline, "hostile submits stay in TASKS"
        await asyncio.sleep(0.1)
    await _still_serving(h)
    # Exactly once each: no submit was redelivered into a second entry.
    after = await _dlq_by_subject(h.bus)
    assert after[s.submit()] - before[s.submit()] == expected[s.submit()]
    assert "Traceback" not in h.supervisor.log(), h.supervisor.log()[-3000:]


async def _until_state(client: FleetClient, task_id: str, state: TaskState) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            if (await client.status(task_id)).state in (state, TaskState.WORKING):
                return
        except RemoteError:  # not admitted yet
            pass
        assert time.monotonic() < deadline, f"{task_id} never reached {state}"
        await asyncio.sleep(0.05)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_submit_flood_gets_backpressure_and_memory_stays_bounded(
    nats_server: NatsServer, prefix: str, tmp_path: Path
) -> None:
    config = {**SUPERVISOR, "max_waiting": 300, "storage": {"tasks_max_msgs": 500}}
    async with AgentProcs(nats_server.url, prefix, tmp_path) as procs:
        bus = await Bus(BusConfig(url=nats_server.url, prefix=prefix), role="test").connect()
        try:
            sup = await procs.start_supervisor("sup", config)
            client = FleetClient(bus)
            deadline = time.monotonic() + 30
            while True:  # until the supervisor answers (and has provisioned TASKS)
                try:
                    await client.list(timeout_s=1.0)
                    break
                except Exception:
                    assert time.monotonic() < deadline, sup.log()[-2000:]
                    await asyncio.sleep(0.05)
            accepted, refused = await _flood(client, 1500)
            rss_first = _rss_kib(sup.pid)
            accepted2, refused2 = await _flood(client, 3000)
            rss_second = _rss_kib(sup.pid)
            assert refused and refused2, (accepted, refused)
            # Nothing more fits: the waiting tasks and TASKS are both at their maximum.
            assert accepted + accepted2 <= 300 + 500 + 256, (accepted, accepted2)
            assert rss_second - rss_first < 30 * 1024, (rss_first, rss_second)
            assert sup.returncode is None
        finally:
            await bus.close()


async def _flood(client: FleetClient, count: int) -> tuple[int, int]:
    """Submit `count` tasks nobody can run (queued); count accepted and refused."""
    accepted = refused = 0
    for start in range(0, count, 250):

        async def one(i: int) -> bool:
            try:
                await client.submit("nobody", {"i": i}, queue=True)
                return True
            except TaskRejected as exc:
                assert exc.code == ErrorCode.BACKPRESSURE, exc
                return False

        results = await asyncio.gather(*(one(i) for i in range(start, start + 250)))
        accepted += sum(results)
        refused += len(results) - sum(results)
    return accepted, refused
