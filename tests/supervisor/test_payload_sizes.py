"""The size rule through real processes (`natsfleet supervisor`, `natsfleet agent
run`, `natsfleet submit`): payloads over the inline threshold go to BLOBS and
complete; payloads over the blob limit are refused at submit (inputs) or fail
the task at once (outputs). The server runs with its default 1 MiB max payload.
"""

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from nats.js.errors import ObjectNotFoundError

from natsfleet.bus.payloads import bounded_error
from natsfleet.client import FleetClient, TaskFailed, TaskRejected
from natsfleet.process import NatsServer
from natsfleet.protocols import (
    Bucket,
    ErrorCode,
    PayloadRef,
    Result,
    Stream,
    Submit,
    TaskRecord,
    TaskState,
    Usage,
    new_task_id,
    to_raw,
)
from natsfleet.supervisor import transitions as tr
from tests.agents.driver import Driver, driver
from tests.payload_agents import Inflated
from tests.procs import AgentProcs, agent_env
from tests.supervisor.conftest import MINI_AGENT

MB = 1_000_000
SIZES_MB = (0.9, 1.5, 5)
OVER_LIMIT = 70 * MB  # over the default blob limit (BusConfig.max_message_bytes, 64 MiB)
EXIT_REJECTED = 3

# The default assign timeout (2 s): a big input is read after the Accept.
SUPERVISOR = {
    "lease_ttl_s": 1.5,
    "ack_wait_s": 5.0,
    "registry_warmup_s": 0.2,
    "retry": {"initial_interval_s": 0.05, "maximum_interval_s": 0.5, "maximum_attempts": 3},
}


class Fleet:
    def __init__(self, d: Driver, procs: AgentProcs, url: str, prefix: str) -> None:
        self.d = d
        self.procs = procs
        self.client = FleetClient(d.bus)
        self.url = url
        self.prefix = prefix

    async def agent(self, spec: str, instance_id: str) -> None:
        await self.procs.start(spec, instance_id=instance_id)
        await self.d.hello(instance_id, timeout_s=20)

    async def cli(self, *args: str, timeout_s: float = 40) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "natsfleet.cli.main",
            *args,
            "--nats",
            self.url,
            "--prefix",
            self.prefix,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=agent_env({"COLUMNS": "200"}),
        )
        out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
        assert proc.returncode is not None
        return proc.returncode, out.decode(errors="replace")


@pytest.fixture
async def fleet(nats_server: NatsServer, prefix: str, tmp_path: Path) -> AsyncIterator[Fleet]:
    async with (
        driver(nats_server.url, prefix, results=False) as d,
        AgentProcs(nats_server.url, prefix, tmp_path / "logs") as procs,
    ):
        assert d.bus.nc.max_payload == 1024 * 1024  # the server's default
        await procs.start_supervisor("sup", SUPERVISOR)
        await d.supervisor_active("sup")
        yield Fleet(d, procs, nats_server.url, prefix)


def _text_of(size_bytes: int) -> str:
    return "x" * (size_bytes - len('{"text":""}'))


async def test_big_inputs_and_outputs_complete_through_the_cli(
    fleet: Fleet, tmp_path: Path
) -> None:
    """0.9, 1.5 and 5 MB inputs echoed back: `submit --wait` exits 0 with the
    output, and `status`/`result()` show the whole output."""
    await fleet.agent("echo", "echo-1")
    files = {}
    for size in SIZES_MB:
        path = tmp_path / f"in-{size}.json"
        path.write_text(json.dumps({"text": _text_of(int(size * MB))}))
        files[size] = path
    runs = await asyncio.gather(
        *(
            fleet.cli("submit", "echo", "--input", f"@{p}", "--wait", "--json")
            for p in files.values()
        )
    )
    for size, (code, out) in zip(SIZES_MB, runs, strict=True):
        assert code == 0, out[-2000:]
        event = json.loads(out)
        assert event["state"] == "completed"
        assert event["output"]["text"] == _text_of(int(size * MB)), size
        record = await fleet.client.status(event["task_id"], timeout_s=10)
        assert record.state == TaskState.COMPLETED
        assert json.loads(bytes(record.output))["text"] == _text_of(int(size * MB))
        code, shown = await fleet.cli("status", event["task_id"])
        assert code == 0 and "completed" in shown, shown[-2000:]


async def test_big_outputs_of_small_inputs_complete(fleet: Fleet) -> None:
    await fleet.agent("tests.payload_agents:InflateAgent", "inflate-1")
    ids = {
        size: await fleet.client.submit("inflate", {"size_bytes": int(size * MB)})
        for size in SIZES_MB
    }
    for size, task_id in ids.items():
        out = await fleet.client.result(task_id, Inflated, timeout_s=30)
        assert len(out.text) == int(size * MB)
        record = await fleet.client.status(task_id, timeout_s=10)
        assert record.state == TaskState.COMPLETED
        assert len(json.loads(bytes(record.output))["text"]) == int(size * MB)


