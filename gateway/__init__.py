"""natsfleet.gateway: the fleet served to the outside world over open protocols.

`natsfleet gateway mcp` serves every skill and loaded workflow as an MCP tool
over streamable HTTP, `natsfleet gateway a2a` (`natsfleet.gateway.a2a`) the
fleet as an A2A agent (docs/interop.md). Both take the same API keys, with
their tenants (`keys.py`, `auth.py`, `limits.py`). A gateway holds no task state: every
task lives in JetStream, so any replica answers any request. It sits above
`natsfleet.client`.
"""

from natsfleet.gateway.config import GatewayConfig
from natsfleet.gateway.errors import GatewayError
from natsfleet.gateway.keys import ApiKeys
from natsfleet.gateway.mcp_service import McpGateway

__all__ = ["ApiKeys", "GatewayConfig", "GatewayError", "McpGateway"]
