"""The MCP server of a gateway: the SDK's low-level `Server` over the catalog.

Served stateless over streamable HTTP (`stateless_http=True`): no session id,
no in-memory session, so any replica answers any request. Both protocol eras
work: 2026-07-28 clients send self-contained requests and hear about tool
list changes on a `subscriptions/listen` stream; handshake-era clients
(2025-11-25) initialize on each connection and re-list tools themselves
(stateless HTTP has no standing stream to tell them).
"""

import importlib.metadata
import json
import logging
from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ToolsListChanged
from mcp.shared.exceptions import MCPError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from natsfleet.client import FleetClient
from natsfleet.gateway.auth import CALLER_STATE_KEY, RequireApiKey
from natsfleet.gateway.calls import IDEMPOTENCY_META_KEY, TASK_ID_META_KEY, CallOutcome, run_call
from natsfleet.gateway.catalog import TOOL_NAME_MAX_CHARS, Catalog, FleetTool
from natsfleet.gateway.config import GatewayConfig
from natsfleet.gateway.keys import ApiKeys
from natsfleet.gateway.limits import BodyLimit
from natsfleet.protocols import KEY_MAX_CHARS, VERSION, InvalidValue, check_key

log = logging.getLogger(__name__)

#: Health probes (Kubernetes) need no key: they learn nothing about the fleet.
HEALTH_PATH = "/healthz"


def _version() -> str:
    try:
        return importlib.metadata.version("natsfleet")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return f"protocol-{VERSION}"


def refusal(status: int, why: str) -> bytes:
    """MCP's shape of a 401 or 413: a JSON-RPC error without a request id."""
    code = -32001 if status == 401 else types.INVALID_REQUEST
    error = {"code": code, "message": why}
    return json.dumps({"jsonrpc": "2.0", "id": None, "error": error}).encode()


def _caller(ctx: ServerRequestContext[Any, Any]) -> str:
    request = ctx.request
    state = request.scope.get("state", {}) if isinstance(request, Request) else {}
    caller = state.get(CALLER_STATE_KEY)
    if not isinstance(caller, str):  # the door (auth.py) lets no request in without one
        raise MCPError(types.INVALID_REQUEST, "unauthorized")
    return caller


def _idempotency_key(params: types.CallToolRequestParams) -> str | None:
    meta: dict[str, Any] = dict(params.meta or {})
    key = meta.get(IDEMPOTENCY_META_KEY)
    if key is None:
        return None
    # Half the fleet's limit: the caller, tool and target are added to it (calls.scoped_key).
    limit = KEY_MAX_CHARS // 2
    try:
        if not isinstance(key, str) or len(key) > limit:
            raise InvalidValue(IDEMPOTENCY_META_KEY, f"a string of at most {limit} characters")
        return check_key(key, IDEMPOTENCY_META_KEY)
    except InvalidValue as exc:
        raise MCPError(types.INVALID_PARAMS, str(exc)) from None


def _tool(tool: FleetTool) -> types.Tool:
    return types.Tool(
        name=tool.name,
        description=tool.description,
        input_schema=tool.input_schema,
        output_schema=tool.output_schema,
    )


def _result(outcome: CallOutcome) -> types.CallToolResult:
    structured = outcome.structured
    if not isinstance(structured, dict):
        # Handshake-era clients take only objects as structured content.
        structured = {"result": structured}
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=outcome.text)],
        structured_content=structured,
        is_error=not outcome.ok,
        _meta={TASK_ID_META_KEY: outcome.task_id} if outcome.task_id else None,
    )


class McpApp:
    """The MCP server and its HTTP app, over one `FleetClient` and `Catalog`."""

    def __init__(self, client: FleetClient, config: GatewayConfig, keys: ApiKeys) -> None:
        self.client = client
        self.config = config
        self.keys = keys
        self.events = InMemorySubscriptionBus()
        self.listen = ListenHandler(self.events)
        self.catalog = Catalog(
            client, control_timeout_s=config.control_timeout_s, on_change=self._changed
        )
        self.server: Server[Any] = Server(
            "natsfleet",
            version=_version(),
            instructions="The tools of a natsfleet fleet: each call runs as a fleet task.",
            get_tool_input_schema=self._input_schema,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            on_subscriptions_listen=self.listen,
        )

    async def _changed(self) -> None:
        await self.events.publish(ToolsListChanged())

    def _input_schema(self, name: str) -> dict[str, Any] | None:
        tool = self.catalog.tools.get(name)
        return None if tool is None else tool.input_schema

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        _caller(ctx)
        if not self.catalog.tools:
            await self.catalog.refresh()
        tools = [_tool(self.catalog.tools[name]) for name in sorted(self.catalog.tools)]
        return types.ListToolsResult(tools=tools)

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        caller = _caller(ctx)
        if len(params.name) > TOOL_NAME_MAX_CHARS:
            raise MCPError(types.INVALID_PARAMS, f"a tool name is at most {TOOL_NAME_MAX_CHARS}")
        tool = await self.catalog.find(params.name)
        if tool is None:
            raise MCPError(types.INVALID_PARAMS, f"unknown tool: {params.name}")
        key = _idempotency_key(params)
        log.info("mcp call %s by %s", tool.name, caller, extra={"caller": caller})

        async def report(progress: float, total: float | None, message: str | None) -> None:
            await ctx.session.report_progress(progress, total, message)

        outcome = await run_call(
            self.client,
            tool,
            params.arguments or {},
            caller=caller,
            key=key,
            tenant=self.keys.tenant_of(caller),
            timeout_s=self.config.call_timeout_s,
            report=report,
        )
        log.info(
            "mcp call %s by %s: task %s %s",
            tool.name,
            caller,
            outcome.task_id or "-",
            "ok" if outcome.ok else outcome.structured.get("state", "error"),
            extra={"caller": caller, **({"task_id": outcome.task_id} if outcome.task_id else {})},
        )
        return _result(outcome)

    def http_app(self) -> RequireApiKey:
        """The ASGI app: health probe, then the API key door, the body limit, then MCP."""
        mcp_http = self.server.streamable_http_app(
            streamable_http_path=self.config.path,
            stateless_http=True,
            json_response=self.config.json_response,
            max_request_body_size=self.config.max_body_bytes,
            host=self.config.host,
            custom_starlette_routes=[Route(HEALTH_PATH, self._health, methods=["GET"])],
        )
        limited = BodyLimit(mcp_http, self.config.max_body_bytes, refusal)
        return RequireApiKey(limited, self.keys, refusal, open_paths=frozenset({HEALTH_PATH}))

    async def _health(self, request: Request) -> Response:
        connected = self.client.bus.is_connected
        return JSONResponse({"nats": connected}, status_code=200 if connected else 503)

    def close(self) -> None:
        """End every listen stream (their clients re-listen on another replica)."""
        self.listen.close()
