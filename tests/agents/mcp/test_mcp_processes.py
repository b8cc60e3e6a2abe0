"""An agent process uses the tools of real MCP servers (tests/agents/mcp/server_app.py,
the `mcp` SDK's server) over stdio and streamable HTTP, declared in the fleet
file as `natsfleet up` gives them: results, errors, a hung tool, bad
arguments, both servers killed with SIGKILL mid-use, and SIGTERM leaving no
server process behind. The model is the wire-format server in this process."""

import asyncio
import contextlib
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from natsfleet.agents.loop import ToolResult
from natsfleet.agents.loop.journal import Journal
from natsfleet.process import NatsServer
from natsfleet.protocols import Bucket, Result
from tests.agents.driver import Driver, driver
from tests.llm.wire import WireServer
from tests.mcp_agents import Used
from tests.procs import AgentProcess, AgentProcs

APP = str(Path(__file__).with_name("server_app.py"))
MODEL = "mcp-model"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Rig:
    def __init__(self, d: Driver, procs: AgentProcs, tmp: Path, port: int, env: dict[str, str]):
        self.d = d
        self.procs = procs
        self.tmp = tmp
        self.port = port
        self.env = env
        self.events = tmp / "events.log"
        self.pids = tmp / "pids.log"
        self.gates = tmp / "gates"
        self.gates.mkdir()
        self.http: AgentProcess | None = None

    async def start_http(self) -> None:
        self.http = await self.procs.spawn(
            "mcp-http",
            [sys.executable, APP, "http", str(self.port)],
            {"MCP_TEST_EVENTS": str(self.events)},
        )
        for _ in range(1000):
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the HTTP MCP server never listened")

    def lines(self, path: Path) -> list[str]:
        return path.read_text().splitlines() if path.exists() else []

    async def event(self, line: str) -> None:
        """Waits until `line` is noted."""
        await self.d.wait_for(lambda: line in self.lines(self.events) or None, timeout_s=20)

    def open_gate(self, name: str) -> None:
        (self.gates / name).touch()


def _fleet_file(wire: WireServer, tmp: Path, port: int) -> str:
    stdio_env = {
        "MCP_TEST_PIDS": str(tmp / "pids.log"),
        "MCP_TEST_EVENTS": str(tmp / "events.log"),
        "MCP_TEST_CHILD": "1",
    }
    return f"""
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

[[agents]]
agent = "tests.mcp_agents:MCPAgent"
name = "mcpuser"

[[agents.mcp_servers]]
name = "local"
transport = "stdio"
command = {json.dumps(sys.executable)}
args = [{json.dumps(APP)}, "stdio"]
env = {{ {", ".join(f"{k} = {json.dumps(v)}" for k, v in stdio_env.items())} }}
tool_prefix = "s_"
call_timeout_s = 20
backoff_initial_s = 0.05

[[agents.mcp_servers]]
name = "web"
transport = "http"
url = "http://127.0.0.1:{port}/mcp"
headers = {{ X-Test = "${{MCP_TEST_HEADER}}" }}
tool_prefix = "h_"
call_timeout_s = 2
backoff_initial_s = 0.05
"""


@pytest.fixture
async def wire() -> AsyncIterator[WireServer]:
    server = await WireServer().start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def rig(
    nats_server: NatsServer, prefix: str, tmp_path: Path, wire: WireServer
) -> AsyncIterator[Rig]:
    port = _free_port()
    fleet_file = tmp_path / "fleet.toml"
    fleet_file.write_text(_fleet_file(wire, tmp_path, port))
    env = {
        "NATSFLEET_FLEET_FILE": str(fleet_file),
        "NATSFLEET_AGENT_LABEL": "mcpuser",
        "MCP_TEST_EVENTS": str(tmp_path / "events.log"),
        "MCP_TEST_GATES": str(tmp_path / "gates"),
        "MCP_TEST_HEADER": "from-the-environment",
    }
    async with (
        driver(nats_server.url, prefix) as d,
        AgentProcs(nats_server.url, prefix, tmp_path / "logs") as procs,
    ):
        yield Rig(d, procs, tmp_path, port, env)


def _tool_results(wire: WireServer) -> list[str]:
    """What the model saw as tool results, in order (the last request holds them all)."""
    messages: list[dict[str, Any]] = wire.requests[-1].body["messages"]
    return [m["content"] for m in messages if m["role"] == "tool"]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended


