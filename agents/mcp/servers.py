"""The MCP servers of one agent process, by name: their tools for a loop, and
their shutdown with the process.

```python
async with MCPServers([MCPServer.stdio("files", "mcp-server-filesystem", ["/data"])]) as servers:
    tools = await servers.tools("files")
```

The agent runtime keeps one for the agent's declared servers (its config's
and the fleet file's) and stops it after the drain; `ctx.mcp_tools(...)` asks
it. Nothing of the `mcp` SDK is imported until a server's tools are asked for.
"""

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from natsfleet.agents.mcp.config import AnyServer
from natsfleet.agents.mcp.errors import MCPConfigError

if TYPE_CHECKING:
    from natsfleet.agents.mcp.connection import MCPConnection
    from natsfleet.agents.mcp.tools import MCPTool

log = logging.getLogger(__name__)


class MCPServers:
    """Named MCP servers; each connected on first use and kept until `aclose()`.

    Raises:
        MCPConfigError: two servers share a name.
    """

    def __init__(self, servers: Iterable[AnyServer]) -> None:
        self._configs: dict[str, AnyServer] = {}
        for server in servers:
            if server.name in self._configs:
                raise MCPConfigError(server.name, "two MCP servers have this name")
            self._configs[server.name] = server
        self._connections: dict[str, MCPConnection] = {}
        self._closed = False

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._configs)

    def connection(self, name: str) -> "MCPConnection":
        """The server's connection (made on first use, not yet connected).

        Raises:
            MCPConfigError: no server of that name is declared.
        """
        connection = self._connections.get(name)
        if connection is None:
            config = self._configs.get(name)
            if config is None:
                known = ", ".join(self._configs) or "none"
                raise MCPConfigError(name, f"not declared by this agent (declared: {known})")
            if self._closed:
                raise MCPConfigError(name, "the agent's MCP servers are closed")
            from natsfleet.agents.mcp.connection import MCPConnection

            connection = self._connections[name] = MCPConnection(config)
        return connection

    async def tools(self, *servers: str, names: Sequence[str] | None = None) -> "list[MCPTool]":
        """The tools of `servers` (all declared servers when none is named), as
        the servers list them now; `names` keeps only those (server-side names).

        Raises:
            MCPServerUnavailableError: a server could not be started or listed
                (unlike a call, a listing has no result to put it in).
            MCPConfigError: a name is not a declared server.
        """
        from natsfleet.agents.mcp.tools import MCPTool

        wanted = servers or self.names
        connections = [self.connection(name) for name in wanted]
        listings = await asyncio.gather(*(c.list_tools() for c in connections))
        found: list[MCPTool] = []
        for connection, listing in zip(connections, listings, strict=True):
            seen: dict[str, str] = {}  # the model's name -> the server's
            for tool in listing:
                if names is None or tool.name in names:
                    mcp_tool = MCPTool(connection, tool)
                    first = seen.get(mcp_tool.spec.name)
                    if first is not None:
                        # One server listing two tools the model would see as
                        # one name: the first listed is kept, the rest of the
                        # server stays usable.
                        log.warning(
                            "MCP server %s: tool %r has the same name as %r (%s): skipped",
                            connection.name,
                            tool.name,
                            first,
                            mcp_tool.spec.name,
                        )
                        continue
                    seen[mcp_tool.spec.name] = tool.name
                    found.append(mcp_tool)
        return found

    async def aclose(self) -> None:
        """Close every session and stop every stdio server (idempotent)."""
        self._closed = True
        connections = list(self._connections.values())
        if connections:
            await asyncio.gather(*(c.aclose() for c in connections), return_exceptions=True)
            log.info("MCP servers stopped: %s", ", ".join(c.name for c in connections))

    async def __aenter__(self) -> "MCPServers":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
