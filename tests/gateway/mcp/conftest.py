"""A fleet behind MCP gateways: supervisor, agents and gateways as real processes.

Readiness is awaited on messages (Rollcall, Hello) and, for a gateway, on the
line it logs once it listens (with the port it got: `--port 0`).
"""

import asyncio
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from natsfleet.bus import Bus, BusConfig
from natsfleet.process import NatsServer
from tests.procs import AgentProcess
from tests.workflows.conftest import WfFleet

ECHO = "tests.fleet_agents:EchoAgent"
#: The caller name and secret the gateways of these tests accept.
CALLER = "tester"
SECRET = "s3cret-0123456789-abcdef"
KEYS = f"{CALLER}={SECRET}"
_LISTENING = re.compile(r"listening on (http://\S+)")


class Gateway:
    def __init__(self, proc: AgentProcess, url: str) -> None:
        self.proc = proc
        self.url = url


async def until_logged(proc: AgentProcess, pattern: re.Pattern[str], timeout_s: float = 20) -> str:
    """The first match of `pattern` in the process's log (a log line is the only signal)."""
    deadline = time.monotonic() + timeout_s
    while (found := pattern.search(proc.log())) is None:
        assert proc.returncode is None, proc.log()
        assert time.monotonic() < deadline, f"{pattern.pattern!r} never logged:\n{proc.log()}"
        await asyncio.sleep(0.02)
    return found.group(1)


class GatewayFleet(WfFleet):
    async def echo(self, instance: str, spec: str = ECHO) -> AgentProcess:
        return await self._ready(
            instance, lambda: self.procs.start(spec, instance_id=instance, heartbeat_s=0.2)
        )

    async def gateway(
        self, name: str, *args: str, env: dict[str, str] | None = None, url: str | None = None
    ) -> Gateway:
        cmd = [sys.executable, "-m", "natsfleet.cli.main", "gateway", "mcp"]
        cmd += ["--nats", url or self.server.url, "--prefix", self.prefix, "--port", "0"]
        cmd += ["--instance", name, "--refresh-s", "0.2", *args]
        proc = await self.procs.spawn(name, cmd, {"NATSFLEET_GATEWAY_KEYS": KEYS, **(env or {})})
        return Gateway(proc, await until_logged(proc, _LISTENING))


@pytest.fixture
async def gw(nats_server: NatsServer, prefix: str, tmp_path: Path) -> AsyncIterator[GatewayFleet]:
    bus = Bus(BusConfig(url=nats_server.url, prefix=prefix), role="test", instance="t")
    await bus.connect()
    await bus.provision()
    fleet = GatewayFleet(nats_server, prefix, tmp_path, bus)
    await fleet.watch()
    try:
        yield fleet
    finally:
        await fleet.procs.aclose()
        await bus.close()
