"""The MCP gateway run by `natsfleet up` behind the generated `nats-auth` config:
its own NKey user (`gateway`) can do what a gateway does, no more; `up` stops it
first."""

import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from natsfleet.deploy import load_fleet
from natsfleet.deploy.targets import generate, write_files
from natsfleet.process import NatsServer
from natsfleet.protocols import Bucket, idempotency_scope
from tests.deploy.helpers import FAST_SUPERVISOR, free_port
from tests.gateway.mcp.conftest import until_logged
from tests.procs import AgentProcs
from tests.security.conftest import AGENT_ENV, AuthFleet, Probe, wait_for_instances_as_client

FLEET = """
[nats]
url = "nats://127.0.0.1:{port}"
prefix = "{prefix}"
store_dir = "js"
credentials_dir = "auth/creds"
{supervisor}
[[agents]]
agent = "tests.fleet_agents:EchoAgent"
name = "echo"
instances = 1
{env}

[[gateways]]
port = {gateway_port}
keys_file = "keys.txt"
"""
SECRET = "gateway-test-secret-0123456789"


@pytest.fixture
async def gateway_fleet(tmp_path: Path, prefix: str) -> AsyncIterator[tuple[AuthFleet, str]]:
    """`natsfleet up` of a fleet with a gateway, on a server running the generated auth config."""
    port, gateway_port = free_port(), free_port()
    fleet_path = tmp_path / "fleet.toml"
    fleet_path.write_text(
        FLEET.format(
            port=port,
            prefix=prefix,
            supervisor=FAST_SUPERVISOR,
            env=AGENT_ENV,
            gateway_port=gateway_port,
        )
    )
    (tmp_path / "keys.txt").write_text(f"# name=secret\nops={SECRET}\n")
    write_files(generate("nats-auth", load_fleet(fleet_path)), tmp_path / "auth")
    server = NatsServer(port=port, jetstream=False, config_file=tmp_path / "auth" / "nats.conf")
    await server.start()
    procs = AgentProcs(server.url, prefix, tmp_path / "logs")
    fleet = AuthFleet(server, prefix, tmp_path / "auth" / "creds", tmp_path / "x.log", procs)
    up_cmd = [sys.executable, "-m", "natsfleet.cli.main", "up", str(fleet_path)]
    up = await procs.spawn("up", [*up_cmd, "--state-dir", str(tmp_path / "state")])
    try:
        url = await until_logged(up, re.compile(r"gateway-mcp-1 .*listening on (http://\S+)"))
        await wait_for_instances_as_client(fleet, "echo")
        yield fleet, url
    finally:
        for bus in fleet.buses:
            await bus.close()
        await procs.aclose()
        await server.stop()


async def test_the_gateway_runs_as_its_own_user_and_only_does_a_gateways_work(
    gateway_fleet: tuple[AuthFleet, str],
) -> None:
    fleet, url = gateway_fleet
    headers = {"X-API-Key": SECRET}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30)) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            assert "echo" in names
            result = await client.call_tool(
                "echo", {"text": "as gateway"}, meta={"io.natsfleet/idempotency-key": "g-1"}
            )
            assert not result.is_error, result
    log = fleet.procs.procs[-1].log()  # `natsfleet up`'s, every child's lines prefixed
    assert "mcp call echo by ops: task" in log and "Permissions Violation" not in log

    s = fleet.subjects
    forbidden = [
        s.control("dlq"),  # the DLQ is the operator's
        s.control("approve"),
        s.control("list"),
        s.hello("echo", "forged"),  # never an agent
        f"$KV.{s.bucket(Bucket.STATE)}.forged",  # never task state
        f"$KV.{s.bucket(Bucket.IDEM)}.{idempotency_scope('cli')}.forged",  # not the CLI's keys
    ]
    probe = await Probe.connect(fleet, "gateway", "gateway")
    try:
        for subject in forbidden:
            await probe.nc.publish(subject, b"{}")
            assert "publish" in (await probe.violation()).lower(), subject
    finally:
        await probe.nc.close()

    # SIGTERM to `up`: the gateway stops first (no new calls), then the agent, the supervisor.
    [up] = fleet.procs.procs
    up.terminate()
    assert await up.wait(30) == 0, up.log()
    log = up.log()
    assert log.index("stopping 1 gateway") < log.index("stopping 1 agent"), log
    assert "Traceback" not in log, log
