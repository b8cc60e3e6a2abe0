"""Agent instances as real OS processes (`natsfleet agent run ...`), a real
nats-server, and the test standing in for the supervisor."""

import asyncio
import sys
import time
from pathlib import Path

import pytest

from natsfleet.process import NatsServer
from natsfleet.protocols import (
    Accept,
    Failure,
    FailureKind,
    Reject,
    RejectCode,
    Result,
    decode_raw,
)
from tests.agents.driver import Driver, driver
from tests.fleet_agents import Slept, Worked
from tests.procs import REPO_ROOT, AgentProcs, agent_env

ECHO = "tests.fleet_agents:EchoAgent"
RECORDER = "tests.fleet_agents:ConcurrencyAgent"


async def _assign_somewhere(
    d: Driver, instances: list[str], payload: dict[str, object]
) -> tuple[str, str]:
    """Least-loaded-first, like the supervisor: the (instance, token) that accepted."""
    while True:
        loads = {i: 0 for i in instances}
        for beat in d.heartbeats[-len(instances) * 2 :]:
            loads[beat.instance_id] = beat.load
        for instance in sorted(instances, key=loads.__getitem__):
            assign, reply = await d.assign("recorder", instance, "work", payload)
            if isinstance(reply, Accept):
                return instance, assign.token
            assert isinstance(reply, Reject) and reply.code == RejectCode.AT_CAPACITY
        # Both full: wait for any outcome to free a slot.
        await d.outcome_after(len(d.outcomes))


async def test_two_instances_share_load_within_capacity(
    nats_server: NatsServer, prefix: str, tmp_path: Path
) -> None:
    record_dir = tmp_path / "record"
    record_dir.mkdir()
    async with (
        driver(nats_server.url, prefix) as d,
        AgentProcs(nats_server.url, prefix, tmp_path / "logs") as procs,
    ):
        instances = ["rec-a", "rec-b"]
        for instance in instances:
            await procs.start(RECORDER, instance_id=instance)
        for instance in instances:
            await d.hello(instance, timeout_s=15)
        payload: dict[str, object] = {"ms": 150, "record_dir": str(record_dir)}
        # Over-assign one instance on purpose: the third is refused.
        replies = [(await d.assign("recorder", "rec-a", "work", payload))[1] for _ in range(3)]
        assert [type(r) for r in replies] == [Accept, Accept, Reject]
        tokens = [t for _, t in [await _assign_somewhere(d, instances, payload) for _ in range(10)]]
        outcomes = [await d.outcome(token) for token in tokens]
        workers = [decode_raw(o.output, Worked) for o in outcomes if isinstance(o, Result)]
        assert len(workers) == 10
        assert {w.instance_id for w in workers} == set(instances)
        assert max(w.concurrent for w in workers) <= 2
        for instance in instances:
            assert int((record_dir / instance).read_text()) <= 2


async def test_sigterm_finishes_short_tasks_and_hands_back_long_ones(
    nats_server: NatsServer, prefix: str, tmp_path: Path
) -> None:
    async with (
        driver(nats_server.url, prefix) as d,
        AgentProcs(nats_server.url, prefix, tmp_path / "logs") as procs,
    ):
        agent = await procs.start(ECHO, instance_id="e1", grace_s=1.0)
        await d.hello("e1", timeout_s=15)
        short, _ = await d.assign("echo", "e1", "sleep", {"ms": 400, "steps": 1})
        long, _ = await d.assign("echo", "e1", "sleep", {"ms": 30_000, "steps": 1})
        await d.heartbeat(lambda h: len(h.in_flight) == 2)
        signalled = time.monotonic()
        agent.terminate()
        await d.heartbeat(lambda h: h.draining)
        _, refused = await d.assign("echo", "e1", "sleep", {"ms": 10})
        assert isinstance(refused, Reject) and refused.code == RejectCode.DRAINING
        finished = await d.outcome(short.token)
        assert isinstance(finished, Result)
        assert decode_raw(finished.output, Slept).ms == 400
        handed = await d.outcome(long.token)
        assert isinstance(handed, Failure)
        assert handed.kind == FailureKind.HANDED_BACK and handed.retryable
        await d.wait_for(lambda: any(b.instance_id == "e1" for b in d.byes))
        assert await agent.wait(5) == 0, agent.log()
        assert time.monotonic() - signalled < 1.0 + 2.0  # grace plus start-up slack
        assert "Traceback" not in agent.log()


async def test_result_arrives_after_nats_restart(
    nats_server: NatsServer, prefix: str, tmp_path: Path
) -> None:
    async with (
        driver(nats_server.url, prefix) as d,
        AgentProcs(nats_server.url, prefix, tmp_path / "logs") as procs,
    ):
        agent = await procs.start(ECHO, instance_id="e1")
        await d.hello("e1", timeout_s=15)
        held, _ = await d.assign("echo", "e1", "sleep", {"ms": 1_500, "steps": 3})
        await d.heartbeat(lambda h: any(f.token == held.token for f in h.in_flight))
        await nats_server.restart()
        outcome = await d.outcome(held.token, timeout_s=20)
        assert isinstance(outcome, Result)
        # Heartbeats resumed and the token is reported done.
        await d.heartbeat(lambda h: held.token in h.recent, timeout_s=10)
        # The task also finishes while NATS is down: its outcome is held, then stored.
        down, _ = await d.assign("echo", "e1", "sleep", {"ms": 200, "steps": 1})
        await nats_server.stop()
        await asyncio.sleep(0.6)  # the outage: longer than the task
        await nats_server.start()
        assert isinstance(await d.outcome(down.token, timeout_s=20), Result)
        assert [o.token for o in d.outcomes].count(down.token) == 1
        assert agent.returncode is None


async def _cli(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "natsfleet.cli.main",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=agent_env(),
        cwd=REPO_ROOT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_cli_explains_missing_supervisor_and_unknown_agent(
    nats_server: NatsServer, prefix: str
) -> None:
    code, out = await _cli("agents", "--nats", nats_server.url, "--prefix", prefix)
    assert code == 2 and "no supervisor answered" in out
    code, out = await _cli("agent", "run", "no-such-agent", "--nats", nats_server.url)
    assert code == 1 and "not a built-in or installed agent" in out and "echo" in out


@pytest.fixture(autouse=True)
def _no_leftover_children() -> object:
    yield
    # AgentProcs kills its processes; this guards against a helper that forgot.
    import os

    leftovers = [pid for pid in _children(os.getpid()) if "natsfleet.cli.main" in _cmdline(pid)]
    assert not leftovers, f"agent processes left running: {leftovers}"


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
