"""The demo's fleet: an embedded nats-server, a supervisor and one process per agent.

Every process is a child of the demo, logs to `<run dir>/logs/<name>.log`,
and is stopped on the way out: SIGTERM first (agents drain, the supervisor
releases its lease), SIGKILL for anything still running after the grace
period, then the nats-server. Readiness is each process's own message (the
supervisor's Rollcall, each agent's Hello), never a sleep.
"""

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from types import TracebackType

from natsfleet.bus import Bus, BusConfig, Incoming
from natsfleet.client import FleetClient
from natsfleet.process import NatsServer, shared_gomaxprocs
from natsfleet.protocols import AgentAnnouncement, Codec, Hello, Message, NatsFleetError, Rollcall

DEMO_AGENTS = ("researcher", "writer", "editor", "booker")
#: The shipped workflow files (content.toml, travel.toml).
EXAMPLE_WORKFLOWS = Path(__file__).resolve().parents[1] / "examples" / "workflows"
_ANNOUNCEMENT = Codec[AgentAnnouncement](AgentAnnouncement)
_ROLLCALL = Codec[Rollcall](Rollcall)
_STOP_GRACE_S = 10.0


class FleetStartError(Exception):
    """A fleet process exited or stayed silent while starting."""

    def __init__(self, name: str, log_path: Path, detail: str) -> None:
        self.name = name
        self.log_path = log_path
        super().__init__(f"{name} {detail}; see {log_path}")


