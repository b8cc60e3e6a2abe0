"""An MCP server's tool as a loop tool (the `Tool` protocol of agents/loop/tools.py).

Its name, description and input schema are the server's (`tools/list`); a
call is a `tools/call` through the server's connection (connection.py). What
the model gets back:

- arguments that break the input schema: `ToolArgumentsError` (the loop's
  `bad_arguments` result), checked here, so nothing is sent;
- `isError: true`: `MCPToolError` with the server's text (the loop's `error`);
- otherwise its content as text (other kinds than text as a short
  `[image image/png]` note), which for structured content is its JSON (the
  spec asks servers to send both); the structured content itself only when
  the server sent no content.

The loop journals the result like any tool's: a later attempt of the task
replays it and never calls the server again (docs/interop.md).
"""

from typing import TYPE_CHECKING, Any

import jsonschema

from natsfleet.agents.llm.types import ToolSpec
from natsfleet.agents.loop.tools import ToolArgumentsError, ToolContext, provider_tool_name
from natsfleet.agents.mcp.errors import MCPToolError

if TYPE_CHECKING:
    import mcp_types as types

    from natsfleet.agents.mcp.connection import MCPConnection

# What providers accept as a tool name (OpenAI, Anthropic): 1-64 of these.
_DESCRIPTION_MAX_CHARS = 4_000


def model_name(prefix: str, remote: str) -> str:
    """The name the model sees: the prefix and the server's name, made a valid
    provider tool name (other characters become `_`, cut at 64)."""
    return provider_tool_name(prefix + remote, "_")


class MCPTool:
    """One tool of one MCP server (built by `MCPServers.tools`)."""

    def __init__(self, connection: "MCPConnection", tool: "types.Tool") -> None:
        self.connection = connection
        self.server = connection.name
        self.remote_name = tool.name
        config = connection.config
        schema: dict[str, Any] = dict(tool.input_schema or {"type": "object"})
        schema.setdefault("type", "object")
        description = (tool.description or tool.title or tool.name)[:_DESCRIPTION_MAX_CHARS]
        self.spec = ToolSpec(
            name=model_name(config.tool_prefix, tool.name),
            description=description,
            parameters=schema,
        )
        self.timeout_s = config.call_timeout_s
        self._validator = _validator(schema)

    async def run(self, arguments: dict[str, Any], ctx: ToolContext) -> Any:
        problems = self._problems(arguments)
        if problems:
            raise ToolArgumentsError("; ".join(problems))
        result = await self.connection.call(self.remote_name, arguments)
        if result.is_error:
            raise MCPToolError(self.server, self.remote_name, _text(result.content) or "error")
        if result.content or result.structured_content is None:
            return _text(result.content)
        return result.structured_content

    def _problems(self, arguments: dict[str, Any], limit: int = 5) -> list[str]:
        if self._validator is None:
            return []
        found = []
        try:
            for error in self._validator.iter_errors(arguments):
                where = "/".join(str(p) for p in error.absolute_path) or "(arguments)"
                found.append(f"{where}: {error.message[:200]}")
                if len(found) >= limit:
                    break
        except Exception:
            return []
        return found


def _validator(schema: dict[str, Any]) -> Any:
    """A validator of the server's schema; None if the schema itself is invalid
    (then the server's own check is the only one)."""
    try:
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        cls.check_schema(schema)
        return cls(schema)
    except Exception:
        return None


def _text(content: "list[types.ContentBlock]") -> str:
    parts = []
    for block in content:
        text = getattr(block, "text", None)
        if isinstance(text, str):
            parts.append(text)
        else:
            mime = getattr(block, "mime_type", None) or getattr(block, "uri", "")
            parts.append(f"[{getattr(block, 'type', 'content')} {mime}]".replace(" ]", "]"))
    return "\n".join(parts)
