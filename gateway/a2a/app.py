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
from starlette.middleware import Middleware

from natsfleet.client import FleetClient
from natsfleet.gateway.a2a.auth import KeyAuth
from natsfleet.gateway.a2a.card import CardSettings, CardSource
from natsfleet.gateway.a2a.handler import FleetRequestHandler, HandlerSettings

log = logging.getLogger(__name__)

#: Where the JSON-RPC endpoint is served.
RPC_PATH = "/"


def build_app(
    client: FleetClient,
    card: CardSettings,
    settings: HandlerSettings,
    keys: Mapping[str, str],
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
    return Starlette(routes=routes, middleware=[auth])


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
