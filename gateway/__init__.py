"""natsfleet.gateway: the fleet over open agent protocols (MCP, A2A), stateless replicas."""
