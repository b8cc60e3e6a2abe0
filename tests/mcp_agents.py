"""An agent whose loop uses the tools of MCP servers, for the MCP client's tests.

Runnable as `natsfleet agent run tests.mcp_agents:MCPAgent --mcp-servers-json ...`:
its servers come from the command line, as the fleet file gives them.
"""

import msgspec

from natsfleet.agents import Agent, AgentConfig, TaskContext, skill

FAST = AgentConfig(
    capacity=2,
    heartbeat_interval_s=0.1,
    drain_grace_s=1.0,
    output_flush_s=0.02,
    shutdown_flush_s=2.0,
)


class Use(msgspec.Struct, frozen=True, kw_only=True):
    prompt: str
    servers: list[str] = []


class Used(msgspec.Struct, frozen=True, kw_only=True):
    text: str
    tools: list[str]


class MCPAgent(Agent):
    name = "mcpuser"
    config = FAST

    @skill
    async def use(self, input: Use, ctx: TaskContext) -> Used:
        """Let the model use the MCP servers' tools."""
        tools = await ctx.mcp_tools(*input.servers)
        text = await ctx.loop(input.prompt, tools=tools, max_turns=20, max_parallel_tools=1)
        return Used(text=text, tools=sorted(t.spec.name for t in tools))
