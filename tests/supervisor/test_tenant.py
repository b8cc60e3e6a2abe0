"""A task's tenant travels from the submit to the skill, to its sub-tasks and to
a workflow's steps, where the LLM governor's per-tenant limits use it (docs/llm.md)."""

from typing import Any

import msgspec
import pytest

from natsfleet.agents import Agent, TaskContext, skill
from natsfleet.protocols import InvalidValue
from tests.agents.driver import running
from tests.fleet_agents import FAST


class Nothing(msgspec.Struct, frozen=True):
    pass


class Who(msgspec.Struct, frozen=True, kw_only=True):
    tenant: str | None
    child: str | None = None


class TenantAgent(Agent):
    name = "tenants"
    config = FAST

    @skill
    async def who(self, input: Nothing, ctx: TaskContext) -> Who:
        return Who(tenant=ctx.tenant)

    @skill
    async def parent(self, input: Nothing, ctx: TaskContext) -> Who:
        child = await ctx.call("who", Nothing(), Who, timeout_s=20)
        return Who(tenant=ctx.tenant, child=child.tenant)


WHO = """
name = "asking"

[steps.ask]
skill = "who"

[output]
tenant = "${steps.ask.output.tenant}"
"""


async def test_the_tenant_reaches_the_skill_its_children_and_the_record(fleet: Any) -> None:
    workflows = fleet.tmp / "workflows"
    workflows.mkdir()
    (workflows / "asking.toml").write_text(WHO)
    await fleet.supervisor(workflows=[str(workflows)])
    async with running(TenantAgent(), fleet.server.url, fleet.prefix, instance_id="t-1"):
        client = fleet.client
        own = await client.submit("parent", Nothing(), tenant="acme", queue=True)
        assert await client.result(own, Who, timeout_s=20) == Who(tenant="acme", child="acme")
        assert (await client.status(own)).tenant == "acme"
        run = await client.submit(workflow="asking", input={}, tenant="acme")
        done = await client.wait(run, timeout_s=20)
        assert msgspec.json.decode(bytes(done.output)) == {"tenant": "acme"}  # its step's
        none = await client.submit("who", Nothing(), queue=True)
        assert await client.result(none, Who, timeout_s=20) == Who(tenant=None)
        with pytest.raises(InvalidValue):  # an id, checked before anything is sent
            await client.submit("who", Nothing(), tenant="a.b")
