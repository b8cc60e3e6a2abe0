"""One trace means one trace (real processes exporting over OTLP/HTTP):
an agent's batched output and progress join the task's trace, a CLI control
request carries its trace context to the supervisor, and every process's
`service.instance.id` is its own id (not a UUID the SDK made up)."""

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from natsfleet.bus import Bus, BusConfig
from natsfleet.client import FleetClient
from natsfleet.process import NatsServer
from natsfleet.protocols import Subjects, TaskState
from tests.procs import AgentProcs, agent_env, until_agents

from .otlp_receiver import OtlpReceiver, ReceivedSpan
from .test_fleet_trace import NATSFLEET, tracing_env, until

TASK = "natsfleet.task.id"
DESTINATION = "messaging.destination.name"


def cli(url: str, prefix: str, env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [NATSFLEET, *args, "--nats", url, "--prefix", prefix],
        capture_output=True, text=True, timeout=60, env=agent_env(env),
    )  # fmt: skip
    assert done.returncode == 0, (args, done.stdout, done.stderr)


def publishes_to(spans: list[ReceivedSpan], subject: str) -> list[ReceivedSpan]:
    return [s for s in spans if s.name == f"publish {subject}"]


def control_chain(spans: list[ReceivedSpan], verb: str, subject: str) -> list[ReceivedSpan]:
    """[control <verb>, its publish, the supervisor's process span] or fewer."""
    roots = [s for s in spans if s.name == f"control {verb}"]
    sent = [s for s in publishes_to(spans, subject) if roots and s.parent_id == roots[0].span_id]
    handled = [s for s in spans if sent and s.parent_id == sent[0].span_id]
    return [*roots[:1], *sent[:1], *handled[:1]]


@pytest.mark.timeout(90)
async def test_output_control_and_instance_ids_join_the_right_traces(
    nats_server: NatsServer, prefix: str, tmp_path: Path
) -> None:
    subjects = Subjects(prefix)
    with OtlpReceiver() as receiver:
        env = tracing_env(receiver)
        async with AgentProcs(nats_server.url, prefix, tmp_path) as procs:
            await procs.start_supervisor("sup-t", {"registry_warmup_s": 0.3}, env=env)
            # No --instance: the agent picks its own id, which traces must show.
            await procs.spawn(
                "echo-agent",
                [sys.executable, "-m", "natsfleet.cli.main", "agent", "run",
                 "tests.fleet_agents:EchoAgent", "--nats", nats_server.url,
                 "--prefix", prefix, "--heartbeat-s", "0.1"],
                env,
            )  # fmt: skip
            async with Bus(BusConfig(url=nats_server.url, prefix=prefix)) as bus:
                client = FleetClient(bus)
                await until_agents(client, 1)
                [info] = await client.agents()
                instance = info.instance_id
                streamed = await client.submit("stream", {"chunks": 6, "gap_ms": 30})
                progressed = await client.submit("sleep", {"ms": 300, "steps": 3})
                for task_id in (streamed, progressed):
                    assert (await client.wait(task_id, 30)).state == TaskState.COMPLETED
            await asyncio.to_thread(cli, nats_server.url, prefix, env, "status", streamed)
            await asyncio.to_thread(cli, nats_server.url, prefix, env, "agents")

            outputs = {t: subjects.output("echo", instance, t) for t in (streamed, progressed)}
            controls = {verb: subjects.control(verb) for verb in ("status", "agents")}

            def everything_exported() -> bool:
                spans = receiver.snapshot()
                return all(publishes_to(spans, s) for s in outputs.values()) and all(
                    len(control_chain(spans, verb, subject)) == 3
                    for verb, subject in controls.items()
                )

            await until(everything_exported, 30, "output and control spans")
            spans = receiver.snapshot()
            by_id = {s.span_id: s for s in spans}

            # 1. Output and progress publishes are in their task's trace, under its attempt.
            for task_id, subject in outputs.items():
                [invoke] = [
                    s
                    for s in spans
                    if s.name == "invoke_agent echo" and s.attributes[TASK] == task_id
                ]
                published = publishes_to(spans, subject)
                assert published
                for span in published:
                    assert span.trace_id == invoke.trace_id, (task_id, span)
                    parent = by_id[span.parent_id]
                    assert parent.trace_id == invoke.trace_id
                    assert parent.span_id == invoke.span_id or parent.parent_id == invoke.span_id

            # Every publish naming a task (events, output, results) is in its trace.
            for task_id in outputs:
                trace = next(s.trace_id for s in spans if s.attributes.get(TASK) == task_id)
                about = [s for s in spans if s.name.startswith("publish") and task_id in s.name]
                assert about
                assert {(s.name, s.trace_id) for s in about} == {(s.name, trace) for s in about}

            # 2. A CLI control request: client span -> publish (traceparent) -> process.
            for verb, subject in controls.items():
                root, sent, handled = control_chain(spans, verb, subject)
                assert root.service == sent.service == "natsfleet-client"
                assert handled.name == f"process {subject}"
                assert handled.service == "natsfleet-supervisor"
                assert handled.trace_id == sent.trace_id == root.trace_id
            [status] = [s for s in spans if s.name == "control status"]
            assert status.attributes["natsfleet.control.task.id"] == streamed

            # 3. service.instance.id is the process's own id.
            agent_ids = {s.instance for s in spans if s.service == "natsfleet-agent-echo"}
            supervisor_ids = {s.instance for s in spans if s.service == "natsfleet-supervisor"}
            assert agent_ids == {instance}
            assert supervisor_ids == {"sup-t"}
