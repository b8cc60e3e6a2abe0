"""`natsfleet up`: restarts after kill -9, gives up at the restart limit, leaves no orphans."""

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from natsfleet.deploy import Launcher, PrefixedWriter, load_fleet
from natsfleet.deploy.state import read_state
from natsfleet.protocols import TaskState
from tests.deploy.helpers import (
    AGENT_ENV,
    FAST_SUPERVISOR,
    alive,
    free_port,
    kill_group,
    poll,
    run_task,
    wait_for_instances,
    write_fleet,
)


def fleet_body(port: int, prefix: str) -> str:
    return f"""
[nats]
url = "nats://127.0.0.1:{port}"
prefix = "{prefix}"
embedded = true
store_dir = "js"
{FAST_SUPERVISOR}
[[agents]]
agent = "tests.fleet_agents:EchoAgent"
name = "echo"
instances = 2
drain_grace_s = 1
{AGENT_ENV}

[up]
backoff_initial_s = 0.1
stop_margin_s = 3
"""


@pytest.mark.timeout(90)
async def test_up_restarts_a_killed_child_and_stops_cleanly_on_sigint(
    tmp_path: Path, prefix: str
) -> None:
    port = free_port()
    fleet = write_fleet(tmp_path, fleet_body(port, prefix))
    state_dir = tmp_path / "state"
    url = f"nats://127.0.0.1:{port}"
    with (tmp_path / "up.out").open("wb") as out:
        up = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "natsfleet.cli.main",
            "up",
            str(fleet),
            "--state-dir",
            str(state_dir),
            stdout=out,
            stderr=out,
            start_new_session=True,  # so the test can send SIGINT like a terminal would
        )
    pids: set[int] = set()
    try:

        def running() -> object:
            state = read_state(state_dir)
            ok = state and all(c.state == "running" for c in state.children)
            return state if ok else None

        state = await poll(running, 30, "every child running")
        assert state.server_pid and alive(state.server_pid)
        await wait_for_instances(url, prefix, "echo", 2)
        event = await run_task(url, prefix, "echo", {"text": "hi"})
        assert event.state == TaskState.COMPLETED, event

        victim = next(c for c in state.children if c.name == "echo-1")
        assert victim.pid is not None
        pids |= {c.pid for c in state.children if c.pid} | {state.server_pid}
        os.kill(victim.pid, signal.SIGKILL)

        def restarted() -> object:
            s = read_state(state_dir)
            child = s and next(c for c in s.children if c.name == "echo-1")
            return child if child and child.restarts == 1 and child.state == "running" else None

        child = await poll(restarted, 20, "echo-1 restarted")
        assert child.pid != victim.pid
        pids.add(child.pid or 0)

        ps_cmd = [sys.executable, "-m", "natsfleet.cli.main", "ps", "--json"]
        ps = subprocess.run(
            [*ps_cmd, "--state-dir", str(state_dir)],
            capture_output=True,
            text=True,
            check=True,
        )
        rows = {r["name"]: r for r in json.loads(ps.stdout)["processes"]}
        assert rows["echo-1"]["restarts"] == 1 and rows["echo-1"]["pid"] == child.pid
        assert set(rows) == {"nats-server", "supervisor-1", "echo-1", "echo-2"}

        event = await run_task(url, prefix, "echo", {"text": "again"})
        assert event.state == TaskState.COMPLETED, event

        up.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(up.wait(), 30) == 0
        left = [pid for pid in pids if alive(pid)]
        assert not left, f"orphans: {left}"
        assert read_state(state_dir) is None
        log = (tmp_path / "up.out").read_text()
        assert "echo-1 exited with signal SIGKILL; restart 1" in log
        assert log.index("stopping 2 agent") < log.index("stopping 1 supervisor")
    finally:
        if up.returncode is None:
            kill_group(up.pid)
            await up.wait()
        for pid in pids:
            kill_group(pid)


async def test_gives_up_after_the_restart_intensity_with_a_clear_message(
    tmp_path: Path, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A stand-in `natsfleet` that crashes at once: only the launcher is under test.
    port = free_port()
    body = fleet_body(port, prefix).replace("instances = 2", "instances = 1")
    body = body.replace("backoff_initial_s = 0.1", "backoff_initial_s = 0.01\nmax_restarts = 2")
    fleet_file = load_fleet(write_fleet(tmp_path, body))
    lines: list[str] = []
    crash = [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"]
    launcher = Launcher(
        fleet_file,
        sink=lambda name, line: lines.append(f"{name}: {line}"),
        state_dir=tmp_path / "state",
        command=crash,
    )
    caplog.set_level(logging.INFO, logger="natsfleet.deploy")
    run = asyncio.create_task(launcher.run())
    try:
        await poll(
            lambda: all(c.state.state == "failed" for c in launcher.children) and launcher.children,
            20,
            "every child to be given up",
        )
        for child in launcher.children:
            assert child.state.restarts == 2
            assert "has been restarted 2 times within 60 s" in child.state.message
            assert "giving up on it" in child.state.message
        assert "echo-1: boom" in lines
        assert any("giving up" in r.getMessage() for r in caplog.records)
    finally:
        launcher.stop()
        await asyncio.wait_for(run, 20)


def test_prefixed_writer_colours_only_when_asked() -> None:
    import io

    plain, coloured = io.StringIO(), io.StringIO()
    PrefixedWriter(plain, color=False, width=6)("echo-1", "hello")
    PrefixedWriter(coloured, color=True, width=6)("echo-1", "hello")
    assert plain.getvalue() == "echo-1 | hello\n"
    assert coloured.getvalue().startswith("\x1b[") and "hello" in coloured.getvalue()
