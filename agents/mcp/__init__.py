"""natsfleet.agents.mcp: the tools of MCP servers in an agent's loop (docs/interop.md).

```python
from natsfleet.agents import Agent, AgentConfig, TaskContext, skill
from natsfleet.agents.mcp import MCPServer

class Researcher(Agent):
    name = "researcher"
    config = AgentConfig(
        mcp_servers=(MCPServer.stdio("files", "mcp-server-filesystem", ["/data"]),)
    )

    @skill
    async def ask(self, input: Question, ctx: TaskContext) -> Answer:
        tools = [*await ctx.mcp_tools("files"), my_tool]
        return Answer(text=await ctx.loop(input.text, tools=tools))
```

Importing this package does not import the `mcp` SDK; connecting to a server does.
"""

from natsfleet.agents.mcp.config import (
    AnyServer,
    HttpServer,
    MCPServer,
    StdioServer,
    decode_servers,
)
from natsfleet.agents.mcp.errors import (
    MCPConfigError,
    MCPError,
    MCPMessageTooLargeError,
    MCPServerUnavailableError,
    MCPToolError,
)
from natsfleet.agents.mcp.servers import MCPServers

__all__ = [
    "AnyServer",
    "HttpServer",
    "MCPConfigError",
    "MCPError",
    "MCPMessageTooLargeError",
    "MCPServer",
    "MCPServerUnavailableError",
    "MCPServers",
    "MCPToolError",
    "StdioServer",
    "decode_servers",
]
