"""`natsfleet up --detach`, `natsfleet down` and `natsfleet ps`, over the state file."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import msgspec

from natsfleet.deploy.errors import DeployError, NotRunning
from natsfleet.deploy.state import LOG_FILE, UpState, pid_alive, read_state

_POLL_S = 0.05


class ProcessRow(msgspec.Struct, frozen=True, kw_only=True):
    """One line of `natsfleet ps`."""

    name: str
    kind: str
    pid: int | None
    restarts: int
    state: str
    uptime_s: float | None
    message: str


def running_state(state_dir: Path) -> UpState | None:
    """The state of a live `natsfleet up` for this directory, else None."""
    state = read_state(state_dir)
    if state is None or not pid_alive(state.launcher_pid):
        return None
    return state


def ps_rows(state: UpState, now_s: float | None = None) -> list[ProcessRow]:
    now_s = time.time() if now_s is None else now_s
    rows = []
    if state.server_pid:
        rows.append(
            ProcessRow(
                name="nats-server",
                kind="server",
                pid=state.server_pid,
                restarts=0,
                state="running" if pid_alive(state.server_pid) else "gone",
                uptime_s=round(now_s - state.started_at_s, 1),
                message=state.nats_url,
            )
        )
    for child in state.children:
        running = child.state in ("running", "stopping") and child.started_at_s
        rows.append(
            ProcessRow(
                name=child.name,
                kind=child.kind,
                pid=child.pid,
                restarts=child.restarts,
                state=child.state,
                uptime_s=round(now_s - child.started_at_s, 1)
                if running and child.started_at_s
                else None,
                message=child.message,
            )
        )
    return rows


def start_detached(
    fleet_path: Path, state_dir: Path, *, command: Sequence[str], timeout_s: float = 30.0
) -> UpState:
    """Start `natsfleet up` in its own session, its output in `<state dir>/up.log`.

    Returns once every child has started (or the launcher has died).

    Raises:
        DeployError: a fleet is already up here, or the launcher did not come up.
    """
    existing = running_state(state_dir)
    if existing is not None:
        raise DeployError(
            f"a fleet is already up for {state_dir} (launcher pid {existing.launcher_pid}); "
            "`natsfleet down` first"
        )
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / LOG_FILE
    argv = [*command, "up", str(fleet_path), "--state-dir", str(state_dir), "--no-color"]
    with log_path.open("ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own command line
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
        )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DeployError(f"`natsfleet up` exited with {proc.returncode}; see {log_path}")
        state = read_state(state_dir)
        if state is not None and state.launcher_pid == proc.pid and _all_started(state):
            return state
        time.sleep(_POLL_S)
    raise DeployError(f"the fleet did not start within {timeout_s:g} s; see {log_path}")


def _all_started(state: UpState) -> bool:
    return all(child.state != "starting" for child in state.children)


def bring_down(state_dir: Path, *, timeout_s: float = 120.0) -> UpState:
    """SIGTERM the launcher (it drains agents, then supervisors, then the server) and wait.

    Raises:
        NotRunning: no live launcher for this state directory.
        DeployError: it is still running after `timeout_s`.
    """
    state = running_state(state_dir)
    if state is None:
        raise NotRunning(f"no fleet is up for {state_dir}")
    os.kill(state.launcher_pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(state.launcher_pid):
            return state
        time.sleep(_POLL_S)
    raise DeployError(
        f"launcher pid {state.launcher_pid} still running after {timeout_s:g} s; "
        f"see {state_dir / LOG_FILE}"
    )


def detach_command() -> list[str]:
    return [sys.executable, "-m", "natsfleet.cli.main"]