class Child:
    """One child process of the demo."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, log_path: Path) -> None:
        self.name = name
        self.proc = proc
        self.log_path = log_path

    def signal(self, sig: signal.Signals) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)


class DemoFleet:
    """`async with DemoFleet(run_dir) as fleet:` a running fleet; `fleet.client` talks to it."""

    def __init__(
        self,
        run_dir: Path,
        *,
        env: dict[str, str] | None = None,
        supervisor_config: dict[str, object] | None = None,
        agents: tuple[str, ...] = DEMO_AGENTS,
        agent_env: dict[str, dict[str, str]] | None = None,
        agent_args: tuple[str, ...] = (),
    ) -> None:
        self.run_dir = run_dir
        self.agents = agents
        self.agent_env = dict(agent_env or {})
        self.agent_args = agent_args  # appended to every `natsfleet agent run`
        self.supervisor_config: dict[str, object] = {
            "supervisor_id": "demo-supervisor",
            "registry_warmup_s": 0.2,
            **(supervisor_config or {}),
        }
        self.log_dir = run_dir / "logs"
        self.data_dir = run_dir / "data"
        self.server = NatsServer(store_dir=run_dir / "jetstream", gomaxprocs=shared_gomaxprocs())
        self.extra_env = dict(env or {})
        self.children: list[Child] = []
        self._bus: Bus | None = None
        self._hellos: dict[str, asyncio.Future[Hello]] = {}
        self._rollcall: asyncio.Future[Rollcall] | None = None

    @property
    def bus(self) -> Bus:
        assert self._bus is not None, "the fleet is not started"
        return self._bus

    @property
    def client(self) -> FleetClient:
        return FleetClient(self.bus)

    async def __aenter__(self) -> "DemoFleet":
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self, timeout_s: float = 60.0) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        await self.server.start()
        self._bus = Bus(BusConfig(url=self.server.url), role="demo", instance=str(os.getpid()))
        await self._bus.connect()
        await self._bus.provision()
        await self._listen()
        loop = asyncio.get_running_loop()
        self._rollcall = loop.create_future()
        supervisor = await self._spawn("supervisor", self._supervisor_cmd())
        await self._ready(supervisor, self._rollcall, timeout_s)
        await asyncio.gather(*(self.start_agent(name, timeout_s=timeout_s) for name in self.agents))

    async def start_agent(
        self,
        name: str,
        instance_id: str | None = None,
        *,
        timeout_s: float = 60.0,
        args: tuple[str, ...] = (),
    ) -> Child:
        """Start one more instance of agent `name` (with `args` for `agent run`);
        returns once the supervisor lists it."""
        instance_id = instance_id or f"{name}-1"
        future: asyncio.Future[Hello] = asyncio.get_running_loop().create_future()
        self._hellos[instance_id] = future
        cmd = [sys.executable, "-m", "natsfleet.cli.main", "agent", "run", name,
               "--nats", self.server.url, "--instance", instance_id, *self.agent_args,
               *args]  # fmt: skip
        child = await self._spawn(instance_id, cmd, self.agent_env.get(name))
        await self._ready(child, future, timeout_s)
        await self._registered(child, future.result(), timeout_s)
        return child

    async def _registered(self, child: Child, hello: Hello, timeout_s: float) -> None:
        """Wait until the supervisor lists the instance: its Hello reaching us says
        nothing of when the supervisor handled it, and a workflow submitted before
        then is refused as 'no live agent offers' its first skill."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            if child.proc.returncode is not None:
                raise FleetStartError(
                    child.name, child.log_path, f"exited ({child.proc.returncode})"
                )
            with contextlib.suppress(NatsFleetError, TimeoutError):
                known = await self.client.agents(timeout_s=2.0)
                if any(
                    info.instance_id == hello.instance_id
                    and info.incarnation == hello.incarnation
                    and info.alive
                    for info in known
                ):
                    return
            await asyncio.sleep(0.05)
        raise FleetStartError(child.name, child.log_path, "not registered by the supervisor")

    def _supervisor_cmd(self) -> list[str]:
        return [sys.executable, "-m", "natsfleet.cli.main", "supervisor", "--nats",
                self.server.url, "--config-json", json.dumps(self.supervisor_config),
                "--workflows", str(EXAMPLE_WORKFLOWS)]  # fmt: skip

    async def _listen(self) -> None:
        async def on_announcement(message: AgentAnnouncement, _: Incoming) -> Message | None:
            future = self._hellos.get(getattr(message, "instance_id", ""))
            if isinstance(message, Hello) and future is not None and not future.done():
                future.set_result(message)
            return None

        async def on_rollcall(message: Rollcall, _: Incoming) -> Message | None:
            if self._rollcall is not None and not self._rollcall.done():
                self._rollcall.set_result(message)
            return None

        for subject in self.bus.subjects.announcement_subjects():
            await self.bus.subscribe(subject, _ANNOUNCEMENT, on_announcement)
        await self.bus.subscribe(self.bus.subjects.rollcall(), _ROLLCALL, on_rollcall)
        await self.bus.nc.flush()

    async def _spawn(self, name: str, cmd: list[str], extra: dict[str, str] | None = None) -> Child:
        env = {
            **os.environ,
            "NATSFLEET_DATA_DIR": str(self.data_dir.resolve()),
            "NATSFLEET_LOG": os.environ.get("NATSFLEET_LOG", "INFO"),
            **self.extra_env,
            **(extra or {}),
        }
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("ab") as out:
            proc = await asyncio.create_subprocess_exec(
                *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out, env=env
            )
        child = Child(name, proc, log_path)
        self.children.append(child)
        return child

    async def _ready(
        self, child: Child, announced: "asyncio.Future[Hello] | asyncio.Future[Rollcall]",
        timeout_s: float,
    ) -> None:  # fmt: skip
        exited = asyncio.ensure_future(child.proc.wait())
        try:
            done, _ = await asyncio.wait(
                {announced, exited}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            exited.cancel()
        if announced in done:
            return
        if exited in done:
            raise FleetStartError(child.name, child.log_path, f"exited ({child.proc.returncode})")
        raise FleetStartError(child.name, child.log_path, f"not ready after {timeout_s:.0f} s")

    async def stop(self) -> list[str]:
        """Stop agents, then the supervisor, then NATS. Returns who had to be killed."""
        killed: list[str] = []
        agents = [c for c in self.children if c.name != "supervisor"]
        supervisors = [c for c in self.children if c.name == "supervisor"]
        for group in (agents, supervisors):
            for child in group:
                child.signal(signal.SIGTERM)
            for child in group:
                try:
                    await asyncio.wait_for(child.proc.wait(), _STOP_GRACE_S)
                except TimeoutError:
                    child.signal(signal.SIGKILL)
                    await child.proc.wait()
                    killed.append(child.name)
        if self._bus is not None:
            with contextlib.suppress(Exception):
                await self._bus.close()
            self._bus = None
        await self.server.stop()
        return killed
