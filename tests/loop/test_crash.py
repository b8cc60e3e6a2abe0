"""The journal across real process deaths: kill -9 mid-loop, and a SIGSTOPped
zombie, with the real supervisor (`natsfleet supervisor`) and agents as
processes (`natsfleet agent run tests.loop_agents:LoopAgent`) whose model is
the wire-format server in this test process."""

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from natsfleet.agents.loop import Claim, ToolResult
from natsfleet.agents.loop.journal import Journal
from natsfleet.client import FleetClient
from natsfleet.process import NatsServer
from natsfleet.protocols import Bucket, Codec, DeadLetter, Progress, Stream, TaskState
from tests.agents.driver import Driver, driver
from tests.llm.wire import WireServer
from tests.loop.conftest import MODEL, lines
from tests.loop_agents import Answer, Ask
from tests.procs import AgentProcess, AgentProcs

LOOPER = "tests.loop_agents:LoopAgent"
SUPERVISOR = {
    "timeouts": {
        "schedule_to_start_s": 30.0,
        "start_to_close_s": 30.0,
        # Not shorter: on a loaded machine a healthy instance may miss 0.5 s.
        "heartbeat_timeout_s": 1.0,
        "schedule_to_close_s": 60.0,
    },
    "retry": {"initial_interval_s": 0.05, "maximum_interval_s": 0.5, "maximum_attempts": 3},
    "assign_timeout_s": 0.5,
    "lease_ttl_s": 1.5,
    "ack_wait_s": 1.0,
    "registry_warmup_s": 0.3,
    "sweep_interval_s": 0.05,
}
_DLQ = Codec[DeadLetter](DeadLetter)


class Fleet:
    def __init__(self, d: Driver, procs: AgentProcs, tmp: Path, env: dict[str, str]) -> None:
        self.d = d
        self.procs = procs
        self.client = FleetClient(d.bus)
        self.effects = tmp / "effects.log"
        self.gate = tmp / "gate"
        self.env = env

    async def looper(self, instance_id: str) -> AgentProcess:
        proc = await self.procs.start(LOOPER, instance_id=instance_id, env=self.env)
        await self.d.hello(instance_id, timeout_s=15)
        return proc

    async def journal(self, task_id: str) -> dict[str, Any]:
        reader = Journal(
            self.d.bus.js,
            bucket=self.d.subjects.bucket(Bucket.JOURNAL),
            task_id=task_id,
            token="reader",
            attempt=0,
            instance_id="test",
        )
        await reader.load()
        return dict(reader.entries)

    async def until_journaled(self, task_id: str, key: str) -> dict[str, Any]:
        for _ in range(1000):
            entries = await self.journal(task_id)
            if key in entries:
                return entries
            await asyncio.sleep(0.01)
        raise AssertionError(f"{key} never journaled")

    async def holder(self, task_id: str) -> str:
        async for event in self.client.watch(task_id):
            if event.state == TaskState.WORKING:
                return str(event.instance_id)
        raise AssertionError("no working event")


@pytest.fixture
async def fleet(
    nats_server: NatsServer, prefix: str, tmp_path: Path, wire: WireServer
) -> AsyncIterator[Fleet]:
    fleet_file = tmp_path / "fleet.toml"
    fleet_file.write_text(
        f"""
[llm.providers.openai]
kind = "openai"
base_url = "{wire.url}/v1"
require_key = false

[[llm.models]]
name = "{MODEL}"
provider = "openai"
model = "{MODEL}"
tier = "small"

[llm.cache]
enabled = false
"""
    )
    env = {
        "NATSFLEET_FLEET_FILE": str(fleet_file),
        "NATSFLEET_TEST_EFFECTS": str(tmp_path / "effects.log"),
        "NATSFLEET_TEST_GATE": str(tmp_path / "gate"),
    }
    async with (
        driver(nats_server.url, prefix, results=False) as d,
        AgentProcs(nats_server.url, prefix, tmp_path / "logs") as procs,
    ):
        await procs.start_supervisor("sup", SUPERVISOR)
        await d.supervisor_active("sup")
        yield Fleet(d, procs, tmp_path, env)


