"""Shared by the deploy tests: fleet files, polling, process checks, one submit."""

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from natsfleet.bus import Bus, BusConfig
from natsfleet.client import FleetClient
from natsfleet.protocols import TaskEvent
from tests.procs import REPO_ROOT

T = TypeVar("T")

#: Agent env that lets `natsfleet agent run tests.fleet_agents:...` import.
AGENT_ENV = f'env = {{ PYTHONPATH = "{REPO_ROOT}", NATSFLEET_LOG = "WARNING" }}'

#: Fast supervisor settings for tests.
FAST_SUPERVISOR = """
[supervisor]
assign_timeout_s = 1.0
lease_ttl_s = 3.0
stop_timeout_s = 5.0

[supervisor.timeouts]
heartbeat_timeout_s = 2.0
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_fleet(directory: Path, body: str) -> Path:
    path = directory / "fleet.toml"
    path.write_text(body)
    return path


def alive(pid: int | None) -> bool:
    """True if `pid` runs (a zombie waiting for a reaper does not count)."""
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def poll(
    check: Callable[[], T | None], timeout_s: float, what: str, every_s: float = 0.05
) -> T:
    """Call `check` until it returns something truthy; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        await asyncio.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


async def poll_async(
    check: Callable[[], Awaitable[T | None]], timeout_s: float, what: str, every_s: float = 0.1
) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


async def wait_for_instances(
    url: str, prefix: str, agent: str, count: int, timeout_s: float = 30.0
) -> None:
    """Until the supervisor's registry lists `count` live instances of `agent`."""
    async with Bus(BusConfig(url=url, prefix=prefix), role="test") as bus:
        client = FleetClient(bus)

        async def enough() -> bool:
            try:
                infos = await client.agents(agent, timeout_s=1.0)
            except Exception:  # no supervisor yet
                return False
            return sum(1 for i in infos if i.alive and not i.draining) >= count

        await poll_async(enough, timeout_s, f"{count} live {agent} instance(s)")


async def run_task(
    url: str, prefix: str, skill: str, payload: Any, timeout_s: float = 30.0
) -> TaskEvent:
    async with Bus(BusConfig(url=url, prefix=prefix), role="test") as bus:
        client = FleetClient(bus)
        task_id = await client.submit(skill, payload)
        return await client.wait(task_id, timeout_s)


def kill_group(pid: int | None) -> None:
    if pid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
