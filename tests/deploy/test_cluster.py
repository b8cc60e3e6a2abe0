"""A 3-node NATS cluster from the generated config runs the fleet, and losing a node loses no task.

Three nats-server processes on loopback ports run the configs that
`natsfleet deploy nats-cluster` writes for the fleet file; the fleet's
streams and buckets have 3 replicas. A supervisor and two agents connect
with a URL listing all three servers. While a batch of tasks runs, the
server the supervisor is connected to (read from each server's `/connz`)
is killed with SIGKILL: the supervisor and agents fail over to the other
two nodes, and every task still ends completed, with exactly one terminal
event.
"""

import asyncio
import contextlib
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import msgspec
import nats.errors
import pytest
from nats.js.errors import KeyNotFoundError

from natsfleet.bus import Bus, BusConfig, StorageConfig
from natsfleet.client import FleetClient
from natsfleet.deploy import load_fleet
from natsfleet.deploy.plan import supervisor_config_json
from natsfleet.deploy.targets import generate, write_files
from natsfleet.process.server import NatsServer
from natsfleet.protocols import Bucket, Stream, TaskEvent, TaskRecord, TaskState, is_terminal
from tests.deploy.helpers import free_port, poll_async, wait_for_instances, write_fleet
from tests.procs import AgentProcs
from tests.supervisor.helpers import terminal_events

TASKS = 200
SUPERVISOR_NAME = "natsfleet-supervisor"  # the supervisor's NATS client name


def _free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def _fleet_body(prefix: str, ports: list[int], store: Path) -> str:
    nodes = "".join(
        f"""
[[nats.cluster.nodes]]
name = "n{i + 1}"
client_port = {ports[3 * i]}
cluster_port = {ports[3 * i + 1]}
monitor_port = {ports[3 * i + 2]}
store_dir = "{store / f"n{i + 1}"}"
"""
        for i in range(3)
    )
    url = ",".join(f"nats://127.0.0.1:{ports[3 * i]}" for i in range(3))
    return f"""
[nats]
url = "{url}"
prefix = "{prefix}"

[nats.cluster]
name = "natsfleet-test"
{nodes}
[supervisor]
stream_replicas = 3
assign_timeout_s = 2.0
lease_ttl_s = 6.0
[supervisor.timeouts]
heartbeat_timeout_s = 5.0
[supervisor.retry]
initial_interval_s = 0.05
maximum_interval_s = 0.5
maximum_attempts = 20

[[agents]]
agent = "tests.fleet_agents:EchoAgent"
name = "echo"
instances = 2
capacity = 8
"""


def _connz(monitor_port: int) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{monitor_port}/connz?subs=0&limit=1024"
    with urllib.request.urlopen(url, timeout=2) as response:
        connections: list[dict[str, Any]] = json.load(response).get("connections") or []
        return connections


async def _supervisor_node(monitor_ports: dict[str, int]) -> str | None:
    """The node whose clients include the supervisor (only one may list it)."""
    found = []
    for node, port in monitor_ports.items():
        with contextlib.suppress(OSError, ValueError):
            conns = await asyncio.to_thread(_connz, port)
            if any(c.get("name") == SUPERVISOR_NAME for c in conns):
                found.append(node)
    return found[0] if len(found) == 1 else None


async def _records(bus: Bus, ids: list[str]) -> dict[str, TaskRecord]:
    kv = await bus.kv(Bucket.STATE)

    async def one(task_id: str) -> TaskRecord | None:
        try:
            entry = await kv.get(task_id)
        except KeyNotFoundError:
            return None
        return msgspec.json.decode(entry.value or b"", type=TaskRecord)

    records = await asyncio.gather(*(one(task_id) for task_id in ids))
    return {r.task_id: r for r in records if r is not None}


async def _ended(bus: Bus, ids: list[str]) -> int:
    """How many of `ids` STATE says are terminal (0 while the bus fails over)."""
    try:
        records = await _records(bus, ids)
    except Exception:  # a request caught by the failover: ask again
        return 0
    return sum(1 for r in records.values() if is_terminal(r.state))