async def test_kill_9_mid_loop_resumes_from_the_journal(fleet: Fleet, wire: WireServer) -> None:
    """Killed inside turn 1's `gate`, after turn 0 (a side effect and a fleet
    skill) and turn 1's other call were journaled: another instance makes only
    the one model call left and re-runs only the unjournaled call, with its key."""
    wire.script(
        MODEL,
        wire.tool_calls(("record", {"step": "a"}), ("shout", {"text": "hi"})),
        wire.tool_calls(("record", {"step": "c"}), ("gate", {})),
        wire.ok("done"),
    )
    first = await fleet.looper("l1")
    task_id = await fleet.client.submit("run", Ask(prompt="plan", skills=["shout"]))
    await fleet.until_journaled(task_id, "0.1.0")
    await fleet.d.wait_for(lambda: any(r[0] == "gate" for r in lines(fleet.effects)) or None)
    await first.kill()  # SIGKILL: no hand-back, no outcome
    fleet.gate.touch()
    await fleet.looper("l2")
    answer = await fleet.client.result(task_id, Answer, timeout_s=30)
    assert answer.text == "done" and answer.instance_id == "l2"
    assert wire.count(MODEL) == 3  # one model call per turn, across both processes
    # What the last attempt made and replayed (a loaded machine may add an attempt
    # between, which then replays more: the counts across attempts are below).
    assert answer.model_calls + answer.replayed_turns == 3 and answer.model_calls <= 1
    effects = lines(fleet.effects)
    ran = sorted(r[1] for r in effects if r[0] in ("record", "shout"))
    assert ran == ["a", "c", "hi"]  # every journaled side effect ran once
    gates = [r for r in effects if r[0] == "gate"]
    # The one call that was running re-ran, always with the same key, knowing it.
    assert len(gates) >= 2 and {g[2] for g in gates} == {f"{task_id}/0/1/1"}
    assert [g[3] for g in gates] == ["False"] + ["True"] * (len(gates) - 1)
    record = await fleet.client.status(task_id)
    outcomes = [h.outcome for h in record.history]
    assert outcomes[0] == "lost" and outcomes[-1] == "completed"


async def test_a_handoff_ends_the_loop_with_the_other_agents_answer(
    fleet: Fleet, wire: WireServer
) -> None:
    wire.script(MODEL, wire.tool_calls(("shout", {"text": "over"})))
    await fleet.looper("l1")
    task_id = await fleet.client.submit("run", Ask(prompt="hand it over", handoff=["shout"]))
    answer = await fleet.client.result(task_id, Answer, timeout_s=30)
    assert answer.text == '{"text":"OVER"}'  # the other skill's answer is the final one
    assert wire.count(MODEL) == 1  # the model is not asked again after a handoff
    (offered,) = [t for t in wire.requests[0].body["tools"] if t["function"]["name"] == "shout"]
    assert offered["function"]["description"].startswith("Hand the task over to agent looper")
    assert "conversation" not in offered["function"]["parameters"]["properties"]
    shouts = [r for r in lines(fleet.effects) if r[0] == "shout"]
    assert [s[1] for s in shouts] == ["over"] and shouts[0][3] == "True"  # it got the conversation
    child = await fleet.client.status(shouts[0][2])
    assert child.parent_id == task_id and child.idempotency_key == f"{task_id}/0/0/0"
    # What `natsfleet watch` prints: the task's stored progress, each tool event in order.
    notes = [
        item.note
        async for item in fleet.client.output(task_id)
        if isinstance(item, Progress) and item.note.startswith("tool ")
    ]
    assert notes == ["tool shout started", "tool shout ok"]


async def test_a_sigstopped_zombie_cannot_write_after_another_finished(
    fleet: Fleet, wire: WireServer
) -> None:
    """The zombie sits in a tool that ignores the Cancel it finds on waking, so it
    does try to journal the tool's result: the server refuses the write."""
    wire.script(MODEL, wire.tool_calls(("stubborn_gate", {})), wire.ok("finished"))
    agents = {i: await fleet.looper(i) for i in ("l1", "l2")}
    task_id = await fleet.client.submit("run", Ask(prompt="wait"))
    holder = await asyncio.wait_for(fleet.holder(task_id), 10)
    await fleet.until_journaled(task_id, "0.0.0.start")
    zombie = agents[holder]
    zombie.signal(signal.SIGSTOP)
    fleet.gate.touch()  # the other instance's re-run passes the gate at once
    answer = await fleet.client.result(task_id, Answer, timeout_s=30)
    assert answer.instance_id != holder and answer.text == "finished"
    entries = await fleet.journal(task_id)
    claim = entries["claim"]
    assert isinstance(claim, Claim) and claim.instance_id == answer.instance_id
    zombie.signal(signal.SIGCONT)
    fenced = f"journal of task {task_id} refused 0.0.0 from attempt 1"
    await fleet.d.wait_for(lambda: fenced in zombie.log() or None, 15)
    after = await fleet.journal(task_id)
    assert after == entries  # nothing the zombie tried was stored
    result = after["0.0.0"]
    assert isinstance(result, ToolResult) and result.token == claim.token
    # Its outcome is refused too (stale), whatever it says.
    dead = await _dead_letter(fleet, "stale")
    assert dead.task_id == task_id and msgspec.json.decode(dead.payload)["instance_id"] == holder
    assert wire.count(MODEL) == 2


async def _dead_letter(fleet: Fleet, reason: str) -> DeadLetter:
    stream = fleet.d.subjects.stream(Stream.DLQ)
    for _ in range(500):
        try:
            msg = await fleet.d.bus.js.get_last_msg(stream, fleet.d.subjects.dlq(reason))
        except Exception:
            await asyncio.sleep(0.02)
            continue
        assert msg.data is not None
        return _DLQ.decode(msg.data)
    raise AssertionError(f"nothing dead-lettered {reason}")
