"""The gateway's HTTP app (the SDK's Starlette routes) and its server process."""

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Iterator, Mapping

import uvicorn
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from natsfleet.client import FleetClient
from natsfleet.gateway.a2a.auth import KeyAuth
from natsfleet.gateway.a2a.card import CardSettings, CardSource
from natsfleet.gateway.a2a.handler import FleetRequestHandler, HandlerSettings

log = logging.getLogger(__name__)

#: Where the JSON-RPC endpoint is served.
RPC_PATH = "/"
#: Largest request body read (the fleet's own payload limits apply after it).
MAX_BODY_BYTES = 8 * 1024 * 1024


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` is refused (413) before
    it is held in memory, whether its Content-Length says so or its chunks do."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_bytes:
            await PlainTextResponse("request body too large", 413)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:  # the SDK answers it as "Payload too large"
                raise HTTPException(413)
            return message

        await self.app(scope, counted, send)


def build_app(
    client: FleetClient,
    card: CardSettings,
    settings: HandlerSettings,
    keys: Mapping[str, str],
    max_body_bytes: int = MAX_BODY_BYTES,
) -> Starlette:
    """The A2A app over `client`: the Agent Card (open) and JSON-RPC (a key needed)."""
    source = CardSource(client, card)
    handler = FleetRequestHandler(client, settings)
    # The first card is built before the registry is read: its empty skill
    # list would be logged as not spec-compliant; each served card has them.
    checks = logging.getLogger("a2a.utils.proto_utils")
    level, checks.level = checks.level, logging.ERROR
    try:
        routes = create_agent_card_routes(source.card, card_modifier=source.current)
    finally:
        checks.setLevel(level)
    routes += create_jsonrpc_routes(handler, rpc_url=RPC_PATH)
    auth = Middleware(KeyAuth, keys=keys, open_paths=[AGENT_CARD_WELL_KNOWN_PATH])
    limit = Middleware(BodyLimit, max_bytes=max_body_bytes)
    return Starlette(routes=routes, middleware=[auth, limit])


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: a free one, read back from the socket)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server without its signal handling: it re-raises SIGTERM once
    drained, so the process would die by the signal instead of exiting 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(app: Starlette, sock: socket.socket) -> None:
    """Serve until SIGINT/SIGTERM, then finish the requests in flight and return."""
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    server = _Server(config)
    loop = asyncio.get_running_loop()

    def stop() -> None:
        server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    try:
        await server.serve(sockets=[sock])
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
