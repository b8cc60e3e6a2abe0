"""The supervisor's metrics on its opt-in Prometheus endpoint, from a real fleet."""

import asyncio
import socket
import urllib.request
from pathlib import Path

from natsfleet.bus import Bus, BusConfig
from natsfleet.client import FleetClient
from natsfleet.process import NatsServer
from natsfleet.telemetry.metrics import configure_metrics
from tests.procs import AgentProcs, until_agents


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def sample(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_nothing_is_installed_without_configuration() -> None:
    assert configure_metrics("natsfleet-test", env={}) is False


async def test_supervisor_serves_fleet_metrics(
    nats_server: NatsServer, prefix: str, tmp_path: Path
) -> None:
    port = free_port()
    async with AgentProcs(nats_server.url, prefix, tmp_path) as procs:
        await procs.start_supervisor(
            "sup", {"registry_warmup_s": 0.3}, env={"NATSFLEET_METRICS_PORT": str(port)}
        )
        await procs.start("tests.fleet_agents:EchoAgent", instance_id="e1", heartbeat_s=0.2)
        async with Bus(BusConfig(url=nats_server.url, prefix=prefix)) as bus:
            client = FleetClient(bus)
            await until_agents(client, 1)
            ids = [await client.submit("echo", {"text": str(n)}) for n in range(3)]
            ids.append(await client.submit("fail", {"message": "no", "retryable": False}))
            for task_id in ids:
                await client.wait(task_id, timeout_s=20)
        text = await asyncio.to_thread(scrape, port)
    assert sample(text, "natsfleet_tasks_ended_total", skill="echo", state="completed") == 3.0
    assert sample(text, "natsfleet_tasks_ended_total", skill="fail", state="failed") == 1.0
    assert sample(text, "natsfleet_attempts_total", skill="echo", outcome="completed") == 3.0
    assert sample(text, "natsfleet_instances_live", agent="echo") == 1.0
    assert sample(text, "natsfleet_task_duration_seconds_count", skill="echo") == 3.0
