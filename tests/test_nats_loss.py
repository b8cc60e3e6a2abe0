"""A supervisor or agent process whose NATS connection is closed for good exits
non-zero with the reason in its log; a short server restart does not end it;
SIGTERM and SIGINT stop it while NATS is unreachable. Real processes, real
nats-server (docs/operations.md, "When NATS goes away")."""

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from natsfleet.bus import Bus, BusConfig
from natsfleet.client import FleetClient
from natsfleet.process import NatsServer
from natsfleet.protocols import TaskEvent, TaskState
from tests.procs import AgentProcess, AgentProcs, until_agents

ECHO = "tests.fleet_agents:EchoAgent"
NATSFLEET = str(Path(sys.executable).parent / "natsfleet")
EXIT_NATS_LOST = 6
#: A fast supervisor: terms start quickly and the lease is renewed every 0.5 s.
SUPERVISOR = {"lease_ttl_s": 1.5, "registry_warmup_s": 0.3, "assign_timeout_s": 1.0}


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port nothing listens on: bound (so nobody else takes it), not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
async def client(nats_server: NatsServer, prefix: str) -> AsyncIterator[FleetClient]:
    async with Bus(BusConfig(url=nats_server.url, prefix=prefix), role="test") as bus:
        yield FleetClient(bus)


async def _echo(client: FleetClient, text: str) -> None:
    task_id = await client.submit("echo", {"text": text})
    event = await client.wait(task_id, timeout_s=30)
    assert event.state == TaskState.COMPLETED, event


