"""Three levels of delegation are one trace with the right parents: a model in
the `looper` agent calls the fleet skill `fan_out` as a tool; `fan_out` (the
`parent` agent) calls `echo` through `ctx.call`. Every process exports its
spans over OTLP/HTTP to a receiver in this test."""

from pathlib import Path

import pytest

from natsfleet.process import NatsServer
from tests.llm.wire import WireServer
from tests.loop.conftest import MODEL
from tests.loop.test_crash import SUPERVISOR
from tests.loop_agents import Answer, Ask
from tests.observability.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.observability.test_fleet_trace import TASK, trace_of, tracing_env, until
from tests.procs import AgentProcs, until_agents


def ancestors(span: ReceivedSpan, by_id: dict[str, ReceivedSpan]) -> list[str]:
    names = []
    while span.parent_id in by_id:
        span = by_id[span.parent_id]
        names.append(span.name)
    return names


@pytest.mark.timeout(90)
async def test_a_three_level_delegation_is_one_trace_with_the_right_parents(
    nats_server: NatsServer, prefix: str, tmp_path: Path, wire: WireServer
) -> None:
    from natsfleet.bus import Bus, BusConfig
    from natsfleet.client import FleetClient

    fleet_file = tmp_path / "fleet.toml"
    fleet_file.write_text(
        f'[llm.providers.openai]\nkind = "openai"\nbase_url = "{wire.url}/v1"\n'
        f'require_key = false\n\n[[llm.models]]\nname = "{MODEL}"\nprovider = "openai"\n'
        f'model = "{MODEL}"\ntier = "small"\n\n[llm.cache]\nenabled = false\n'
    )
    wire.script(MODEL, wire.tool_calls(("fan_out", {"texts": ["deep"]})), wire.ok("done"))
    with OtlpReceiver() as receiver:
        env = tracing_env(receiver)
        async with AgentProcs(nats_server.url, prefix, tmp_path / "logs") as procs:
            await procs.start_supervisor("sup", SUPERVISOR, env=env)
            agent_env = {**env, "NATSFLEET_FLEET_FILE": str(fleet_file)}
            for spec, instance in (
                ("tests.loop_agents:LoopAgent", "l1"),
                ("tests.fleet_agents:ParentAgent", "p1"),
                ("tests.fleet_agents:EchoAgent", "e1"),
            ):
                await procs.start(spec, instance_id=instance, heartbeat_s=0.1, env=agent_env)
            async with Bus(BusConfig(url=nats_server.url, prefix=prefix)) as bus:
                client = FleetClient(bus)
                await until_agents(client, 3)
                task_id = await client.submit("run", Ask(prompt="go deep", skills=["fan_out"]))
                answer = await client.result(task_id, Answer, timeout_s=30)
                assert answer.text == "done"

            wanted = {"invoke_agent looper", "invoke_agent parent", "invoke_agent echo"}

            def complete() -> bool:
                traces = {
                    s.trace_id for s in receiver.snapshot() if s.attributes.get(TASK) == task_id
                }
                names = {s.name for s in receiver.snapshot() if s.trace_id in traces}
                return wanted <= names

            await until(complete, 20, "the spans of all three agents")
    spans = trace_of(receiver.snapshot(), task_id)
    by_id = {s.span_id: s for s in spans}
    services = {s.service for s in spans}
    assert {"natsfleet-agent-looper", "natsfleet-agent-parent", "natsfleet-agent-echo"} <= services
    [echo] = [s for s in spans if s.name == "invoke_agent echo"]
    [parent] = [s for s in spans if s.name == "invoke_agent parent"]
    above_echo = ancestors(echo, by_id)
    above_parent = ancestors(parent, by_id)
    # echo's attempt hangs under fan_out's, which hangs under the model's tool call
    # in the looper's loop, itself under the looper's attempt: one tree, no orphans.
    assert "invoke_agent parent" in above_echo
    assert "execute_tool fan_out" in above_parent and "invoke_agent looper" in above_parent
    assert above_echo.index("invoke_agent parent") < above_echo.index("execute_tool fan_out")
    # Three tasks (the root and two sub-tasks) in the root's one trace.
    assert len({task_id, echo.attributes[TASK], parent.attributes[TASK]}) == 3
