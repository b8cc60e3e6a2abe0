"""What a gateway process is told: where to listen and how long to wait."""

import msgspec


class GatewayConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Settings of one gateway replica (all replicas of a fleet share them)."""

    host: str = "127.0.0.1"
    # 0: any free port (the process logs the one it got).
    port: int = 8765
    path: str = "/mcp"
    # How often the tool list is read from the supervisor (and changes announced).
    refresh_s: float = 2.0
    # The longest a tools/call waits for its task; past it the call is a tool
    # error naming the task, and the same idempotency key picks the wait up again.
    call_timeout_s: float = 600.0
    # The largest HTTP request body read (the SDK refuses bigger ones, 413).
    max_body_bytes: int = 1_048_576
    # Results over SSE with progress (False), or one JSON body without it (True).
    json_response: bool = False
    # Control requests (agents, workflows, status) to the supervisor.
    control_timeout_s: float = 5.0
