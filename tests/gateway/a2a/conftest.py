"""Fixtures for gateway tests: a fleet (supervisor and echo agent as real
processes) and A2A gateway replicas as real `natsfleet gateway a2a` processes."""

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.procs import AgentProcess, AgentProcs, until_agents
from tests.supervisor.conftest import FAST, Fleet, fleet

#: Two callers: each sees only the tasks it started.
KEYS = {"alice": "alice-secret-0123456789", "bob": "bob-secret-0123456789ab"}
#: A workflow that waits for a person's approval, then echoes the approval's input.
GATE = """
name = "gate"

[steps.ask]
approval = true
prompt = "Echo it?"

[steps.say]
skill = "echo"
input = { text = "${steps.ask.output.input.text}" }

[output]
text = "${steps.say.output.text}"
"""
_LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+/)")


@dataclass
class Gateway:
    process: AgentProcess
    url: str


class Gateways:
    """Gateway replicas and the fleet behind them (one supervisor, one echo agent)."""

    def __init__(self, procs: AgentProcs, fleet: Fleet) -> None:
        self.procs = procs
        self.fleet = fleet
        self.server = fleet.server
        self.prefix = fleet.prefix

    async def up(self, *names: str) -> list[Gateway]:
        """The fleet (a supervisor, an echo agent) and gateways `names`, started
        side by side: a gateway needs no fleet to start."""
        fleet_up = asyncio.ensure_future(self._fleet())
        started = await asyncio.gather(*(self.start(name) for name in names))
        await fleet_up
        return list(started)

    async def _fleet(self) -> None:
        workflows = self.fleet.tmp / "workflows"
        workflows.mkdir(exist_ok=True)
        (workflows / "gate.toml").write_text(GATE)
        await asyncio.gather(
            self.fleet.supervisor(workflows=[str(workflows)]),
            self.procs.start("tests.fleet_agents:EchoAgent", instance_id="echo-1", heartbeat_s=0.1),
        )
        await until_agents(self.fleet.client, 1)

    async def start(self, name: str, *args: str) -> Gateway:
        cmd = [sys.executable, "-m", "natsfleet.cli.main", "gateway", "a2a"]
        cmd += ["--nats", self.server.url, "--prefix", self.prefix, "--port", "0", "--id", name]
        keys = ",".join(f"{n}={s}" for n, s in KEYS.items())
        process = await self.procs.spawn(
            name, [*cmd, *args], env={"NATSFLEET_GATEWAY_KEYS": keys, "NATSFLEET_LOG": "INFO"}
        )
        deadline = asyncio.get_running_loop().time() + 15
        while (found := _LISTENING.search(process.log())) is None:
            assert process.returncode is None, process.log()
            assert asyncio.get_running_loop().time() < deadline, process.log()
            await asyncio.sleep(0.05)  # the only sign of readiness is this log line
        return Gateway(process, found.group(1))


@pytest.fixture
async def gateways(fleet: Fleet, tmp_path: Path) -> AsyncIterator[Gateways]:
    async with AgentProcs(fleet.server.url, fleet.prefix, tmp_path / "procs") as procs:
        yield Gateways(procs, fleet)


__all__ = ["FAST", "KEYS", "Gateway", "Gateways", "fleet"]
