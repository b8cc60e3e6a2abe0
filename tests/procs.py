"""Start agent instances as real subprocesses, and always clean them up.

```python
async with AgentProcs(nats_server.url, prefix, tmp_path) as procs:
    agent = await procs.start("tests.fleet_agents:EchoAgent", instance_id="echo-1")
    ...
    agent.terminate()
    assert await agent.wait(5) == 0
```
Leaving the block SIGKILLs whatever still runs (and waits for it), so no
process outlives its test. Each process logs to `<log_dir>/<instance>.log`.
"""

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

#: The repository root: on a subprocess's PYTHONPATH so `tests.fleet_agents` imports.
REPO_ROOT = Path(__file__).resolve().parents[1]


def agent_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment plus the repository root on PYTHONPATH."""
    env = dict(os.environ)
    paths = [str(REPO_ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.setdefault("NATSFLEET_LOG", "INFO")
    env.update(extra or {})
    return env


class AgentProcess:
    """One `natsfleet agent run` subprocess."""

    def __init__(self, proc: asyncio.subprocess.Process, instance_id: str, log_path: Path):
        self.proc = proc
        self.instance_id = instance_id
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, sig: signal.Signals) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)

    def terminate(self) -> None:
        self.signal(signal.SIGTERM)

    async def wait(self, timeout_s: float) -> int:
        """The exit code; raises TimeoutError if it is still running after `timeout_s`."""
        return await asyncio.wait_for(self.proc.wait(), timeout_s)

    async def kill(self) -> None:
        self.signal(signal.SIGCONT)  # a stopped process must be able to die
        self.signal(signal.SIGKILL)
        await self.proc.wait()


class AgentProcs:
    """Starts agent subprocesses against one fleet and kills them all at exit."""

    def __init__(self, url: str, prefix: str, log_dir: Path) -> None:
        self.url = url
        self.prefix = prefix
        self.log_dir = log_dir
        self.procs: list[AgentProcess] = []
        self._count = 0

    async def start(
        self,
        spec: str,
        *,
        instance_id: str | None = None,
        capacity: int | None = None,
        heartbeat_s: float | None = None,
        grace_s: float | None = None,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> AgentProcess:
        """Start `natsfleet agent run SPEC`; it is ready once its Hello arrives."""
        self._count += 1
        instance_id = instance_id or f"i{self._count}-{os.getpid()}"
        cmd = [sys.executable, "-m", "natsfleet.cli.main", "agent", "run", spec]
        cmd += ["--nats", self.url, "--prefix", self.prefix, "--instance", instance_id]
        for flag, value in (
            ("--capacity", capacity),
            ("--heartbeat-s", heartbeat_s),
            ("--grace-s", grace_s),
        ):
            if value is not None:
                cmd += [flag, str(value)]
        cmd += list(args)
        return await self.spawn(instance_id, cmd, env)

    async def start_supervisor(
        self,
        name: str = "sup",
        config: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
    ) -> AgentProcess:
        """Start `natsfleet supervisor` with `config` (SupervisorConfig fields as JSON).

        Wait for its Rollcall (supervisor_id == name) to know it is active.
        """
        cmd = [sys.executable, "-m", "natsfleet.cli.main", "supervisor"]
        cmd += ["--nats", self.url, "--prefix", self.prefix]
        cmd += ["--config-json", json.dumps({**(config or {}), "supervisor_id": name}), "-v"]
        return await self.spawn(name, cmd, env)

    async def spawn(
        self, name: str, cmd: list[str], env: dict[str, str] | None = None
    ) -> AgentProcess:
        """Start any command, logged to `<log_dir>/<name>.log` and killed at exit."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("ab") as out:
            proc = await asyncio.create_subprocess_exec(
                *cmd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=agent_env(env),
                cwd=REPO_ROOT,
            )
        process = AgentProcess(proc, name, log_path)
        self.procs.append(process)
        return process

    async def aclose(self) -> None:
        for process in self.procs:
            await process.kill()

    async def __aenter__(self) -> "AgentProcs":
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def until_agents(client: Any, count: int, timeout_s: float = 20.0) -> None:
    """Wait until the supervisor's registry lists `count` live instances.

    `client` is a FleetClient; until a supervisor answers, requests fail with
    NoResponders/RequestTimeout, which only means "not yet".
    """
    from natsfleet.protocols import NatsFleetError

    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            if len(await client.agents(timeout_s=1)) >= count:
                return
        except NatsFleetError:
            pass
        assert asyncio.get_running_loop().time() < deadline, "agents never registered"
        await asyncio.sleep(0.05)
