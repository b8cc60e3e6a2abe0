"""The MCP client's typed errors (each one reaches the model as a tool error result)."""

from natsfleet.agents.errors import AgentError


class MCPError(AgentError):
    """Root of the MCP client's errors."""


class MCPConfigError(MCPError):
    """An MCP server's declaration is wrong (a bad name, a `${VAR}` not set, two
    servers with one name): the agent's declaration must change (not retryable)."""

    def __init__(self, server: str, detail: str) -> None:
        self.server = server
        self.detail = detail
        super().__init__(f"MCP server {server!r}: {detail}")


class MCPServerUnavailableError(MCPError):
    """The server cannot be reached now: it did not start or answer in time, it
    died or hung, or the client is waiting out the backoff before the next try.
    Retryable: a skill that fails with it (its tools could not be listed) is run
    again by the supervisor's retry policy."""

    retryable = True

    def __init__(self, server: str, detail: str) -> None:
        self.server = server
        self.detail = detail
        super().__init__(f"MCP server {server!r} unavailable: {detail}")


class MCPMessageTooLargeError(MCPServerUnavailableError):
    """The server wrote a message longer than its `max_message_bytes`: it was
    stopped (started again by the next call) and the message dropped."""

    def __init__(self, server: str, max_message_bytes: int) -> None:
        self.max_message_bytes = max_message_bytes
        super().__init__(server, f"it wrote a message over {max_message_bytes} bytes")


class MCPToolError(MCPError):
    """The server answered the call with an error (`isError`, or a JSON-RPC error)."""

    def __init__(self, server: str, tool: str, detail: str) -> None:
        self.server = server
        self.tool = tool
        self.detail = detail
        super().__init__(f"{tool} on MCP server {server!r}: {detail}")
