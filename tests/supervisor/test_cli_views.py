"""What the task CLI shows, read the way a user or a script reads it: piped."""

import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from natsfleet.protocols import RemoteError, TaskState
from tests.procs import AgentProcs
from tests.supervisor.test_cli_and_expiry import cli

NATSFLEET = str(Path(sys.executable).parent / "natsfleet")


async def test_tables_keep_whole_ids_when_piped(fleet: Any) -> None:
    await fleet.supervisor()
    await fleet.agent("instance-with-a-long-name-1")
    ids = [f"a-long-task-id-that-a-script-greps-for-{'x' * 30}-{n}" for n in range(3)]
    for task_id in ids:
        await fleet.client.submit("echo", {"n": 1}, task_id=task_id)
    for task_id in ids:
        assert (await fleet.client.wait(task_id, timeout_s=15)).state == TaskState.COMPLETED
    listed = await cli(fleet, "tasks")
    assert listed.returncode == 0, listed.stderr
    for task_id in ids:
        assert task_id in listed.stdout, listed.stdout
    assert "instance-with-a-long-name-1" in listed.stdout


async def test_submit_wait_json_carries_usage(fleet: Any) -> None:
    await fleet.supervisor()
    await fleet.agent("a1")
    spec = {"n": 7, "calls": 2, "input_tokens": 120, "output_tokens": 30, "cost_usd": 0.25}
    done = await cli(fleet, "submit", "echo", "--input", json.dumps(spec), "--wait", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    final = json.loads(done.stdout.strip().splitlines()[-1])
    assert final["state"] == "completed" and final["output"] == 7
    assert final["usage"] == {
        "calls": 2,
        "input_tokens": 120,
        "output_tokens": 30,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "cost_usd": 0.25,
    }


async def test_status_and_watch_show_progress(fleet: Any, tmp_path: Path) -> None:
    await fleet.supervisor()
    async with AgentProcs(fleet.server.url, fleet.prefix, tmp_path / "agents") as procs:
        await procs.start("tests.fleet_agents:EchoAgent", instance_id="echo-1", heartbeat_s=0.1)
        # A new `ctx.progress` every second for 30 s; canceled once seen.
        task_id = await fleet.client.submit("sleep", {"ms": 30_000, "steps": 30}, queue=True)

        async def reported() -> Any:
            while True:
                try:
                    reply = await fleet.client.status_reply(task_id)
                except RemoteError:  # not admitted yet
                    await asyncio.sleep(0.05)
                    continue
                if reply.progress is not None and reply.progress.note == "step 1":
                    return reply.progress
                await asyncio.sleep(0.05)

        progress = await asyncio.wait_for(reported(), 15)
        assert progress.progress == pytest.approx(1 / 30)
        shown = await cli(fleet, "status", task_id)
        assert shown.returncode == 0, shown.stderr
        assert re.search(r"progress\s.*\d+% step \d+", shown.stdout), shown.stdout
        as_json = json.loads((await cli(fleet, "status", task_id, "--json")).stdout)
        assert as_json["progress"]["note"].startswith("step "), as_json

        watch = await asyncio.create_subprocess_exec(
            NATSFLEET, "watch", task_id, "--nats", fleet.server.url, "--prefix", fleet.prefix,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        assert watch.stdout is not None
        seen: list[str] = []

        async def until_progress() -> None:
            while line := (await watch.stdout.readline()).decode():  # type: ignore[union-attr]
                seen.append(line)
                if re.search(rf"^{task_id} progress \d+% step \d+$", line.strip()):
                    return
            raise AssertionError(f"watch ended without progress: {seen}")

        try:
            await asyncio.wait_for(until_progress(), 20)
            await fleet.client.cancel(task_id)
            rest, _ = await asyncio.wait_for(watch.communicate(), 20)
        finally:
            if watch.returncode is None:
                watch.kill()
                await watch.wait()
        assert watch.returncode == 3, seen  # canceled
        assert "canceled" in rest.decode(), rest


async def test_watching_a_task_nobody_knows_says_so_and_keeps_waiting(fleet: Any) -> None:
    await fleet.supervisor()
    watch = await asyncio.create_subprocess_exec(
        NATSFLEET, "watch", "no-such-task", "--nats", fleet.server.url, "--prefix", fleet.prefix,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert watch.stderr is not None
        line = await asyncio.wait_for(watch.stderr.readline(), 15)
        assert b"no task no-such-task is known to the supervisor" in line, line
        assert watch.returncode is None  # still watching: the task may yet be submitted
    finally:
        watch.kill()
        await watch.wait()
