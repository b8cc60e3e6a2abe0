"""`natsfleet submit --stream` prints a task's partial output as it arrives, from
the first chunk on (it listens before the task exists)."""

import asyncio
import subprocess
import sys
from pathlib import Path

from natsfleet.bus import Bus, BusConfig
from natsfleet.client import FleetClient
from natsfleet.process import NatsServer
from tests.procs import AgentProcs, until_agents

NATSFLEET = str(Path(sys.executable).parent / "natsfleet")


async def test_submit_stream_prints_every_chunk(
    nats_server: NatsServer, prefix: str, tmp_path: Path
) -> None:
    async with AgentProcs(nats_server.url, prefix, tmp_path) as procs:
        await procs.start_supervisor("sup", {"registry_warmup_s": 0.3})
        await procs.start("tests.fleet_agents:EchoAgent", instance_id="e1", heartbeat_s=0.2)
        async with Bus(BusConfig(url=nats_server.url, prefix=prefix)) as bus:
            client = FleetClient(bus)
            await until_agents(client, 1)
        run = await asyncio.to_thread(
            subprocess.run,
            [NATSFLEET, "submit", "stream", "--input", '{"chunks": 30, "gap_ms": 5}',
             "--stream", "--timeout", "20", "--nats", nats_server.url, "--prefix", prefix],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert run.returncode == 0, run.stderr
    streamed, final = run.stdout.split("\n", 1)
    assert streamed == "".join(f"t{i} " for i in range(30))
    assert '"text"' in final
