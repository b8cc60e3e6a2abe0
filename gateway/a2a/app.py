"""The gateway's HTTP app (the SDK's Starlette routes) and its server process."""

import asyncio
import contextlib
import json
import logging
import signal
import socket
from collections.abc import Iterator

import uvicorn
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from natsfleet.client import FleetClient
from natsfleet.gateway.a2a.card import CardSettings, CardSource
from natsfleet.gateway.a2a.handler import FleetRequestHandler, HandlerSettings
from natsfleet.gateway.auth import RequireApiKey
from natsfleet.gateway.keys import ApiKeys
from natsfleet.gateway.limits import BodyLimit

log = logging.getLogger(__name__)

#: Where the JSON-RPC endpoint is served.
RPC_PATH = "/"
#: Health probes (Kubernetes) need no key: they learn nothing about the fleet.
HEALTH_PATH = "/healthz"
#: Largest request body read (the fleet's own payload limits apply after it).
MAX_BODY_BYTES = 8 * 1024 * 1024


def refusal(status: int, why: str) -> bytes:
    """A2A's shape of a 401 or 413 (the rule is the shared one: gateway/auth.py)."""
    return json.dumps({"error": why}).encode()


def build_app(
    client: FleetClient,
    card: CardSettings,
    settings: HandlerSettings,
    keys: ApiKeys,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> Starlette:
    """The A2A app over `client`: the Agent Card and `/healthz` (open), JSON-RPC
    (a key needed)."""
    source = CardSource(client, card)
    handler = FleetRequestHandler(client, settings, keys)

    async def health(request: Request) -> Response:
        # Cheap: no request to the fleet, only the connection's state.
        connected = client.bus.is_connected
        return JSONResponse({"nats": connected}, status_code=200 if connected else 503)

    # The first card is built before the registry is read: its empty skill
    # list would be logged as not spec-compliant; each served card has them.
    checks = logging.getLogger("a2a.utils.proto_utils")
    level, checks.level = checks.level, logging.ERROR
    try:
        routes = create_agent_card_routes(source.card, card_modifier=source.current)
    finally:
        checks.setLevel(level)
    routes += create_jsonrpc_routes(handler, rpc_url=RPC_PATH)
    routes.append(Route(HEALTH_PATH, health, methods=["GET"]))
    open_paths = frozenset({AGENT_CARD_WELL_KNOWN_PATH, HEALTH_PATH})
    auth = Middleware(RequireApiKey, keys=keys, refusal=refusal, open_paths=open_paths)
    limit = Middleware(BodyLimit, max_bytes=max_body_bytes, refusal=refusal)
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
