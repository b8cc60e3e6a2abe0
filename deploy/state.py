"""The state file of a running `natsfleet up`: `<state dir>/up.json`.

Written by the launcher whenever a child changes (atomically: write, then
rename), read by `natsfleet ps` and `natsfleet down`. Removed on a clean exit.
"""

import contextlib
import os
from pathlib import Path

import msgspec

STATE_FILE = "up.json"
LOG_FILE = "up.log"


class ChildState(msgspec.Struct, kw_only=True):
    name: str
    kind: str
    group: str
    pid: int | None = None
    state: str = "starting"  # starting running backoff stopping stopped exited failed
    restarts: int = 0
    started_at_s: float | None = None  # epoch seconds of the current process start
    exit_code: int | None = None
    message: str = ""


class UpState(msgspec.Struct, kw_only=True):
    launcher_pid: int
    fleet_file: str
    nats_url: str
    prefix: str
    started_at_s: float
    server_pid: int | None = None  # the embedded nats-server, when up started one
    stopping: bool = False
    children: list[ChildState] = []


def state_path(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def write_state(state_dir: Path, state: UpState) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    target = state_path(state_dir)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(msgspec.json.format(msgspec.json.encode(state)))
    tmp.replace(target)


def read_state(state_dir: Path) -> UpState | None:
    """The state, or None when there is no (readable) state file."""
    try:
        return msgspec.json.decode(state_path(state_dir).read_bytes(), type=UpState)
    except (OSError, msgspec.DecodeError):
        return None


def remove_state(state_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        state_path(state_dir).unlink()


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
