"""An agent whose loop uses the tools of MCP servers, for the MCP client's tests.

Runnable as `natsfleet agent run tests.mcp_agents:MCPAgent` with
`NATSFLEET_FLEET_FILE` and `NATSFLEET_AGENT_LABEL` naming its fleet-file entry,
whose `[[agents.mcp_servers]]` are its servers (as `natsfleet up` runs it).
Besides the servers' tools its loop has `gate`: it notes `gate NAME` in
`MCP_TEST_EVENTS` and waits until the file `$MCP_TEST_GATES/NAME` exists, so a
test can act between two calls.
"""

import asyncio
import os
from pathlib import Path

import msgspec

from natsfleet.agents import Agent, AgentConfig, TaskContext, skill
from natsfleet.agents.loop import tool

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


@tool(timeout_s=None)
async def gate(name: str) -> str:
    """Wait until the test opens the gate."""
    with Path(os.environ["MCP_TEST_EVENTS"]).open("a") as out:
        out.write(f"gate {name}\n")
    path = Path(os.environ["MCP_TEST_GATES"]) / name
    while not path.exists():
        await asyncio.sleep(0.01)
    return "open"


class MCPAgent(Agent):
    name = "mcpuser"
    config = FAST

    @skill
    async def use(self, input: Use, ctx: TaskContext) -> Used:
        """Let the model use the MCP servers' tools."""
        tools = [*await ctx.mcp_tools(*input.servers), gate]
        text = await ctx.loop(input.prompt, tools=tools, max_turns=20, max_parallel_tools=1)
        return Used(text=text, tools=sorted(t.spec.name for t in tools))
