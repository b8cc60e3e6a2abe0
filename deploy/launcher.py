"""`natsfleet up`: run a whole fleet as child processes of one launcher.

Start order: the embedded nats-server (only when the fleet file allows it and
nothing answers at the URL), the supervisors, the agent instances, the
gateway replicas. Stop order is the reverse and waits for each tier:
gateways stop taking calls, agents drain (they hand
back or finish their tasks while the supervisor can still record that), then
the supervisors release their leases, then the server stops.
"""

import asyncio
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from natsfleet.deploy.child import Child
from natsfleet.deploy.errors import DeployError
from natsfleet.deploy.fleetfile import FleetFile
from natsfleet.deploy.logsink import LineSink
from natsfleet.deploy.plan import Kind, common_env, plan
from natsfleet.deploy.restart import RestartIntensity
from natsfleet.deploy.state import UpState, remove_state, write_state
from natsfleet.process.server import NatsServer, shared_gomaxprocs

log = logging.getLogger(__name__)


def default_command() -> tuple[str, ...]:
    """How to run `natsfleet` as a child: this interpreter, so the same install."""
    return (sys.executable, "-m", "natsfleet.cli.main")


class Launcher:
    """Runs one fleet until `stop()`; see the module docstring for the order."""

    def __init__(
        self,
        fleet_file: FleetFile,
        *,
        sink: LineSink,
        state_dir: Path,
        command: Sequence[str] | None = None,
    ) -> None:
        self.fleet_file = fleet_file
        self.fleet = fleet_file.fleet
        self._sink = sink
        self.state_dir = state_dir
        self._command = tuple(command or default_command())
        self._stop = asyncio.Event()
        self._server: NatsServer | None = None
        self.children: list[Child] = []
        self._state = UpState(
            launcher_pid=os.getpid(),
            fleet_file=str(fleet_file.path),
            nats_url=self.fleet.nats.url,
            prefix=self.fleet.nats.prefix,
            started_at_s=time.time(),
        )

    def stop(self) -> None:
        """Ask for an orderly shutdown (safe from a signal handler). Idempotent."""
        self._stop.set()

    async def run(self) -> None:
        """Start everything, wait for `stop()`, stop everything in order.

        Raises:
            DeployError: nothing answers at the NATS URL and the fleet file
                does not allow an embedded server, or the server did not start.
        """
        try:
            await self._ensure_server()
            self._make_children()
            self._write_state()
            async with asyncio.TaskGroup() as group:
                for child in self.children:
                    group.create_task(child.run(), name=child.spec.name)
                try:
                    await self._stop.wait()
                finally:
                    # Also when a child task failed: never leave processes behind.
                    await self._shutdown()
        finally:
            if self._server is not None:
                log.info("stopping nats-server")
                await self._server.stop()
            remove_state(self.state_dir)

    async def _shutdown(self) -> None:
        self._state.stopping = True
        # The doors close first: gateways stop taking calls before agents drain.
        for kind in (Kind.GATEWAY, Kind.AGENT, Kind.SUPERVISOR):
            tier = [c for c in self.children if c.spec.kind == kind]
            if tier:
                log.info("stopping %d %s process(es)", len(tier), kind.value)
                await asyncio.gather(*(c.stop() for c in tier))

    async def _ensure_server(self) -> None:
        nats = self.fleet.nats
        first = nats.url.split(",")[0].strip()
        split = urlsplit(first)
        host, port = split.hostname or "127.0.0.1", split.port or 4222
        if await _answers(host, port):
            log.info("NATS answers at %s", first)
            return
        if not nats.embedded:
            raise DeployError(
                f"nothing answers at {first} and nats.embedded is false: start NATS "
                "there, or set `embedded = true` in [nats] to let `natsfleet up` start one"
            )
        store = self.fleet_file.path.parent / nats.store_dir
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._server = NatsServer(
            host=host,
            port=port,
            store_dir=store,
            log_file=self.state_dir / "nats-server.log",
            gomaxprocs=shared_gomaxprocs(),  # it shares this host with the fleet
        )
        await self._server.start()
        self._state.server_pid = self._server.pid
        log.info("started nats-server at %s (JetStream store %s)", first, store)

    def _make_children(self) -> None:
        env = {
            **os.environ,
            **common_env(
                self.fleet,
                url=self.fleet.nats.url,
                fleet_file=str(self.fleet_file.path),
                base_dir=self.fleet_file.path.parent,
            ),
        }
        up = self.fleet.up
        for spec in plan(self.fleet_file, base_dir=self.fleet_file.path.parent):
            intensity = RestartIntensity(
                max_restarts=up.max_restarts,
                within_s=up.within_s,
                backoff_initial_s=up.backoff_initial_s,
                backoff_max_s=up.backoff_max_s,
            )
            self.children.append(
                Child(
                    spec,
                    command=self._command,
                    env=env,
                    cwd=str(self.fleet_file.path.parent),
                    intensity=intensity,
                    sink=self._sink,
                    on_change=self._write_state,
                )
            )
        self._state.children = [c.state for c in self.children]

    def _write_state(self) -> None:
        try:
            write_state(self.state_dir, self._state)
        except OSError as exc:
            log.warning("cannot write the state file in %s: %s", self.state_dir, exc)


async def _answers(host: str, port: int, timeout_s: float = 1.0) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, TimeoutError):
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True
