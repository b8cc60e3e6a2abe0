"""Hot add: a new agent type started beside a running fleet gets the next task for its skill."""

import asyncio
from pathlib import Path

import pytest

from natsfleet.bus import Bus, BusConfig
from natsfleet.client import FleetClient
from natsfleet.deploy import Launcher, load_fleet
from natsfleet.process.server import NatsServer
from natsfleet.protocols import TaskState
from tests.deploy.helpers import AGENT_ENV, FAST_SUPERVISOR, wait_for_instances, write_fleet
from tests.procs import AgentProcs


@pytest.mark.timeout(90)
async def test_new_agent_type_joins_a_running_fleet(
    tmp_path: Path, nats_server: NatsServer, prefix: str
) -> None:
    body = f"""
[nats]
url = "{nats_server.url}"
prefix = "{prefix}"
{FAST_SUPERVISOR}
[[agents]]
agent = "tests.fleet_agents:EchoAgent"
name = "echo"
drain_grace_s = 1
{AGENT_ENV}
"""
    launcher = Launcher(
        load_fleet(write_fleet(tmp_path, body)),
        sink=lambda name, line: None,
        state_dir=tmp_path / "state",
    )
    run = asyncio.create_task(launcher.run())
    try:
        await wait_for_instances(nats_server.url, prefix, "echo", 1)
        async with (
            Bus(BusConfig(url=nats_server.url, prefix=prefix), role="test") as bus,
            AgentProcs(nats_server.url, prefix, tmp_path / "logs") as procs,
        ):
            client = FleetClient(bus)
            # Work in progress on the existing fleet while the new type arrives.
            running = [await client.submit("sleep", {"ms": 600}) for _ in range(3)]
            newcomer = await procs.start("tests.fleet_agents:ConcurrencyAgent", instance_id="r-1")
            await wait_for_instances(nats_server.url, prefix, "recorder", 1)
            task = await client.submit("work", {"ms": 10, "record_dir": str(tmp_path)})
            event = await client.wait(task, 30)
            assert event.state == TaskState.COMPLETED, event
            assert b'"instance_id":"r-1"' in bytes(event.output)
            for task_id in running:
                assert (await client.wait(task_id, 30)).state == TaskState.COMPLETED
            # Removing an instance drains it: SIGTERM, exit 0.
            newcomer.terminate()
            assert await newcomer.wait(15) == 0
    finally:
        launcher.stop()
        await asyncio.wait_for(run, 30)
