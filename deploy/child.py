"""One supervised child process of `natsfleet up`.

Each child runs in its own process group (its own session), so a stop
reaches whatever it started too, and Ctrl-C in the terminal reaches only the
launcher, which then stops children in order rather than all at once.
"""

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence

from natsfleet.deploy.logsink import LineSink
from natsfleet.deploy.plan import ProcessSpec
from natsfleet.deploy.restart import RestartIntensity
from natsfleet.deploy.state import ChildState
from natsfleet.process.loop import wait_event

log = logging.getLogger(__name__)

# After the process exits, how long its output may still drain from the pipe
# (a grandchild could hold the pipe open; its group was signalled too).
_PIPE_DRAIN_S = 1.0
_EXEC_FAILED = 127  # the shell's code for "command not found"


class Child:
    """Starts a process, restarts it when it crashes, stops it on request.

    Restart policy is Erlang's `transient`: exit code 0 (a drained agent that
    someone asked to leave) is not restarted; a crash or a signal is, within
    the restart intensity.
    """

    def __init__(
        self,
        spec: ProcessSpec,
        *,
        command: Sequence[str],
        env: Mapping[str, str],
        cwd: str,
        intensity: RestartIntensity,
        sink: LineSink,
        on_change: Callable[[], None],
    ) -> None:
        self.spec = spec
        self._argv = [*command, *spec.args]
        self._env = {**env, **spec.env}
        self._cwd = cwd
        self._intensity = intensity
        self._sink = sink
        self._on_change = on_change
        self._proc: asyncio.subprocess.Process | None = None
        self._stopping = asyncio.Event()
        self.state = ChildState(name=spec.name, kind=spec.kind.value, group=spec.group)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc and self._proc.returncode is None else None

    def _set(self, state: str, message: str = "", **fields: object) -> None:
        self.state.state = state
        self.state.message = message
        for name, value in fields.items():
            setattr(self.state, name, value)
        self._on_change()

    async def run(self) -> None:
        """Run until stopped, until it exits 0, or until the restart limit is hit."""
        while not self._stopping.is_set():
            code = await self._run_once()
            if self._stopping.is_set():
                break
            if code == 0:
                self._set("exited", "exited 0 (drained); not restarted", exit_code=0)
                log.info("%s exited 0; not restarted", self.spec.name)
                return
            if not self._intensity.allow_restart():
                message = (
                    f"{self.spec.name} exited with {_describe(code)} and has been restarted "
                    f"{self._intensity.max_restarts} times within "
                    f"{self._intensity.within_s:g} s (up.max_restarts / up.within_s): "
                    "giving up on it; the rest of the fleet keeps running"
                )
                self._set("failed", message, exit_code=code)
                log.error("%s", message)
                return
            delay_s = self._intensity.backoff_s()
            self.state.restarts += 1
            self._set("backoff", f"restart in {delay_s:g} s", exit_code=code)
            log.warning(
                "%s exited with %s; restart %d in %.2g s",
                self.spec.name,
                _describe(code),
                self.state.restarts,
                delay_s,
            )
            await wait_event(self._stopping, delay_s)
        self._set("stopped", exit_code=self.state.exit_code)

    async def _run_once(self) -> int:
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self._argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=self._env,
                cwd=self._cwd,
                start_new_session=True,
            )
        except OSError as exc:
            # Counts as a crash: the restart limit ends a hopeless loop.
            log.error("%s: cannot start %s: %s", self.spec.name, self._argv[0], exc)
            return _EXEC_FAILED
        self._set("running", pid=self._proc.pid, started_at_s=time.time(), exit_code=None)
        assert self._proc.stdout is not None
        pump = asyncio.create_task(self._pump(self._proc.stdout))
        try:
            code = await self._proc.wait()
        finally:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(pump), _PIPE_DRAIN_S)
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        self.state.pid = None
        return code

    async def _pump(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self._sink(self.spec.name, line.decode(errors="replace").rstrip("\r\n"))

    async def stop(self) -> None:
        """SIGTERM the process group; SIGKILL it after `stop_timeout_s`. Idempotent."""
        self._stopping.set()
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        self._set("stopping", f"SIGTERM, SIGKILL after {self.spec.stop_timeout_s:g} s")
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), self.spec.stop_timeout_s)
        except TimeoutError:
            log.warning(
                "%s did not stop within %g s: SIGKILL", self.spec.name, self.spec.stop_timeout_s
            )
            _signal_group(proc.pid, signal.SIGKILL)
            await proc.wait()
        # Anything the child left behind in its group goes with it.
        _signal_group(proc.pid, signal.SIGKILL)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _describe(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
    return f"code {code}"
