"""End to end with the real supervisor (`natsfleet supervisor`) and agents as
processes (`natsfleet agent run`): sub-tasks, silence, hand-back, listing and
hot-adding an agent to a running fleet."""

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from natsfleet.client import FleetClient
from natsfleet.process import NatsServer
from natsfleet.protocols import TaskState
from tests.agents.driver import Driver, driver
from tests.fleet_agents import FannedIn, Slept
from tests.procs import REPO_ROOT, AgentProcs, agent_env

ECHO = "tests.fleet_agents:EchoAgent"
PARENT = "tests.fleet_agents:ParentAgent"
SUMMARIZER = "examples.summarizer.agent:Summarizer"

HB_TIMEOUT_S = 0.5
SUPERVISOR = {
    "timeouts": {
        "schedule_to_start_s": 30.0,
        "start_to_close_s": 30.0,
        "heartbeat_timeout_s": HB_TIMEOUT_S,
        "schedule_to_close_s": 60.0,
    },
    "retry": {"initial_interval_s": 0.05, "maximum_interval_s": 0.5, "maximum_attempts": 3},
    "assign_timeout_s": 0.5,
    "lease_ttl_s": 1.5,
    "ack_wait_s": 1.0,
    "registry_warmup_s": 0.3,
    "sweep_interval_s": 0.05,
}


class Fleet:
    def __init__(self, d: Driver, procs: AgentProcs) -> None:
        self.d = d
        self.procs = procs
        self.client = FleetClient(d.bus)

    async def agent(self, spec: str, instance_id: str, **options: Any) -> Any:
        proc = await self.procs.start(spec, instance_id=instance_id, **options)
        await self.d.hello(instance_id, timeout_s=15)
        return proc

    async def holder(self, task_id: str) -> str:
        """The instance the task is `working` on."""
        async for event in self.client.watch(task_id):
            if event.state == TaskState.WORKING:
                return str(event.instance_id)
        raise AssertionError("no working event")


@pytest.fixture
async def fleet(nats_server: NatsServer, prefix: str, tmp_path: Path) -> AsyncIterator[Fleet]:
    async with (
        driver(nats_server.url, prefix, results=False) as d,
        AgentProcs(nats_server.url, prefix, tmp_path / "logs") as procs,
    ):
        await procs.start_supervisor("sup", SUPERVISOR)
        await d.supervisor_active("sup")
        yield Fleet(d, procs)


async def test_call_through_the_supervisor(fleet: Fleet) -> None:
    await fleet.agent(ECHO, "e1")
    await fleet.agent(PARENT, "p1")
    task_id = await fleet.client.submit("fan_out", {"texts": ["x", "y", "z"]})
    result = await fleet.client.result(task_id, FannedIn, timeout_s=20)
    assert result == FannedIn(texts=["x", "y", "z"])


async def test_silent_instance_is_noticed_and_its_task_moves(fleet: Fleet) -> None:
    agents = {i: await fleet.agent(ECHO, i) for i in ("e1", "e2")}
    task_id = await fleet.client.submit("sleep", {"ms": 800, "steps": 4})
    holder = await asyncio.wait_for(fleet.holder(task_id), 10)
    agents[holder].signal(signal.SIGSTOP)
    event = await fleet.client.wait(task_id, timeout_s=15)
    assert event.state == TaskState.COMPLETED and event.instance_id != holder
    listed = {a.instance_id: a for a in await fleet.client.agents(timeout_s=5)}
    assert not listed[holder].alive and listed[event.instance_id or ""].alive
    record = await fleet.client.status(task_id)
    assert record.history[0].outcome == "lost"


async def test_sigterm_hand_back_completes_on_another_instance(fleet: Fleet) -> None:
    first = await fleet.agent(ECHO, "e1", grace_s=0.2)
    task_id = await fleet.client.submit("sleep", {"ms": 1_500, "steps": 3})
    assert await asyncio.wait_for(fleet.holder(task_id), 10) == "e1"
    await fleet.agent(ECHO, "e2")
    first.terminate()
    output = await fleet.client.result(task_id, Slept, timeout_s=15)
    assert output.instance_id == "e2"
    assert await first.wait(5) == 0
    record = await fleet.client.status(task_id)
    assert [h.outcome for h in record.history] == ["handed_back", "completed"]
    assert record.attempts == 1  # a hand-back is not an attempt


async def test_agents_listing_and_hot_added_skill(fleet: Fleet) -> None:
    await fleet.agent(ECHO, "e1")
    # No instance offers `summarize` yet: with queue=True the task waits for one.
    text = "NATS moves messages. JetStream stores them. Agents are processes. Agents scale out."
    task_id = await fleet.client.submit("summarize", {"text": text, "max_sentences": 1}, queue=True)
    await fleet.agent(SUMMARIZER, "sum-1")
    event = await fleet.client.wait(task_id, timeout_s=15)
    assert event.state == TaskState.COMPLETED and event.instance_id == "sum-1"
    where = ("--nats", fleet.procs.url, "--prefix", fleet.procs.prefix)
    code, out = await _cli("agents", "--json", *where)
    assert code == 0, out
    listed = {a["instance_id"]: a for a in json.loads(out)}
    assert set(listed) == {"e1", "sum-1"}
    assert [s["name"] for s in listed["sum-1"]["skills"]] == ["summarize"]
    code, out = await _cli("agents", *where)
    assert code == 0 and "sum-1" in out and "summarize" in out


async def _cli(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "natsfleet.cli.main",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**agent_env(), "COLUMNS": "200"},
        cwd=REPO_ROOT,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode is not None
    assert not err, err.decode()
    return proc.returncode, out.decode()
