"""One MCP server's connection, in this process: a server that cannot start or
be reached, and one that hangs as a whole (tests/agents/mcp/server_app.py)."""

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import pytest

from natsfleet.agents.errors import describe_exception
from natsfleet.agents.loop.tools import ToolContext
from natsfleet.agents.mcp import MCPConfigError, MCPServer, MCPServers, MCPServerUnavailableError
from tests.deploy.helpers import alive

APP = str(Path(__file__).with_name("server_app.py"))


async def test_a_server_that_cannot_start_or_be_reached_is_a_typed_error() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    servers = MCPServers(
        [
            MCPServer.stdio("gone", "/nonexistent/mcp-server"),
            MCPServer.http("closed", f"http://127.0.0.1:{port}/mcp", connect_timeout_s=5),
        ]
    )
    async with servers:
        with pytest.raises(MCPServerUnavailableError, match="'gone' unavailable: cannot start"):
            await servers.tools("gone")
        with pytest.raises(MCPServerUnavailableError, match="'closed' unavailable: cannot connect"):
            await servers.tools("closed")
        # Tried again after the backoff, failing the same way (and no faster).
        with pytest.raises(MCPServerUnavailableError, match="cannot start"):
            await servers.tools("gone")
        assert servers.connection("gone").starts == 2
    # A skill failing with it is retried; a wrong declaration is not.
    assert describe_exception(MCPServerUnavailableError("s", "down"))[2] is True
    assert describe_exception(MCPConfigError("s", "bad"))[2] is False


async def test_a_hung_server_is_found_stopped_and_started_again(tmp_path: Path) -> None:
    """A call cut by its timeout makes the client ask the server for its tools; a
    server that does not answer (SIGSTOPped: hung as a whole) is killed and the
    next call starts a new one."""
    pids = tmp_path / "pids.log"
    server = MCPServer.stdio(
        "hangs", sys.executable, [APP, "stdio"], env={"MCP_TEST_PIDS": str(pids)},
        call_timeout_s=0.5, connect_timeout_s=30,
    )  # fmt: skip
    call = ToolContext(key="k", task_id="t", attempt=1, token="tok", name="echo")
    async with MCPServers([server]) as servers:
        (echo,) = await servers.tools(names=["echo"])
        first = int(pids.read_text().split()[0])
        os.kill(first, signal.SIGSTOP)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(echo.timeout_s):  # as the loop bounds a call
                await echo.run({"text": "lost"}, call)
        async with asyncio.timeout(10):
            while alive(first):
                await asyncio.sleep(0.02)
        again = await echo.run({"text": "again"}, call)
        second = int(pids.read_text().split()[1])
        assert again == f"echo: again (pid {second})" and second != first
