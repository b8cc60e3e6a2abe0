"""The generated supervisord config and Procfile really run the fleet."""

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from natsfleet.deploy import load_fleet
from natsfleet.deploy.targets import Options, generate, write_files
from natsfleet.process.server import NatsServer
from natsfleet.protocols import TaskState
from tests.deploy.helpers import (
    AGENT_ENV,
    FAST_SUPERVISOR,
    alive,
    kill_group,
    poll,
    run_task,
    wait_for_instances,
    write_fleet,
)

BIN = Path(sys.executable).parent


def fleet_body(url: str, prefix: str) -> str:
    return f"""
[nats]
url = "{url}"
prefix = "{prefix}"
{FAST_SUPERVISOR}
[[agents]]
agent = "tests.fleet_agents:EchoAgent"
name = "echo"
instances = 2
drain_grace_s = 1
{AGENT_ENV}

[up]
stop_margin_s = 3
"""


def _generate(target: str, tmp_path: Path, url: str, prefix: str) -> Path:
    fleet_file = load_fleet(write_fleet(tmp_path, fleet_body(url, prefix)))
    out = tmp_path / target
    write_files(generate(target, fleet_file, Options(command=str(BIN / "natsfleet"))), out)
    return out


def _clean_env() -> dict[str, str]:
    # supervisord imports its own `supervisor` package: keep the repo off its path.
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


@pytest.mark.timeout(90)
async def test_supervisord_runs_the_generated_fleet(
    tmp_path: Path, nats_server: NatsServer, prefix: str
) -> None:
    out = _generate("supervisord", tmp_path, nats_server.url, prefix)
    conf = str(out / "supervisord.conf")
    ctl = [str(BIN / "supervisorctl"), "-c", conf]
    subprocess.run([str(BIN / "supervisord"), "-c", conf], check=True, env=_clean_env())
    pidfile = out / "supervisord.pid"
    daemon = int(await poll(lambda: pidfile.exists() and pidfile.read_text().strip(), 10, "pid"))
    child_pids: list[int] = []
    try:
        await wait_for_instances(nats_server.url, prefix, "echo", 2)
        event = await run_task(nats_server.url, prefix, "echo", {"text": "under supervisord"})
        assert event.state == TaskState.COMPLETED, event
        status = subprocess.run([*ctl, "status"], capture_output=True, text=True).stdout
        assert "natsfleet:echo-1" in status and "natsfleet:supervisor-1" in status, status
        pids = subprocess.run([*ctl, "pid", "all"], capture_output=True, text=True).stdout
        child_pids = [int(p) for p in pids.split() if p.isdigit() and int(p) > 0]
        assert len(child_pids) == 3, pids
        subprocess.run([*ctl, "shutdown"], check=True, capture_output=True)
        await poll(lambda: not alive(daemon), 30, "supervisord to exit")
        assert not [p for p in child_pids if alive(p)]
    finally:
        for pid in [daemon, *child_pids]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.timeout(90)
async def test_honcho_runs_the_generated_procfile(
    tmp_path: Path, nats_server: NatsServer, prefix: str
) -> None:
    out = _generate("procfile", tmp_path, nats_server.url, prefix)
    with (tmp_path / "honcho.out").open("wb") as log:
        honcho = await asyncio.create_subprocess_exec(
            str(BIN / "honcho"),
            "start",
            cwd=out,
            env=_clean_env(),
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    try:
        await wait_for_instances(nats_server.url, prefix, "echo", 2)
        event = await run_task(nats_server.url, prefix, "echo", {"text": "under honcho"})
        assert event.state == TaskState.COMPLETED, event
        honcho.send_signal(signal.SIGTERM)
        await asyncio.wait_for(honcho.wait(), 30)
        text = (tmp_path / "honcho.out").read_text()
        assert "echo-1" in text and "supervisor-1" in text
        # Every process honcho started is gone (it signals each one's group).
        leftovers = subprocess.run(
            ["pgrep", "-f", f"--prefix {prefix}|{prefix}"], capture_output=True, text=True
        )
        assert leftovers.stdout.strip() == "", leftovers.stdout
    finally:
        if honcho.returncode is None:
            kill_group(honcho.pid)
            await honcho.wait()
