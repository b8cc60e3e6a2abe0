"""One MCP gateway process: a NATS connection, the tool catalog and an HTTP server.

Its life runs under `Bus.guard`: a connection closed for good ends it with
`ConnectionLost` (the CLI exits 6 for the process manager to restart it).
SIGTERM stops it: listen streams end (their clients re-listen on another
replica), calls in flight get `drain_s` to finish, then the connection drains.
"""

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn

from natsfleet.bus import Bus, BusConfig
from natsfleet.client import FleetClient
from natsfleet.gateway.config import GatewayConfig
from natsfleet.gateway.errors import GatewayError
from natsfleet.gateway.keys import ApiKeys
from natsfleet.gateway.mcp_app import McpApp
from natsfleet.protocols.idempotency import GATEWAY_ROLE

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the gateway owns SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise GatewayError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    # Listening before uvicorn starts: a client connecting early waits in the
    # backlog until the server accepts, so "listening" in the log is true at once.
    sock.listen(128)
    return sock


class McpGateway:
    """`natsfleet gateway mcp`: serve the fleet's skills and workflows as MCP tools."""

    def __init__(
        self,
        config: GatewayConfig,
        bus_config: BusConfig,
        keys: ApiKeys,
        *,
        instance: str = "0",
        drain_s: float = 5.0,
    ) -> None:
        self.config = config
        self.bus = Bus(bus_config, role=GATEWAY_ROLE, instance=instance)
        self.client = FleetClient(self.bus)
        self.app = McpApp(self.client, config, keys)
        self.instance = instance
        self._server = _Server(
            uvicorn.Config(
                self.app.http_app(),
                # The SDK's session manager runs in `_serve` (not as an ASGI
                # lifespan), so a lost connection cancels it cleanly.
                lifespan="off",
                log_config=None,
                access_log=False,
                ws="none",
                timeout_graceful_shutdown=max(1, round(drain_s)),
            )
        )
        self._stop = asyncio.Event()

    def shutdown(self) -> None:
        """Stop serving (idempotent; safe from a signal handler)."""
        self._stop.set()
        self.app.close()
        self._server.should_exit = True

    async def run(self) -> None:
        """Connect, serve until `shutdown()`; raises `ConnectionLost` if NATS goes for good."""
        sock = _listen(self.config.host, self.config.port)
        try:
            if not await self.bus.connect_unless(self._stop):
                return
            try:
                await self.bus.guard(self._serve(sock))
            finally:
                await self.bus.close()
        finally:
            sock.close()

    async def _serve(self, sock: socket.socket) -> None:
        host, port = sock.getsockname()[:2]
        async with self.app.server.session_manager.run(), asyncio.TaskGroup() as tg:
            refresher = tg.create_task(self.app.catalog.run(self.config.refresh_s))
            serving = tg.create_task(self._server.serve(sockets=[sock]))
            log.info(
                "mcp gateway %s listening on http://%s:%d%s",
                self.instance,
                host,
                port,
                self.config.path,
            )
            await serving
            refresher.cancel()
        log.info("mcp gateway %s stopped", self.instance)
