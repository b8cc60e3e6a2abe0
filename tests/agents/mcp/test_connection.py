"""One MCP server's connection, in this process: a server that cannot start or
be reached, and one that hangs as a whole (tests/agents/mcp/server_app.py)."""

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any, cast

import pytest

from natsfleet.agents.errors import describe_exception
from natsfleet.agents.loop import DuplicateToolError, Loop
from natsfleet.agents.loop.tools import ToolContext
from natsfleet.agents.mcp import (
    MCPConfigError,
    MCPMessageTooLargeError,
    MCPServer,
    MCPServers,
    MCPServerUnavailableError,
    MCPToolError,
)
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


async def test_a_message_over_the_limit_stops_the_server_and_the_next_call_works(
    tmp_path: Path,
) -> None:
    """A result longer than `max_message_bytes` is not read whole: the server is
    killed, the call is a typed error, and the next call starts it again."""
    pids = tmp_path / "pids.log"
    server = MCPServer.stdio(
        "big", sys.executable, [APP, "stdio"],
        env={"MCP_TEST_PIDS": str(pids), "MCP_TEST_HOSTILE": "1"},
        max_message_bytes=64 * 1024,
    )  # fmt: skip
    call = ToolContext(key="k", task_id="t", attempt=1, token="tok", name="big")
    async with MCPServers([server]) as servers:
        (big,) = await servers.tools(names=["big"])
        assert await big.run({"n_bytes": 1000}, call) == "y" * 1000
        first = int(pids.read_text().split()[0])
        started = asyncio.get_running_loop().time()
        with pytest.raises(MCPMessageTooLargeError, match="over 65536 bytes"):
            await big.run({"n_bytes": 20 * 1024 * 1024}, call)
        assert asyncio.get_running_loop().time() - started < 5
        assert not alive(first)  # killed before the error was raised
        await asyncio.sleep(server.backoff_initial_s)
        assert await big.run({"n_bytes": 10}, call) == "y" * 10
        assert servers.connection("big").starts == 2


async def test_tools_with_one_name_keep_the_first_and_a_loop_refuses_a_clash() -> None:
    server = MCPServer.stdio("dup", sys.executable, [APP, "stdio"], env={"MCP_TEST_HOSTILE": "1"})
    async with MCPServers([server]) as servers:
        tools = await servers.tools(names=["get.file", "get_file", "echo"])
        assert sorted(t.remote_name for t in tools) == ["echo", "get.file"]
        # Another tool with an MCP tool's name: the loop refuses, naming it, for good.
        echo = next(t for t in tools if t.remote_name == "echo")
        with pytest.raises(DuplicateToolError, match="'echo'") as caught:
            Loop(
                cast(Any, None), cast(Any, None), 0, tools=[echo, echo], system="",
                max_turns=1, max_parallel_tools=1, max_tokens=100, tier=None, model=None,
            )  # fmt: skip
    error_type, detail, retryable = describe_exception(caught.value)
    assert (error_type, retryable) == ("DuplicateToolError", False) and "'echo'" in detail


async def test_a_server_that_never_answers_initialize_fails_at_connect_timeout(
    tmp_path: Path,
) -> None:
    pids = tmp_path / "pids.log"
    script = f"import os, time; open({str(pids)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    server = MCPServer.stdio(
        "silent", sys.executable, ["-c", script], connect_timeout_s=1, stop_grace_s=2
    )
    started = asyncio.get_running_loop().time()
    async with MCPServers([server]) as servers:
        with pytest.raises(MCPServerUnavailableError, match="did not start within 1"):
            await servers.tools("silent")
        assert asyncio.get_running_loop().time() - started < 2.0
    assert not alive(int(pids.read_text()))


async def test_an_http_response_over_the_limit_is_a_typed_error_and_the_next_call_works() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "MCP_TEST_HOSTILE": "1"}
    proc = await asyncio.create_subprocess_exec(sys.executable, APP, "http", str(port), env=env)
    try:
        for _ in range(1000):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.01)
        server = MCPServer.http("web", f"http://127.0.0.1:{port}/mcp", max_message_bytes=64 * 1024)
        call = ToolContext(key="k", task_id="t", attempt=1, token="tok", name="big")
        async with MCPServers([server]) as servers:
            (big,) = await servers.tools(names=["big"])
            with pytest.raises(MCPToolError, match="a response over 65536 bytes"):
                await big.run({"n_bytes": 1024 * 1024}, call)
            assert await big.run({"n_bytes": 10}, call) == "y" * 10
    finally:
        proc.kill()
        await proc.wait()


async def test_a_compressed_http_response_is_refused_before_it_expands() -> None:
    """A gzip body is counted on the wire, ~1000x smaller than it expands: the
    client asks for identity and refuses a compressed answer unread."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gzip_app = str(Path(__file__).with_name("gzip_server.py"))
    proc = await asyncio.create_subprocess_exec(sys.executable, gzip_app, str(port), str(64 << 20))
    try:
        for _ in range(1000):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.01)
        server = MCPServer.http("gz", f"http://127.0.0.1:{port}/mcp", max_message_bytes=1 << 20)
        call = ToolContext(key="k", task_id="t", attempt=1, token="tok", name="huge")
        async with MCPServers([server]) as servers:
            huge, small = await servers.tools(names=["huge", "small"])
            with pytest.raises(MCPToolError, match="compressed response"):
                await huge.run({}, call)
            assert await small.run({}, call) == "ok"
    finally:
        proc.kill()
        await proc.wait()