async def test_input_over_the_blob_limit_is_refused_at_submit(fleet: Fleet, tmp_path: Path) -> None:
    """70 MB: `submit` exits non-zero at once with `too_large`; nothing is queued."""
    path = tmp_path / "huge.json"
    path.write_text(json.dumps({"text": _text_of(OVER_LIMIT)}))
    started = time.monotonic()
    code, out = await fleet.cli("submit", "echo", "--input", f"@{path}", "--wait", timeout_s=40)
    assert code == EXIT_REJECTED, out[-2000:]
    assert "too_large" in out and "blob limit" in out
    assert time.monotonic() - started < 20  # refused, not waited on
    with pytest.raises(TaskRejected) as caught:
        await fleet.client.submit("echo", {"text": _text_of(OVER_LIMIT)})
    assert caught.value.code == ErrorCode.TOO_LARGE
    assert not caught.value.retryable
    bus = fleet.d.bus
    info = await bus.js.stream_info(bus.subjects.stream(Stream.TASKS))
    assert info.state.messages == 0
    blobs = await bus.js.stream_info(f"OBJ_{bus.subjects.object_store()}")
    assert blobs.state.messages == 0  # nothing stored either


async def test_output_over_the_blob_limit_fails_the_task(fleet: Fleet) -> None:
    """The agent reports a non-retryable failure instead of leaving the task `working`."""
    await fleet.agent("tests.payload_agents:InflateAgent", "inflate-1")
    task_id = await fleet.client.submit("inflate", {"size_bytes": OVER_LIMIT})
    with pytest.raises(TaskFailed) as caught:
        await fleet.client.result(task_id, Inflated, timeout_s=40)
    error = caught.value.event.error
    assert error is not None and error.error_type == "too_large"
    assert not error.retryable
    record = await fleet.client.status(task_id, timeout_s=10)
    assert record.state == TaskState.FAILED
    assert record.attempts == 1


async def test_a_submit_sent_whole_over_the_blob_limit_is_rejected(fleet: Fleet) -> None:
    """A sender that is not FleetClient offloads a 70 MB Submit whole: the
    supervisor cannot read it, dead-letters it, and records its task `rejected`
    (`too_large`), so a waiter hears instead of waiting forever."""
    bus = fleet.d.bus
    task_id = new_task_id()
    submit = Submit(task_id=task_id, skill="echo", input=to_raw({"text": _text_of(OVER_LIMIT)}))
    name = await bus.payloads.blobs.put(msgspec.json.encode(submit))
    headers = {"Nats-Msg-Id": task_id, "Natsfleet-Blob": name, "Natsfleet-Version": "1"}
    await bus.js.publish(bus.subjects.submit(), b"", headers=headers)
    event = await fleet.client.wait(task_id, timeout_s=30)
    assert event.state == TaskState.REJECTED
    assert event.error is not None and event.error.error_type == "too_large"


# -- senders that do not offload: the supervisor holds the rule for them ---------------


async def test_a_submit_with_a_big_inline_input_is_offloaded_by_the_supervisor(
    fleet: Fleet,
) -> None:
    """An older client's Submit carries 1.5 MB inline (the transport offloads the
    whole message): the supervisor keeps the input in BLOBS, not in STATE."""
    await fleet.agent("echo", "echo-1")
    text = _text_of(int(1.5 * MB))
    task_id = new_task_id()
    submit = Submit(task_id=task_id, skill="echo", input=to_raw({"text": text}))
    await fleet.d.bus.publish_js(fleet.d.bus.subjects.submit(), submit, msg_id=task_id)
    event = await fleet.client.wait(task_id, timeout_s=30)
    assert event.state == TaskState.COMPLETED
    assert json.loads(bytes(event.output))["text"] == text
    kv = await fleet.d.bus.kv(Bucket.STATE)
    entry = await kv.get(task_id)
    assert entry.value is not None and len(entry.value) < 64 * 1024
    stored = msgspec.json.decode(entry.value, type=TaskRecord)
    assert stored.input_ref is not None and stored.output_ref is not None


@pytest.mark.parametrize("size_mb", [0.9, 1.5])
async def test_an_agent_sending_a_big_output_inline_completes(fleet: Fleet, size_mb: float) -> None:
    """0.9 MB fits one message, so an agent that knows no size rule sends it
    inline (1.5 MB: offloaded whole by the transport); the supervisor moves it
    to BLOBS instead of failing its STATE write."""
    cmd = [sys.executable, str(MINI_AGENT), "--url", fleet.url, "--prefix", fleet.prefix]
    cmd += ["--instance", "mini-1", "--skills", "big", "--hb", "0.1"]
    await fleet.procs.spawn("mini-1", cmd)
    await fleet.d.hello("mini-1", timeout_s=20)
    size = int(size_mb * MB)
    task_id = await fleet.client.submit("big", {"output_bytes": size})
    event = await fleet.client.wait(task_id, timeout_s=30)
    assert event.state == TaskState.COMPLETED, event
    assert len(json.loads(bytes(event.output))) == size
    assert event.output_ref is not None


