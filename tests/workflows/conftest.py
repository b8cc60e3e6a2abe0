"""Fixtures for workflow tests: a supervisor with a workflows folder, agents as processes.

Readiness is awaited on messages, never on sleeps: a supervisor announces each
term with a Rollcall, an agent instance with its Hello. Every process is
SIGKILLed and reaped when the test ends.
"""

import asyncio
import json
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from natsfleet.bus import Bus, BusConfig
from natsfleet.client import FleetClient
from natsfleet.process import NatsServer
from natsfleet.protocols import (
    AgentAnnouncement,
    Codec,
    ErrorCode,
    Hello,
    RemoteError,
    Rollcall,
    TaskRecord,
    TaskState,
    WorkflowStatus,
)
from tests.procs import REPO_ROOT, AgentProcess, AgentProcs

STEPS_AGENT = "tests.workflow_agents:StepsAgent"
MINI_AGENT = REPO_ROOT / "tests" / "supervisor" / "mini_agent.py"

#: Short timeouts keep the tests fast; bounds are asserted with tolerances.
FAST: dict[str, Any] = {
    "timeouts": {
        "schedule_to_start_s": 30.0,
        "start_to_close_s": 30.0,
        "heartbeat_timeout_s": 0.5,
        "schedule_to_close_s": 120.0,
    },
    "retry": {"initial_interval_s": 0.05, "maximum_interval_s": 0.5, "maximum_attempts": 3},
    "assign_timeout_s": 0.5,
    "lease_ttl_s": 1.5,
    "ack_wait_s": 1.0,
    "registry_warmup_s": 0.3,
    "sweep_interval_s": 0.05,
}


class WfFleet:
    def __init__(self, server: NatsServer, prefix: str, tmp: Path, bus: Bus) -> None:
        self.server = server
        self.prefix = prefix
        self.tmp = tmp
        self.bus = bus
        self.client = FleetClient(bus)
        self.procs = AgentProcs(server.url, prefix, tmp / "logs")
        self.workflows = tmp / "workflows"
        self.workflows.mkdir()
        self.hellos: dict[str, asyncio.Future[Hello]] = {}
        self.terms: dict[str, asyncio.Queue[Rollcall]] = {}

    async def watch(self) -> None:
        async def on_announcement(message: AgentAnnouncement, _: object) -> None:
            future = self.hellos.get(getattr(message, "instance_id", ""))
            if isinstance(message, Hello) and future is not None and not future.done():
                future.set_result(message)

        async def on_rollcall(message: Rollcall, _: object) -> None:
            self.terms.setdefault(message.supervisor_id, asyncio.Queue()).put_nowait(message)

        codec = Codec[AgentAnnouncement](AgentAnnouncement)
        for subject in self.bus.subjects.announcement_subjects():
            await self.bus.subscribe(subject, codec, on_announcement)
        await self.bus.subscribe(
            self.bus.subjects.rollcall(), Codec[Rollcall](Rollcall), on_rollcall
        )

    def workflow(self, name: str, toml: str) -> None:
        (self.workflows / f"{name}.toml").write_text(textwrap.dedent(toml))

    async def supervisor(self, name: str = "sup-a", **overrides: Any) -> AgentProcess:
        cfg = {**FAST, **overrides, "supervisor_id": name}
        cmd = [sys.executable, "-m", "natsfleet.cli.main", "supervisor", "--nats", self.server.url]
        cmd += ["--prefix", self.prefix, "--config-json", json.dumps(cfg)]
        cmd += ["--workflows", str(self.workflows), "-v"]
        proc = await self.procs.spawn(name, cmd)
        queue = self.terms.setdefault(name, asyncio.Queue())
        await asyncio.wait_for(queue.get(), 20)
        return proc

    async def _ready(self, instance: str, start: Callable[[], Any]) -> AgentProcess:
        future: asyncio.Future[Hello] = asyncio.get_running_loop().create_future()
        self.hellos[instance] = future
        proc: AgentProcess = await start()
        await asyncio.wait_for(future, 20)
        return proc

    async def agent(self, instance: str, capacity: int = 4) -> AgentProcess:
        return await self._ready(
            instance, lambda: self.procs.start(STEPS_AGENT, instance_id=instance, capacity=capacity)
        )

    async def mini(self, instance: str, skills: str, capacity: int = 4) -> AgentProcess:
        cmd = [sys.executable, str(MINI_AGENT), "--url", self.server.url, "--prefix", self.prefix]
        cmd += ["--instance", instance, "--skills", skills, "--capacity", str(capacity)]
        cmd += ["--hb", "0.05"]
        return await self._ready(instance, lambda: self.procs.spawn(instance, cmd))

    async def steps(self, run_id: str) -> WorkflowStatus:
        reply = await self.client.status_reply(run_id)
        assert reply.workflow is not None, reply
        return reply.workflow

    async def until(
        self, run_id: str, check: Callable[[TaskRecord, WorkflowStatus], bool], timeout_s: float
    ) -> WorkflowStatus:
        """Poll the run's status until `check` holds (a deadline, never a fixed sleep)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        reply = None
        while True:
            try:
                reply = await self.client.status_reply(run_id)
            except RemoteError as exc:  # not admitted yet
                if exc.code != ErrorCode.UNKNOWN_TASK:
                    raise
            if reply is not None and reply.workflow is not None:
                if check(reply.task, reply.workflow):
                    return reply.workflow
            if loop.time() > end:
                raise AssertionError(f"run {run_id} never got there: {reply}")
            await asyncio.sleep(0.05)


def step_state(status: WorkflowStatus, name: str) -> str:
    return next(s.phase for s in status.steps if s.name == name)


def task_working(status: WorkflowStatus, name: str) -> str | None:
    """The id of a task of step `name` that an instance is working on."""
    for step in status.steps:
        for task in step.tasks:
            if step.name == name and task.state == TaskState.WORKING:
                return task.task_id
    return None


@pytest.fixture
async def wf(nats_server: NatsServer, prefix: str, tmp_path: Path) -> AsyncIterator[WfFleet]:
    bus = Bus(BusConfig(url=nats_server.url, prefix=prefix), role="test", instance="t")
    await bus.connect()
    await bus.provision()
    fleet = WfFleet(nats_server, prefix, tmp_path, bus)
    await fleet.watch()
    try:
        yield fleet
    finally:
        await fleet.procs.aclose()
        await bus.close()
