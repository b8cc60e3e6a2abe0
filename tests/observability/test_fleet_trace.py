"""One task is one trace across the client, the supervisor and the agents,
exported by real processes over OTLP/HTTP; `natsfleet trace` draws it from NATS."""

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from natsfleet.bus import Bus, BusConfig
from natsfleet.client import FleetClient
from natsfleet.process import NatsServer
from natsfleet.protocols import RemoteError, TaskState
from tests.procs import AgentProcs, until_agents

from .otlp_receiver import OtlpReceiver, ReceivedSpan

NATSFLEET = str(Path(sys.executable).parent / "natsfleet")
TASK = "natsfleet.task.id"
QUESTION = '{"question": "How do leases and fencing tokens stop a deposed supervisor from acting?"}'


def tracing_env(receiver: OtlpReceiver) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "NATSFLEET_TRACE_NATS": "1",
    }


async def until(found: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not found():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def trace_of(spans: list[ReceivedSpan], task_id: str) -> list[ReceivedSpan]:
    traces = {s.trace_id for s in spans if s.attributes.get(TASK) == task_id}
    assert len(traces) == 1, traces  # every span naming the task is in one trace
    return [s for s in spans if s.trace_id in traces]


@pytest.mark.timeout(90)
async def test_a_task_is_one_trace_across_processes(
    nats_server: NatsServer, prefix: str, tmp_path: Path
) -> None:
    with OtlpReceiver() as receiver:
        env = tracing_env(receiver)
        async with AgentProcs(nats_server.url, prefix, tmp_path) as procs:
            config = {"timeouts": {"heartbeat_timeout_s": 0.6}, "registry_warmup_s": 0.3}
            await procs.start_supervisor("sup", config, env=env)
            agents = [
                await procs.start(
                    "tests.fleet_agents:EchoAgent", instance_id=f"e{n}", heartbeat_s=0.1, env=env
                )
                for n in (1, 2)
            ]
            async with Bus(BusConfig(url=nats_server.url, prefix=prefix)) as bus:
                client = FleetClient(bus)
                await until_agents(client, 2)
                submitted = subprocess.run(
                    [NATSFLEET, "submit", "echo", "--input", '{"text": "hi"}', "--wait",
                     "--json", "--timeout", "20", "--nats", nats_server.url, "--prefix", prefix],
                    capture_output=True, text=True, timeout=60, env={**procs_env(), **env},
                )  # fmt: skip
                assert submitted.returncode == 0, submitted.stderr
                task_id = next(
                    line.split('"task_id":"', 1)[1].split('"', 1)[0]
                    for line in submitted.stdout.splitlines()
                    if '"task_id":"' in line
                )
                # Each process publishes its spans on NATS in batches: poll the view.
                deadline = time.monotonic() + 15
                while True:
                    drawn = subprocess.run(
                        [NATSFLEET, "trace", task_id, "--nats", nats_server.url,
                         "--prefix", prefix],
                        capture_output=True, text=True, timeout=30,
                    )  # fmt: skip
                    if "attempt 1 echo" in drawn.stdout and "invoke_agent echo" in drawn.stdout:
                        break
                    assert time.monotonic() < deadline, (
                        drawn.returncode,
                        drawn.stdout,
                        drawn.stderr,
                    )
                    await asyncio.sleep(0.2)
                # A reassigned attempt: kill -9 the instance holding a slow task.
                slow = await client.submit("sleep", {"ms": 3000, "steps": 30})
                holder = await running_on(client, slow)
                victim = next(a for a in agents if a.instance_id == holder)
                victim.signal(signal.SIGKILL)
                event = await client.wait(slow, timeout_s=30)
                assert event.state == TaskState.COMPLETED

            services_needed = {"natsfleet-client", "natsfleet-supervisor", "natsfleet-agent-echo"}

            def task_trace_complete() -> bool:
                spans = [s for s in receiver.snapshot() if s.attributes.get(TASK) == task_id]
                traces = {s.trace_id for s in spans}
                everyone = {s.service for s in receiver.snapshot() if s.trace_id in traces}
                return services_needed <= everyone

            await until(task_trace_complete, 20, "spans from every process")
            spans = trace_of(receiver.snapshot(), task_id)
            assert {s.service for s in spans} >= services_needed
            by_id = {s.span_id: s for s in spans}
            processes = [s for s in spans if s.name.startswith("process ")]
            assert processes
            for process in processes:
                parent = by_id.get(process.parent_id)
                assert parent is not None, process
                assert parent.name == "publish " + process.name.removeprefix("process ")
            names = {s.name for s in spans}
            assert {"submit echo", "attempt 1 echo", "invoke_agent echo"} <= names

            def both_attempts() -> bool:
                mine = [s for s in receiver.snapshot() if s.attributes.get(TASK) == slow]
                return {"attempt 1 sleep", "attempt 2 sleep"} <= {s.name for s in mine}

            await until(both_attempts, 20, "both attempts of the reassigned task")
            slow_spans = trace_of(receiver.snapshot(), slow)
            [first] = [s for s in slow_spans if s.name == "attempt 1 sleep"]
            assert first.attributes["natsfleet.attempt.outcome"] == "lost"


def procs_env() -> dict[str, str]:
    from tests.procs import agent_env

    return agent_env()


async def running_on(client: FleetClient, task_id: str) -> str:
    deadline = time.monotonic() + 20
    while True:
        try:
            record = await client.status(task_id)
        except RemoteError:  # not admitted yet (still in TASKS)
            record = None
        if record is not None and record.state == TaskState.WORKING and record.instance_id:
            return record.instance_id
        assert time.monotonic() < deadline, record
        await asyncio.sleep(0.02)


@pytest.mark.timeout(90)
async def test_a_workflow_is_one_trace(
    nats_server: NatsServer, prefix: str, tmp_path: Path
) -> None:
    with OtlpReceiver() as receiver:
        env = tracing_env(receiver)
        async with AgentProcs(nats_server.url, prefix, tmp_path) as procs:
            config = {"registry_warmup_s": 0.3, "workflows": ["examples/workflows"]}
            await procs.start_supervisor("sup", config, env=env)
            for agent in ("researcher", "writer", "editor"):
                await procs.start(agent, instance_id=f"{agent}-1", heartbeat_s=0.2, env=env)
            async with Bus(BusConfig(url=nats_server.url, prefix=prefix)) as bus:
                await until_agents(FleetClient(bus), 3)
            submitted = subprocess.run(
                [NATSFLEET, "submit", "--workflow", "content", "--input", QUESTION,
                 "--wait", "--json",
                 "--timeout", "60", "--nats", nats_server.url, "--prefix", prefix],
                capture_output=True, text=True, timeout=90, env={**procs_env(), **env},
            )  # fmt: skip
            assert submitted.returncode == 0, (submitted.stdout[-2000:], submitted.stderr[-2000:])
            run_id = next(
                line.split('"task_id":"', 1)[1].split('"', 1)[0]
                for line in submitted.stdout.splitlines()
                if '"task_id":"' in line
            )

            def names() -> set[str]:
                return {
                    s.name
                    for s in receiver.snapshot()
                    if run_id in (s.attributes.get(TASK), s.attributes.get("natsfleet.workflow.id"))
                }

            wanted = {"invoke_agent researcher", "invoke_agent writer", "invoke_agent editor"}
            await until(lambda: wanted <= names(), 20, "every agent's spans")
            mine = [
                s
                for s in receiver.snapshot()
                if run_id in (s.attributes.get(TASK), s.attributes.get("natsfleet.workflow.id"))
            ]
            assert len({s.trace_id for s in mine}) == 1, {(s.name, s.trace_id) for s in mine}
            services = {s.service for s in receiver.snapshot() if s.trace_id == mine[0].trace_id}
            assert {
                "natsfleet-client",
                "natsfleet-supervisor",
                "natsfleet-agent-researcher",
                "natsfleet-agent-writer",
                "natsfleet-agent-editor",
            } <= services
