"""Approval of a tool call with the real supervisor and agents as processes: the
pause holds no slot and survives a supervisor, an agent and a server restart; approval
runs the tool once; a refusal reaches the model as the tool's result."""

import asyncio
import os
import sys
from pathlib import Path

import pytest

from natsfleet.agents.loop import ToolResult
from natsfleet.agents.loop.records import ApprovalPending, ApprovalRecord
from natsfleet.process import NatsServer
from natsfleet.protocols import TaskState
from tests.llm.wire import WireServer
from tests.loop.conftest import MODEL, lines
from tests.loop.test_crash import SUPERVISOR, Fleet
from tests.loop.test_crash import fleet as fleet  # the fixture, shared
from tests.loop.test_loop import tool_messages
from tests.loop_agents import Answer, Ask

pytestmark = pytest.mark.asyncio
NATSFLEET = str(Path(sys.executable).parent / "natsfleet")


async def _cli(*args: str) -> str:
    env = {**os.environ, "COLUMNS": "200"}
    proc = await asyncio.create_subprocess_exec(
        NATSFLEET, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, out
    return out.decode()


async def _until_waiting(processes: Fleet, task_id: str) -> str:
    async for event in processes.client.watch(task_id):
        if event.state == TaskState.INPUT_REQUIRED:
            return event.detail
    raise AssertionError("never input_required")


async def test_an_approval_pause_survives_restarts_and_the_tool_runs_once(
    fleet: Fleet,
    wire: WireServer,
    nats_server: NatsServer,
) -> None:
    wire.script(
        MODEL,
        wire.tool_calls(("record", {"step": "a"}), ("pay", {"amount": 42})),
        wire.ok("paid it"),
    )
    first = await fleet.looper("l1")
    task_id = await fleet.client.submit("run", Ask(prompt="pay", approval=True))
    detail = await asyncio.wait_for(_until_waiting(fleet, task_id), 20)
    assert detail == 'approve tool pay {"amount":42}'  # what `natsfleet watch` prints
    record = await fleet.client.status(task_id)
    assert record.state == TaskState.INPUT_REQUIRED and record.token is None
    assert record.pending_call is not None and record.pending_call.tool == "pay"
    assert record.pending_call.key == "0.0.1" and record.attempts == 0  # a pause is no attempt
    # No slot is held while it waits (the instance's next heartbeat says so).
    for _ in range(200):
        (info,) = await fleet.client.agents("looper")
        if info.load == 0:
            break
        await asyncio.sleep(0.02)
    assert info.load == 0
    assert [r[0] for r in lines(fleet.effects)] == ["record"]  # the turn's other call ran
    entries = await fleet.journal(task_id)
    assert isinstance(entries["0.0.1.pending"], ApprovalPending)
    assert "0.0.1.start" not in entries

    # The supervisor, the agent and the NATS server all go down; the pause is in
    # STATE and the journal (JetStream, on disk).
    sup = next(p for p in fleet.procs.procs if p.instance_id == "sup")
    await sup.kill()
    await first.kill()
    await nats_server.restart()
    await fleet.procs.start_supervisor("sup2", SUPERVISOR)
    await fleet.d.supervisor_active("sup2")
    await fleet.looper("l2")
    again = await fleet.client.status(task_id)
    assert again.state == TaskState.INPUT_REQUIRED and again.pending_call == record.pending_call

    ack = await fleet.client.approve(task_id, note="fine")
    assert ack.state == TaskState.QUEUED and ack.detail == "tool pay approved: fine"
    answer = await fleet.client.result(task_id, Answer, timeout_s=30)
    assert answer.text == "paid it" and answer.instance_id == "l2"
    effects = lines(fleet.effects)
    pays = [r for r in effects if r[0] == "pay"]
    assert len(pays) == 1 and pays[0][1] == "42"  # ran once, after the approval
    assert pays[0][3].startswith("approval:0.0.1@")  # the approval's id reached the tool
    assert [r[0] for r in effects].count("record") == 1  # replayed, not run again
    assert wire.count(MODEL) == 2  # the first turn was replayed from the journal
    assert "paid 42" in tool_messages(wire.requests[1].body)
    entries = await fleet.journal(task_id)
    decision = entries["0.0.1.approval"]
    assert isinstance(decision, ApprovalRecord) and decision.approved and decision.note == "fine"
    done = await fleet.client.status(task_id)
    assert [h.outcome for h in done.history] == ["awaiting_approval", "completed"]
    assert (await fleet.client.approve(task_id)).detail == "already approved (nothing waits)"


async def test_a_refusal_reaches_the_model_as_the_tools_result(
    fleet: Fleet,
    wire: WireServer,
    nats_server: NatsServer,
    prefix: str,
) -> None:
    wire.script(MODEL, wire.tool_calls(("pay", {"amount": 7})), wire.ok("not paid"))
    await fleet.looper("l1")
    task_id = await fleet.client.submit("run", Ask(prompt="pay", approval=True))
    await asyncio.wait_for(_until_waiting(fleet, task_id), 20)
    # `natsfleet status` shows the pending call and how to decide; `approve --reject` refuses.
    nats = ("--nats", nats_server.url, "--prefix", prefix)
    status = await _cli("status", task_id, *nats)
    assert "approval of tool pay" in status and '{"amount":7}' in status
    assert f"natsfleet approve {task_id} [--reject --note WHY]" in status
    refused = await _cli("approve", task_id, "--reject", "--note", "too expensive", *nats)
    assert "queued: tool pay refused: too expensive" in refused
    answer = await fleet.client.result(task_id, Answer, timeout_s=30)
    assert answer.text == "not paid"
    assert not [r for r in lines(fleet.effects) if r[0] == "pay"]  # it never ran
    (seen,) = tool_messages(wire.requests[1].body)
    assert seen == '{"error":"refused by a person: too expensive"}'
    result = (await fleet.journal(task_id))["0.0.0"]
    assert isinstance(result, ToolResult) and result.status == "refused"