async def test_an_agent_uses_mcp_servers_over_stdio_and_http_and_survives_their_death(
    rig: Rig, wire: WireServer
) -> None:
    wire.script(
        MODEL,
        wire.tool_call("s_echo", {"text": "one"}),
        wire.tool_call("s_sleep", {"seconds": 60}),  # killed with SIGKILL meanwhile
        wire.tool_call("s_echo", {"text": "two"}),
        wire.tool_call("s_add", {"a": "x"}),
        wire.tool_call("s_fail", {"reason": "on purpose"}),
        wire.tool_call("h_echo", {"text": "web"}),
        wire.tool_call("h_sleep", {"seconds": 60}),  # past its call_timeout_s (2 s)
        wire.tool_call("h_add", {"a": 2, "b": 3}),
        wire.tool_call("gate", {"name": "g1"}),  # the HTTP server is killed meanwhile
        wire.tool_call("h_echo", {"text": "dead"}),
        wire.tool_call("gate", {"name": "g2"}),  # ... and started again
        wire.tool_call("h_echo", {"text": "back"}),
        wire.ok("done"),
    )
    agent, _ = await asyncio.gather(
        rig.procs.start("tests.mcp_agents:MCPAgent", instance_id="mcp-1", env=rig.env),
        rig.start_http(),
    )
    await rig.d.hello("mcp-1", timeout_s=15)
    assign, _ = await rig.d.assign("mcpuser", "mcp-1", "use", {"prompt": "use the tools"})

    # The stdio server, killed in the middle of its `sleep`.
    first_pid = await _first_server(rig)
    await rig.event(f"sleep {first_pid}")
    os.kill(first_pid, 9)
    # The HTTP server, killed between two calls, then started again.
    await rig.event("gate g1")
    assert rig.http is not None
    await rig.http.kill()
    rig.open_gate("g1")
    await rig.event("gate g2")
    await rig.start_http()
    rig.open_gate("g2")

    outcome = await rig.d.outcome(assign.token, timeout_s=30)
    assert isinstance(outcome, Result), outcome
    used = msgspec.json.decode(outcome.output, type=Used)
    assert used.text == "done"
    assert {"s_echo", "s_sleep", "s_add", "s_fail", "h_echo", "h_sleep", "h_add"} <= set(used.tools)

    seen = _tool_results(wire)
    assert len(seen) == 12, seen
    assert seen[0] == f"echo: one (pid {first_pid})"
    assert seen[1] == _error(
        "MCPServerUnavailableError: MCP server 'local' unavailable: "
        "the connection closed during sleep"
    )
    second_pid = int(rig.lines(rig.pids)[1].split()[0])
    assert second_pid != first_pid
    assert seen[2] == f"echo: two (pid {second_pid})"  # started again by the next call
    assert seen[3].startswith('{"error":"arguments do not fit the schema: a: \'x\' is not of type')
    assert "b' is a required property" in seen[3]
    assert seen[4] == _error(
        "MCPToolError: fail on MCP server 'local': Error executing tool fail: "
        "failed on purpose: on purpose"
    )
    assert seen[5].startswith("echo: web (pid ")
    assert seen[6] == _error("no result within 2.0 s")
    assert json.loads(seen[7]) == {"sum": 5}  # structured content
    assert seen[8] == "open"
    assert json.loads(seen[9])["error"].startswith("MCPServerUnavailableError: MCP server 'web'")
    assert seen[10] == "open"
    assert seen[11].startswith("echo: back (pid ") and seen[11] != seen[5].replace("web", "back")
    # Each MCP call went through the loop's journal like any tool's (a later
    # attempt would replay these results, not call the servers again).
    journal = Journal(
        rig.d.bus.js,
        bucket=rig.d.subjects.bucket(Bucket.JOURNAL),
        task_id=assign.task_id,
        token="reader",
        attempt=0,
        instance_id="test",
    )
    await journal.load()
    results = [journal.entries[f"0.{turn}.0"] for turn in range(12)]
    assert all(isinstance(r, ToolResult) for r in results)
    assert [r.status for r in results if isinstance(r, ToolResult)] == [
        "ok", "error", "ok", "bad_arguments", "error",
        "ok", "timeout", "ok", "ok", "error", "ok", "ok",
    ]  # fmt: skip

    # SIGTERM: the agent drains, closes its sessions and stops its stdio server
    # and the child that server started (its process group): nothing is left.
    agent.terminate()
    assert await agent.wait(15) == 0
    pids = [int(p) for line in rig.lines(rig.pids) for p in line.split()]
    assert len(pids) == 4  # two stdio servers, each with a child
    await rig.d.wait_for(lambda: not any(_alive(p) for p in pids) or None, timeout_s=5)
    assert "MCP servers stopped: local, web" in agent.log()


async def _first_server(rig: Rig) -> int:
    line: str = await rig.d.wait_for(lambda: (rig.lines(rig.pids) or [None])[0], timeout_s=20)
    return int(line.split()[0])


def _error(text: str) -> str:
    return json.dumps({"error": text}, separators=(",", ":"))