@pytest.mark.timeout(90)
async def test_fleet_survives_killing_the_supervisors_nats_server(
    tmp_path: Path, prefix: str
) -> None:
    started = time.monotonic()
    ports = _free_ports(9)
    fleet_file = load_fleet(write_fleet(tmp_path, _fleet_body(prefix, ports, tmp_path / "js")))
    fleet = fleet_file.fleet
    nodes = fleet.nats.cluster.nodes
    conf_dir = tmp_path / "nats"
    write_files(generate("nats-cluster", fleet_file), conf_dir)

    servers = {
        node.name: NatsServer(
            config_file=conf_dir / f"{node.name}.conf",
            port=node.client_port,
            jetstream=False,  # the config file turns JetStream on, with its store_dir
            log_file=tmp_path / f"{node.name}.log",
        )
        for node in nodes
    }
    monitor_ports = {node.name: node.monitor_port or 0 for node in nodes}
    url = fleet.nats.url
    async with contextlib.AsyncExitStack() as stack:
        for server in servers.values():
            await stack.enter_async_context(server)
            stack.push_async_callback(server.kill)  # at the end: SIGKILL, then clean up
        async with Bus(BusConfig(url=url, prefix=prefix), role="test") as bus:

            async def meta_leader() -> bool:
                try:
                    await bus.js.account_info()
                except Exception:  # "JetStream system temporarily unavailable"
                    return False
                return True

            await poll_async(meta_leader, 30, "a JetStream meta leader", every_s=0.1)
            await bus.provision(StorageConfig(replicas=3))
            stream = await bus.js.stream_info(bus.subjects.stream(Stream.TASKS))
            assert stream.config.num_replicas == 3
            client = FleetClient(bus)

            async with AgentProcs(url, prefix, tmp_path / "logs") as procs:
                supervisor_config = {
                    **json.loads(supervisor_config_json(fleet.supervisor)),
                    "registry_warmup_s": 0.3,
                }
                assert supervisor_config["storage"] == {"replicas": 3}
                await procs.start_supervisor("supervisor-1", supervisor_config)
                (agent,) = fleet.agents
                for instance_id in agent.instance_ids():
                    await procs.start(agent.agent, instance_id=instance_id, capacity=agent.capacity)
                await wait_for_instances(url, prefix, "echo", agent.instances)

                ids = list(
                    await asyncio.gather(
                        *(client.submit("sleep", {"ms": 150}) for _ in range(TASKS))
                    )
                )
                # Mid-run: some tasks done, most still to go.
                await poll_async(
                    lambda: _ended_at_least(bus, ids, 20), 30, "the first tasks to end"
                )
                victim = await poll_async(
                    lambda: _supervisor_node(monitor_ports), 10, "the supervisor's server"
                )
                ended_before = await _ended(bus, ids)
                await servers[victim].kill()
                assert ended_before < TASKS, "the batch ended before the server was killed"

                async def all_ended() -> bool:
                    return await _ended(bus, ids) == TASKS

                await poll_async(all_ended, 60, f"all {TASKS} tasks to end", every_s=0.25)
                # The supervisor now talks to one of the two nodes left.
                survivor = await poll_async(
                    lambda: _supervisor_node(monitor_ports), 10, "the supervisor's new server"
                )
                assert survivor != victim
                records = await _records(bus, ids)

                events = await _terminal_events(bus, ids)
                for task_id in ids:
                    assert records[task_id].state == TaskState.COMPLETED, records[task_id]
                    assert len(events.get(task_id, [])) == 1, (task_id, events.get(task_id))
                    assert events[task_id][0].state == TaskState.COMPLETED
                for proc in procs.procs:
                    assert proc.returncode is None, proc.log()[-2000:]
    assert time.monotonic() - started < 90


async def _terminal_events(bus: Bus, ids: list[str]) -> dict[str, list[TaskEvent]]:
    """terminal_events, asked again while the cluster still elects leaders (the
    EVENTS stream's, the meta leader that creates the reading consumer)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return await terminal_events(bus, ids, timeout_s=20)
        except (nats.errors.Error, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _ended_at_least(bus: Bus, ids: list[str], count: int) -> bool:
    return await _ended(bus, ids) >= count