async def _until_logged(proc: AgentProcess, text: str, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in proc.log():
        assert proc.returncode is None, proc.log()
        assert time.monotonic() < deadline, f"{text!r} never logged:\n{proc.log()}"
        await asyncio.sleep(0.05)


async def _exits_lost(proc: AgentProcess, reason: str, timeout_s: float) -> None:
    try:
        code = await proc.wait(timeout_s)
    except TimeoutError:
        pytest.fail(f"{proc.instance_id} still running {timeout_s} s after:\n{proc.log()}")
    log = proc.log()
    assert code == EXIT_NATS_LOST, log
    assert "NATS connection closed for good" in log and reason in log, log
    assert "Traceback" not in log, log


async def test_a_blip_is_survived_and_a_dead_server_ends_the_processes(
    nats_server: NatsServer, prefix: str, tmp_path: Path, client: FleetClient
) -> None:
    # About 10 s of attempts (0.25 s apart) before nats-py gives up.
    env = {"NATS_MAX_RECONNECT_ATTEMPTS": "40"}
    async with AgentProcs(nats_server.url, prefix, tmp_path) as procs:
        supervisor = await procs.start_supervisor("sup", SUPERVISOR, env=env)
        agent = await procs.start(ECHO, instance_id="e1", env=env)
        await until_agents(client, 1)
        await _echo(client, "before")
        await nats_server.restart()  # a blip: both reconnect and keep working
        await _echo(client, "after")
        assert supervisor.returncode is None and agent.returncode is None
        await nats_server.stop()  # for good
        started = time.monotonic()
        await _exits_lost(supervisor, "gave up reconnecting after 40 attempts", 30)
        await _exits_lost(agent, "gave up reconnecting after 40 attempts", 30)
        assert time.monotonic() - started < 30


async def test_a_connection_the_server_closes_for_good_ends_the_processes(
    prefix: str, tmp_path: Path
) -> None:
    config = tmp_path / "nats.conf"
    config.write_text("")
    server = NatsServer(config_file=config, store_dir=tmp_path / "js")
    await server.start()
    try:
        async with (
            Bus(BusConfig(url=server.url, prefix=prefix), role="test") as bus,
            AgentProcs(server.url, prefix, tmp_path / "logs") as procs,
        ):
            client = FleetClient(bus)
            supervisor = await procs.start_supervisor("sup", SUPERVISOR)
            agent = await procs.start(ECHO, instance_id="e1")
            await until_agents(client, 1)
            # An operator lowers max_payload below what either process sends:
            # the server answers the next heartbeat or lease renewal with a
            # fatal -ERR and closes the connection, which nats-py never reopens.
            config.write_text("max_payload: 16\n")
            assert server.pid is not None
            os.kill(server.pid, signal.SIGHUP)  # reload
            await _exits_lost(supervisor, "maximum payload violation", 15)
            await _exits_lost(agent, "maximum payload violation", 15)
    finally:
        await server.stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_supervisor_stops_on_a_signal_while_nats_is_unreachable(
    closed_port: int, prefix: str, tmp_path: Path, sig: signal.Signals
) -> None:
    async with AgentProcs(f"nats://127.0.0.1:{closed_port}", prefix, tmp_path) as procs:
        supervisor = await procs.start_supervisor("sup", SUPERVISOR)
        await _until_logged(supervisor, "cannot reach NATS")
        supervisor.signal(sig)
        assert await supervisor.wait(5) == 0, supervisor.log()
        assert "Traceback" not in supervisor.log()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_agent_stops_on_a_signal_while_nats_is_unreachable(
    closed_port: int, prefix: str, tmp_path: Path, sig: signal.Signals
) -> None:
    async with AgentProcs(f"nats://127.0.0.1:{closed_port}", prefix, tmp_path) as procs:
        agent = await procs.start(ECHO, instance_id="e1")
        await _until_logged(agent, "cannot reach NATS")
        agent.signal(sig)
        assert await agent.wait(5) == 0, agent.log()
        assert "Traceback" not in agent.log()


async def test_supervisor_stops_on_sigterm_while_nats_is_down_after_start(
    nats_server: NatsServer, prefix: str, tmp_path: Path
) -> None:
    async with AgentProcs(nats_server.url, prefix, tmp_path) as procs:
        supervisor = await procs.start_supervisor("sup", SUPERVISOR)
        await _until_logged(supervisor, "active")
        await nats_server.stop()
        await _until_logged(supervisor, "disconnected")
        supervisor.terminate()
        assert await supervisor.wait(10) == 0, supervisor.log()


async def test_a_client_verb_exits_when_its_connection_is_closed_for_good(
    nats_server: NatsServer, prefix: str, client: FleetClient
) -> None:
    await client.bus.provision()
    queued = TaskEvent(task_id="T-1", state=TaskState.QUEUED, at_ms=1, skill="echo")
    await client.bus.publish_js(client.bus.subjects.events("T-1"), queued)
    watch = await asyncio.create_subprocess_exec(
        NATSFLEET, "watch", "T-1", "--nats", nats_server.url, "--prefix", prefix,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NATS_MAX_RECONNECT_ATTEMPTS": "2"},
    )  # fmt: skip
    try:
        assert watch.stdout is not None and watch.stderr is not None
        first = await asyncio.wait_for(watch.stdout.readline(), 15)
        assert b"T-1 queued" in first  # it is connected and watching
        await nats_server.stop()
        assert await asyncio.wait_for(watch.wait(), 10) == EXIT_NATS_LOST
        errors = (await watch.stderr.read()).decode().strip().splitlines()
        assert errors == [
            "error: NATS connection closed for good: gave up reconnecting after 2 attempts "
            "per server; last error: connection refused"
        ]
    finally:
        if watch.returncode is None:
            watch.kill()
            await watch.wait()


@pytest.mark.parametrize("kind", ["supervisor", "agent"])
async def test_a_reconnect_limit_also_ends_the_wait_at_start(
    closed_port: int, prefix: str, tmp_path: Path, kind: str
) -> None:
    env = {"NATS_MAX_RECONNECT_ATTEMPTS": "2"}
    async with AgentProcs(f"nats://127.0.0.1:{closed_port}", prefix, tmp_path) as procs:
        if kind == "supervisor":
            proc = await procs.start_supervisor("sup", SUPERVISOR, env=env)
        else:
            proc = await procs.start(ECHO, instance_id="e1", env=env)
        assert await proc.wait(10) == 5, proc.log()
        assert "gave up reconnecting after 2 attempts" in proc.log()
        assert "Traceback" not in proc.log()
