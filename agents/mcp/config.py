"""How an agent declares the MCP servers whose tools its loops may use.

```python
class Researcher(Agent):
    name = "researcher"
    config = AgentConfig(
        mcp_servers=(
            MCPServer.stdio("files", "mcp-server-filesystem", ["/srv/data"]),
            MCPServer.http(
                "search", "https://search.example/mcp",
                headers={"Authorization": "Bearer ${SEARCH_TOKEN}"},
            ),
        )
    )
```

or per agent in the fleet file (`[[agents.mcp_servers]]`, docs/interop.md).
A declaration is plain data (this module never imports the `mcp` SDK): an
agent that declares no server never loads it. `${VAR}` in an `env` or
`headers` value is replaced from the agent process's environment when the
server is started, so secrets stay out of files and command lines.
"""

import os
import re
from collections.abc import Mapping, Sequence

import msgspec

from natsfleet.agents.mcp.errors import MCPConfigError

# Also a tool-name prefix and a log label: short, plain.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
_PREFIX = re.compile(r"^[A-Za-z0-9_-]{0,32}$")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: A stdio server's longest message unless its declaration says otherwise.
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
_MAX_MESSAGE_BYTES_CAP = 256 * 1024 * 1024


class MCPServer(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="transport"
):
    """One MCP server (`StdioServer` or `HttpServer`; build them with `stdio`/`http`).

    Attributes:
        name: How skills name it (`ctx.mcp_tools("files")`); letters, digits, `_`, `-`.
        tool_prefix: Put before each of its tool names (two servers offering
            `search` need one); the model sees the prefixed name.
        call_timeout_s: A call with no result by then is a `timeout` error
            result (the tool's `timeout_s` in the loop).
        connect_timeout_s: Starting or connecting, and listing its tools, must
            take less; else the call is an error result and the next one tries again.
        backoff_initial_s, backoff_max_s: After a failed start or a dead server,
            the next try waits this long, doubling up to the maximum; reset by a
            call that gets an answer.
        max_message_bytes: The longest message the server may send (a tool
            result, a tools/list page). stdio: a longer line stops the server
            (started again by the next call), the call is an
            `MCPMessageTooLargeError` result; HTTP: a longer JSON body or SSE
            event is that request's error (`MCPToolError`).
    """

    name: str
    tool_prefix: str = ""
    call_timeout_s: float = 60.0
    connect_timeout_s: float = 15.0
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 30.0
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise MCPConfigError(
                str(self.name)[:60],
                "name must be 1 to 40 of A-Z a-z 0-9 _ - (not starting with _ -)",
            )
        if not _PREFIX.match(self.tool_prefix):
            raise MCPConfigError(self.name, "tool_prefix must be at most 32 of A-Z a-z 0-9 _ -")
        for field in ("call_timeout_s", "connect_timeout_s", "backoff_initial_s", "backoff_max_s"):
            if not getattr(self, field) > 0:
                raise MCPConfigError(self.name, f"{field} must be > 0")
        if not 1024 <= self.max_message_bytes <= _MAX_MESSAGE_BYTES_CAP:
            raise MCPConfigError(
                self.name, f"max_message_bytes must be 1024 to {_MAX_MESSAGE_BYTES_CAP}"
            )

    @staticmethod
    def stdio(
        name: str,
        command: str,
        args: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        tool_prefix: str = "",
        call_timeout_s: float = 60.0,
        connect_timeout_s: float = 15.0,
        stop_grace_s: float = 2.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> "StdioServer":
        """A server the agent runs as a subprocess (its own process group) and
        talks to over stdin/stdout; stopped with the agent."""
        return StdioServer(
            name=name,
            command=command,
            args=tuple(args),
            env=dict(env or {}),
            cwd=cwd,
            tool_prefix=tool_prefix,
            call_timeout_s=call_timeout_s,
            connect_timeout_s=connect_timeout_s,
            stop_grace_s=stop_grace_s,
            max_message_bytes=max_message_bytes,
        )

    @staticmethod
    def http(
        name: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        tool_prefix: str = "",
        call_timeout_s: float = 60.0,
        connect_timeout_s: float = 15.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> "HttpServer":
        """A server reached over streamable HTTP at `url`."""
        return HttpServer(
            name=name,
            url=url,
            headers=dict(headers or {}),
            tool_prefix=tool_prefix,
            call_timeout_s=call_timeout_s,
            connect_timeout_s=connect_timeout_s,
            max_message_bytes=max_message_bytes,
        )


class StdioServer(MCPServer, frozen=True, tag="stdio"):
    """A subprocess speaking MCP on stdin/stdout.

    Attributes:
        command, args: What to run (looked up on PATH).
        env: Set on top of a minimal inherited environment (HOME, PATH, ...,
            as the SDK does); values may hold `${VAR}`.
        cwd: Its working directory (the agent's when absent).
        stop_grace_s: On stop, after its stdin is closed, how long it may take
            to exit before its process group gets SIGTERM, then SIGKILL.
    """

    command: str
    args: tuple[str, ...] = ()
    env: dict[str, str] = {}
    cwd: str | None = None
    stop_grace_s: float = 2.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.command.strip():
            raise MCPConfigError(self.name, "command must not be empty")
        if not self.stop_grace_s >= 0:
            raise MCPConfigError(self.name, "stop_grace_s must be >= 0")


class HttpServer(MCPServer, frozen=True, tag="http"):
    """A server at a streamable HTTP endpoint.

    Attributes:
        url: `http://` or `https://` endpoint (usually ending in `/mcp`).
        headers: Sent with every request; values may hold `${VAR}` (a bearer token).
    """

    url: str
    headers: dict[str, str] = {}

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.url.startswith(("http://", "https://")):
            raise MCPConfigError(
                self.name, f"url must start with http:// or https://, not {self.url[:60]!r}"
            )


#: What a fleet file's `[[agents.mcp_servers]]` entries and `--mcp-servers-json` decode to.
AnyServer = StdioServer | HttpServer
_SERVERS = msgspec.json.Decoder(tuple[AnyServer, ...])


def decode_servers(data: bytes | str) -> tuple[AnyServer, ...]:
    """A JSON list of server tables (as in the fleet file), checked.

    Raises:
        MCPConfigError: not such a list, or a server's values are wrong.
    """
    try:
        return _SERVERS.decode(data)
    except msgspec.ValidationError as exc:
        raise MCPConfigError("?", f"not a valid list of MCP servers: {exc}") from None
    except msgspec.DecodeError as exc:
        raise MCPConfigError("?", f"not JSON: {exc}") from None


def expand(server: str, value: str, environ: Mapping[str, str] | None = None) -> str:
    """`value` with each `${VAR}` replaced from the environment.

    Raises:
        MCPConfigError: a variable it names is not set.
    """
    source = os.environ if environ is None else environ

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in source:
            raise MCPConfigError(server, f"environment variable {name} is not set")
        return source[name]

    return _VAR.sub(one, value)
