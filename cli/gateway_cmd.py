"""`natsfleet gateway ...`: the fleet served over open agent protocols.

`gateway mcp` serves every skill and workflow as an MCP tool, `gateway a2a`
serves the fleet as an A2A agent (docs/interop.md). A gateway keeps no task
of its own, so several replicas may serve one fleet behind any load balancer.
"""

import click

from natsfleet.cli.gateway_a2a_cmd import a2a_command
from natsfleet.cli.gateway_mcp_cmd import mcp_command


@click.group("gateway")
def gateway_group() -> None:
    """Serve the fleet to MCP and A2A clients (stateless; run as many replicas as needed)."""


gateway_group.add_command(mcp_command)
gateway_group.add_command(a2a_command)
