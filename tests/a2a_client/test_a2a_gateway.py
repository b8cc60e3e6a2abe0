"""natsfleet's A2A client against natsfleet's own A2A server: a fleet behind
`natsfleet gateway a2a` (a real process) used as loop tools with the schemas its
card carries, and proxied into the fleet again under another skill name."""

import msgspec
import pytest

from natsfleet.agents.a2a import A2AAgent, RemoteTaskEnded
from natsfleet.agents.loop import ToolContext
from natsfleet.protocols import TaskState
from tests.gateway.a2a.conftest import KEYS, Gateways, gateways
from tests.procs import until_agents
from tests.supervisor.conftest import fleet

pytestmark = pytest.mark.asyncio
__all__ = ["fleet", "gateways"]

CTX = ToolContext(key="t/0/0/0", task_id="t", attempt=1, token="tok", name="echo")


async def test_the_fleet_gateway_as_a_remote_agent(gateways: Gateways) -> None:
    [gateway] = await gateways.up("gw")
    async with A2AAgent(gateway.url, api_key=KEYS["alice"], timeout_s=15) as remote:
        assert remote.card.key_header == "X-API-Key"
        tools = {t.spec.name: t for t in remote.tools()}
        echo = tools["echo"]
        # The card's schema (a `$ref` into `$defs`) inlined: the tool's arguments.
        assert echo.spec.parameters["type"] == "object"
        assert echo.spec.parameters["properties"]["text"] == {"type": "string"}
        # With an output schema on the card, the result is the skill's output itself.
        output = await echo.run({"text": "hi"}, CTX)
        assert output["text"] == "hi" and output["attempt"] == 1
        with pytest.raises(RemoteTaskEnded, match="failed: SkillError: nope"):
            await tools["fail"].run({"message": "nope", "retryable": False}, CTX)

    # Proxied into the same fleet under a prefix: the schemas and the output carry over.
    env = {"NATSFLEET_A2A_KEY": KEYS["bob"]}
    args = ("--skill-prefix", "remote.", "--name", "loopback")
    await gateways.procs.start(
        f"a2a:{gateway.url}", instance_id="px-gw", heartbeat_s=0.1, args=args, env=env
    )
    await until_agents(gateways.fleet.client, 2)
    client = gateways.fleet.client
    [proxy] = await client.agents("loopback")
    [echo_info] = await client.agents("echo")
    skills = {s.name: s for s in proxy.skills}
    assert skills["remote.echo"].input_schema == echo_info.skills[0].input_schema
    task = await client.submit("remote.echo", {"text": "round trip"})
    done = await client.wait(task, timeout_s=20)
    assert done.state == TaskState.COMPLETED, done
    assert msgspec.json.decode(done.output)["text"] == "round trip"
