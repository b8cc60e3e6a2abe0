"""A real MCP server (the `mcp` SDK's MCPServer) for the MCP client's tests.

`python server_app.py stdio` or `python server_app.py http PORT`. Tools:
`echo` (its text and this process's pid), `add` (structured content), `fail`
(raises: an `isError` result), `sleep` (hangs as long as asked), `exit_now`
(the process dies mid-call); `sleep` notes `sleep PID` in `MCP_TEST_EVENTS`
when that is set. With `MCP_TEST_PIDS` set, it appends its pid to
that file at start, and with `MCP_TEST_CHILD=1` it also starts a child process
(`sleep 300`) in its process group and appends the child's pid: the agent must
stop them both. With `MCP_TEST_HOSTILE=1` it also lists `big` (a result of
that many bytes) and `get.file` and `get_file` (one name for the model).
"""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("natsfleet-test")


@server.tool()
def echo(text: str) -> str:
    """Echo the text back."""
    return f"echo: {text} (pid {os.getpid()})"


@server.tool()
def add(a: int, b: int) -> dict[str, int]:
    """Add two integers."""
    return {"sum": a + b}


@server.tool()
def fail(reason: str) -> str:
    """Always fails with the reason."""
    raise ToolError(f"failed on purpose: {reason}")


@server.tool()
async def sleep(seconds: float) -> str:
    """Sleep for a number of seconds."""
    _event(f"sleep {os.getpid()}")
    await asyncio.sleep(seconds)
    return f"slept {seconds}"


@server.tool()
def exit_now() -> str:
    """End this server's process at once."""
    os._exit(3)


if os.environ.get("MCP_TEST_HOSTILE") == "1":

    @server.tool()
    def big(n_bytes: int) -> str:
        """A text of n_bytes bytes."""
        return "y" * n_bytes

    @server.tool(name="get.file")
    def get_file_dotted(path: str) -> str:
        """The dotted one."""
        return f"dotted {path}"

    @server.tool(name="get_file")
    def get_file(path: str) -> str:
        """The underscored one."""
        return f"underscored {path}"


def _event(line: str) -> None:
    path = os.environ.get("MCP_TEST_EVENTS")
    if path:
        with Path(path).open("a") as out:
            out.write(line + "\n")


def _note_pids() -> None:
    path = os.environ.get("MCP_TEST_PIDS")
    if not path:
        return
    pids = [os.getpid()]
    if os.environ.get("MCP_TEST_CHILD") == "1":
        child = subprocess.Popen(["sleep", "300"])  # in its parent's process group
        pids.append(child.pid)
    with Path(path).open("a") as out:
        out.write(" ".join(str(p) for p in pids) + "\n")


if __name__ == "__main__":
    _note_pids()
    if sys.argv[1] == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]), stateless_http=True)
