"""A fleet behind a nats-server running the generated `nats-auth` config.

Every process is started from `deploy.plan` with the environment `natsfleet
up` would give it, so each runs as its own role's NKey user.
"""

import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client

from natsfleet.bus import Bus, BusConfig
from natsfleet.client import FleetClient
from natsfleet.deploy import load_fleet
from natsfleet.deploy.plan import common_env, plan
from natsfleet.deploy.targets import generate, write_files
from natsfleet.process import NatsServer
from natsfleet.protocols import Subjects
from tests.deploy.helpers import FAST_SUPERVISOR, free_port, poll_async
from tests.procs import REPO_ROOT, AgentProcs

FLEET = """
[nats]
url = "nats://127.0.0.1:{port}"
prefix = "{prefix}"
store_dir = "js"
credentials_dir = "auth/creds"
{supervisor}
[[agents]]
agent = "tests.fleet_agents:EchoAgent"
name = "echo"
instances = 1
{env}

[[agents]]
agent = "tests.fleet_agents:ParentAgent"
name = "parent"
instances = 1
{env}
"""

AGENT_ENV = f'env = {{ PYTHONPATH = "{REPO_ROOT}", NATSFLEET_LOG = "INFO" }}'


@dataclass
class AuthFleet:
    server: NatsServer
    prefix: str
    creds: Path
    server_log: Path
    procs: AgentProcs
    buses: list[Bus] = field(default_factory=list)

    @property
    def subjects(self) -> Subjects:
        return Subjects(self.prefix)

    def seed(self, user: str) -> str:
        return str(self.creds / f"{user}.nk")

    async def bus(self, user: str, role: str = "client") -> Bus:
        config = BusConfig(url=self.server.url, prefix=self.prefix, nkey_seed_file=self.seed(user))
        bus = await Bus(config, role=role, instance=f"t{len(self.buses)}").connect()
        self.buses.append(bus)
        return bus

    async def client(self) -> FleetClient:
        return FleetClient(await self.bus("client", role="cli"))


class Probe:
    """A raw connection as one user, collecting the server's error messages."""

    def __init__(self, nc: Client, errors: "asyncio.Queue[str]") -> None:
        self.nc = nc
        self.errors = errors

    @classmethod
    async def connect(cls, fleet: AuthFleet, user: str, inbox_role: str) -> "Probe":
        errors: asyncio.Queue[str] = asyncio.Queue()

        async def on_error(exc: Exception) -> None:
            errors.put_nowait(str(exc))

        nc = await nats.connect(
            fleet.server.url,
            nkeys_seed=fleet.seed(user),
            error_cb=on_error,
            inbox_prefix=fleet.subjects.reply_inbox(inbox_role, "probe"),
            allow_reconnect=False,
        )
        return cls(nc, errors)

    async def violation(self, timeout_s: float = 5.0) -> str:
        """The next permissions violation the server reported to this connection."""
        while True:
            message = await asyncio.wait_for(self.errors.get(), timeout_s)
            if "permissions violation" in message.lower():
                return message


@pytest.fixture
async def auth_fleet(tmp_path: Path, prefix: str) -> AsyncIterator[AuthFleet]:
    port = free_port()
    fleet_path = tmp_path / "fleet.toml"
    fleet_path.write_text(
        FLEET.format(port=port, prefix=prefix, supervisor=FAST_SUPERVISOR, env=AGENT_ENV)
    )
    fleet_file = load_fleet(fleet_path)
    write_files(generate("nats-auth", fleet_file), tmp_path / "auth")
    assert oct((tmp_path / "auth/creds/client.nk").stat().st_mode & 0o777) == "0o600"
    server_log = tmp_path / "nats-server.log"
    server = NatsServer(
        port=port,
        jetstream=False,  # on in the generated config, with its store_dir
        config_file=tmp_path / "auth" / "nats.conf",
        log_file=server_log,
    )
    await server.start()
    env = common_env(
        fleet_file.fleet, url=server.url, fleet_file=str(fleet_path), base_dir=tmp_path
    )
    procs = AgentProcs(server.url, prefix, tmp_path / "logs")
    fleet = AuthFleet(server, prefix, tmp_path / "auth" / "creds", server_log, procs)
    try:
        for spec in plan(fleet_file, base_dir=tmp_path):
            cmd = [sys.executable, "-m", "natsfleet.cli.main", *spec.args]
            await procs.spawn(spec.name, cmd, {**env, **spec.env})
        for agent in ("echo", "parent"):
            await wait_for_instances_as_client(fleet, agent)
        yield fleet
    finally:
        for bus in fleet.buses:
            await bus.close()
        await procs.aclose()
        await server.stop()


async def wait_for_instances_as_client(fleet: AuthFleet, agent: str) -> None:
    """Until the supervisor lists a live `agent` instance (asked as the client user)."""
    client = await fleet.client()

    async def ready() -> bool:
        try:
            infos = await client.agents(agent, timeout_s=1.0)
        except Exception:  # no supervisor yet
            return False
        return any(i.alive for i in infos)

    await poll_async(ready, 30, f"a live {agent} instance")
