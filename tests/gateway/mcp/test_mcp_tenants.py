"""An MCP caller's tenant (`NAME:TENANT=SECRET`, gateway/keys.py): each call's
task is for it, and a keyed call never reaches another tenant's task."""

import asyncio

from natsfleet.protocols import TaskState
from tests.gateway.mcp.conftest import CALLER, SECRET, GatewayFleet
from tests.gateway.mcp.test_mcp_gateway import IDEM, TASK_ID, mcp_client
from tests.procs import until_agents


async def test_a_keys_tenant_is_on_its_tasks_and_hides_another_tenants(gw: GatewayFleet) -> None:
    # The same caller name and secret on two replicas, under two tenants (as
    # after moving a key to another tenant): each replica submits for its own.
    _, _, acme, beta = await asyncio.gather(
        gw.supervisor(),
        gw.echo("e1"),
        gw.gateway("gw-acme", env={"NATSFLEET_GATEWAY_KEYS": f"{CALLER}:acme={SECRET}"}),
        gw.gateway("gw-beta", env={"NATSFLEET_GATEWAY_KEYS": f"{CALLER}:beta={SECRET}"}),
    )
    await until_agents(gw.client, 1)
    async with mcp_client(acme.url) as on_acme, mcp_client(beta.url) as on_beta:
        first = await on_acme.call_tool("echo", {"text": "a"}, meta={IDEM: "k-1"})
        assert not first.is_error, first
        assert first.meta is not None
        task_id = first.meta[TASK_ID]
        assert (await gw.client.status(task_id, timeout_s=5)).tenant == "acme"

        # The same keyed call under the other tenant: "not found", no task id shown.
        other = await on_beta.call_tool("echo", {"text": "a"}, meta={IDEM: "k-1"})
        assert other.is_error and other.structured_content is not None
        assert other.structured_content["state"] == "not_found", other
        assert task_id not in str(other.model_dump())
        # Its own calls are its tenant's.
        own = await on_beta.call_tool("echo", {"text": "b"})
        assert not own.is_error and own.meta is not None
        assert (await gw.client.status(own.meta[TASK_ID], timeout_s=5)).tenant == "beta"
    # The refused keyed call submitted nothing: two tasks in all.
    done = await gw.client.list(TaskState.COMPLETED)
    assert len([t for t in done if t.skill == "echo"]) == 2