@pytest.mark.parametrize("huge", [("type_bytes", "detail_bytes"), ("detail_bytes",)])
async def test_a_huge_error_text_is_cut_not_fatal_to_the_record(
    fleet: Fleet, huge: tuple[str, ...]
) -> None:
    """Error type and detail come from the agent and land in every attempt of the
    record: 3 attempts with 1.5 MB of each still end `failed`, with the text cut.
    An error type over the edge rule's 256 characters makes the Failure unreadable:
    the attempt it names fails `bad_outcome` (Engine.unreadable_outcome), never
    left to hold the task."""
    cmd = [sys.executable, str(MINI_AGENT), "--url", fleet.url, "--prefix", fleet.prefix]
    cmd += ["--instance", "mini-1", "--skills", "bad", "--hb", "0.1"]
    await fleet.procs.spawn("mini-1", cmd)
    await fleet.d.hello("mini-1", timeout_s=20)
    size = int(1.5 * MB)
    spec: dict[str, object] = {"fail": "E", **dict.fromkeys(huge, size)}
    task_id = await fleet.client.submit("bad", spec)
    event = await fleet.client.wait(task_id, timeout_s=30)
    assert event.state == TaskState.FAILED, event
    record = await fleet.client.status(task_id, timeout_s=10)
    assert record.attempts == 3
    assert record.error is not None and len(record.error.detail) < 10_000
    assert all(a.error is not None and len(a.error.error_type) < 1_000 for a in record.history)
    expected_type = "bad_outcome" if "type_bytes" in huge else "E"
    assert all(a.error is not None and a.error.error_type == expected_type for a in record.history)


async def test_a_stale_results_blob_is_deleted(fleet: Fleet) -> None:
    """A result the supervisor will never record (here: for an unknown task) is
    dead-lettered `stale`, and its output blob removed rather than kept 7 days."""
    bus = fleet.d.bus
    raw, ref = await bus.payloads.offload(to_raw("z" * MB), "output", "nosuch.tok")
    assert ref is not None
    result = Result(
        task_id="nosuch", token="tok", attempt=1, instance_id="i", agent="a",
        output=raw, output_ref=ref,
    )  # fmt: skip
    await bus.publish_js(bus.subjects.result("a", "i"), result, msg_id="nosuch:tok")
    store = await bus.js.object_store(bus.subjects.object_store())
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        try:
            await store.get_info(ref.name)
        except ObjectNotFoundError:
            break
        assert asyncio.get_running_loop().time() < deadline, "stale blob never deleted"
        await asyncio.sleep(0.05)


async def test_a_submit_with_a_reference_and_a_big_inline_input_fails_cleanly(
    fleet: Fleet,
) -> None:
    """Hostile: a reference to no blob plus 1.5 MB inline. The inline input is
    never stored; the agent cannot read the blob, so the task fails `bad_input`."""
    await fleet.agent("echo", "echo-1")
    task_id = new_task_id()
    submit = Submit(
        task_id=task_id, skill="echo", input=to_raw({"text": _text_of(int(1.5 * MB))}),
        input_ref=PayloadRef(name=f"{task_id}.nothing", size_bytes=100),
    )  # fmt: skip
    await fleet.d.bus.publish_js(fleet.d.bus.subjects.submit(), submit, msg_id=task_id)
    event = await fleet.client.wait(task_id, timeout_s=30)
    assert event.state == TaskState.FAILED
    assert event.error is not None and event.error.error_type == "bad_input"
    entry = await (await fleet.d.bus.kv(Bucket.STATE)).get(task_id)
    assert entry.value is not None and len(entry.value) < 64 * 1024


async def test_a_big_input_of_the_wrong_shape_fails_bad_input_once(fleet: Fleet) -> None:
    await fleet.agent("echo", "echo-1")
    task_id = await fleet.client.submit("echo", {"txt": "x" * int(1.5 * MB)})
    event = await fleet.client.wait(task_id, timeout_s=30)
    assert event.state == TaskState.FAILED
    assert event.error is not None and event.error.error_type == "bad_input"
    assert not event.error.retryable and event.attempt == 1


def test_a_record_keeps_the_latest_attempts_only() -> None:
    """With no attempt limit a task's history must not outgrow one KV value:
    150 failed attempts with the longest error text still encode under 1 MiB."""
    record = TaskRecord(task_id="t", skill="s", state=TaskState.QUEUED, input=to_raw(None))
    error = bounded_error("E" * 10_000, "d" * 10_000, retryable=True)
    for n in range(150):
        record = tr.assigned(
            record, token=f"k{n}", instance_id="i", agent="a", now_ms=n, assign_timeout_s=1
        )
        record = tr.attempt_ended(record, outcome="error", error=error, usage=Usage(), now_ms=n)
    assert record.attempts == 150
    assert len(record.history) == tr.MAX_HISTORY
    assert record.history[-1].token == "k149"
    assert len(msgspec.json.encode(record)) < 1024 * 1024 // 2
