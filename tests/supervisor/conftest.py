"""Fixtures for supervisor tests: supervisors and agents as real subprocesses.

`fleet` starts processes against the test's nats-server and prefix and kills
every one of them (SIGKILL, then waits) when the test ends, so no process
outlives its test. Readiness is awaited on messages, never on sleeps: a
supervisor announces each term with a Rollcall, an agent with its Hello.
"""

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from natsfleet.bus import Bus, BusConfig
from natsfleet.client import FleetClient
from natsfleet.process import NatsServer
from natsfleet.protocols import AgentAnnouncement, Codec, Hello, Rollcall

HERE = Path(__file__).resolve().parent
MINI_AGENT = HERE / "mini_agent.py"

#: Short timeouts keep the tests fast; bounds are asserted with tolerances.
FAST: dict[str, Any] = {
    "timeouts": {
        "schedule_to_start_s": 30.0,
        "start_to_close_s": 30.0,
        "heartbeat_timeout_s": 0.4,
        "schedule_to_close_s": 120.0,
    },
    "retry": {"initial_interval_s": 0.05, "maximum_interval_s": 0.5, "maximum_attempts": 3},
    "assign_timeout_s": 0.5,
    "lease_ttl_s": 1.5,
    "ack_wait_s": 1.0,
    "registry_warmup_s": 0.3,
    "sweep_interval_s": 0.05,
}


class Proc:
    def __init__(self, name: str, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.name = name
        self.proc = proc
        self.log_path = log

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, sig: signal.Signals) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)

    async def kill(self) -> None:
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGKILL)
        await self.proc.wait()

    async def wait(self, timeout_s: float) -> int:
        return await asyncio.wait_for(self.proc.wait(), timeout_s)


class Fleet:
    def __init__(self, server: NatsServer, prefix: str, tmp: Path, bus: Bus) -> None:
        self.server = server
        self.prefix = prefix
        self.tmp = tmp
        self.bus = bus
        self.client = FleetClient(bus)
        self.procs: list[Proc] = []
        self.hellos: dict[str, asyncio.Future[Hello]] = {}
        self.terms: dict[str, asyncio.Queue[Rollcall]] = {}

    async def watch(self) -> None:
        async def on_announcement(message: AgentAnnouncement, _: object) -> None:
            if isinstance(message, Hello):
                future = self.hellos.get(message.instance_id)
                if future is not None and not future.done():
                    future.set_result(message)

        async def on_rollcall(message: Rollcall, _: object) -> None:
            self.terms.setdefault(message.supervisor_id, asyncio.Queue()).put_nowait(message)

        for subject in self.bus.subjects.announcement_subjects():
            await self.bus.subscribe(
                subject, Codec[AgentAnnouncement](AgentAnnouncement), on_announcement
            )
        await self.bus.subscribe(
            self.bus.subjects.rollcall(), Codec[Rollcall](Rollcall), on_rollcall
        )

    async def _spawn(self, name: str, *args: str) -> Proc:
        log = self.tmp / f"{name}.log"
        with log.open("ab") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, *args, stdout=out, stderr=out, start_new_session=True
            )
        handle = Proc(name, proc, log)
        self.procs.append(handle)
        return handle

    async def supervisor(
        self, name: str = "sup-a", *, wait_active: bool = True, **overrides: Any
    ) -> Proc:
        cfg = {**FAST, **overrides, "supervisor_id": name}
        proc = await self._spawn(
            name, "-m", "natsfleet.cli.main", "supervisor", "--nats", self.server.url,
            "--prefix", self.prefix, "--config-json", json.dumps(cfg), "-v",
        )  # fmt: skip
        if wait_active:
            await self.active(name, timeout_s=15)
        return proc

    async def active(self, name: str, timeout_s: float) -> None:
        """Wait until supervisor `name` starts a term (it sends a Rollcall)."""
        queue = self.terms.setdefault(name, asyncio.Queue())
        await asyncio.wait_for(queue.get(), timeout_s)

    async def agent(
        self, instance: str, *, skills: str = "echo", capacity: int = 4, hb_s: float = 0.05
    ) -> Proc:
        future: asyncio.Future[Hello] = asyncio.get_running_loop().create_future()
        self.hellos[instance] = future
        proc = await self._spawn(
            instance, str(MINI_AGENT), "--url", self.server.url, "--prefix", self.prefix,
            "--instance", instance, "--skills", skills, "--capacity", str(capacity),
            "--hb", str(hb_s),
        )  # fmt: skip
        await asyncio.wait_for(future, 15)
        return proc

    async def close(self) -> None:
        for proc in self.procs:
            await proc.kill()


@pytest.fixture
async def fleet(nats_server: NatsServer, prefix: str, tmp_path: Path) -> AsyncIterator[Fleet]:
    bus = Bus(BusConfig(url=nats_server.url, prefix=prefix), role="test", instance="t")
    await bus.connect()
    await bus.provision()
    fleet = Fleet(nats_server, prefix, tmp_path, bus)
    await fleet.watch()
    try:
        yield fleet
    finally:
        await fleet.close()
        await bus.close()
