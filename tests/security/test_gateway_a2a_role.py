"""The A2A gateway run by `natsfleet up` behind the generated `nats-auth` config:
its own NKey user (`gateway-a2a`) does a send, a stream, a resubscribe, a cancel
and an approval, and is refused the rest. Two replicas with the same caller
name under two tenants show that a caller sees no task of another tenant."""

import contextlib
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    SendMessageConfiguration,
    SendMessageRequest,
    SubscribeToTaskRequest,
    TaskNotFoundError,
    TaskState,
)

from natsfleet.deploy import load_fleet
from natsfleet.deploy.targets import generate, write_files
from natsfleet.process import NatsServer
from natsfleet.protocols import Bucket, idempotency_scope
from tests.deploy.helpers import FAST_SUPERVISOR, free_port
from tests.gateway.a2a.conftest import GATE, Gateway
from tests.gateway.a2a.test_a2a import Seen, client_for, message, read, result_of
from tests.gateway.mcp.conftest import until_logged
from tests.procs import AgentProcs
from tests.security.conftest import AGENT_ENV, AuthFleet, Probe, wait_for_instances_as_client

FLEET = """
workflows = "workflows"

[nats]
url = "nats://127.0.0.1:{port}"
prefix = "{prefix}"
store_dir = "js"
credentials_dir = "auth/creds"
{supervisor}
[[agents]]
agent = "tests.fleet_agents:EchoAgent"
name = "echo"
instances = 1
{env}

[[gateways]]
protocol = "a2a"
port = {acme_port}
keys_file = "keys-acme.txt"

[[gateways]]
protocol = "a2a"
name = "gateway-beta"
port = {beta_port}
keys_file = "keys-beta.txt"
"""
SECRET = "a2a-gateway-test-secret-0123456789"


@pytest.fixture
async def a2a_fleet(
    tmp_path: Path, prefix: str
) -> AsyncIterator[tuple[AuthFleet, Gateway, Gateway]]:
    """`natsfleet up` of a fleet with two A2A gateways on a server running the
    generated auth config: the same caller `ops`, tenant acme on one, beta on the other."""
    port, acme_port, beta_port = free_port(), free_port(), free_port()
    fleet_path = tmp_path / "fleet.toml"
    fleet_path.write_text(
        FLEET.format(
            port=port,
            prefix=prefix,
            supervisor=FAST_SUPERVISOR,
            env=AGENT_ENV,
            acme_port=acme_port,
            beta_port=beta_port,
        )
    )
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "gate.toml").write_text(GATE)
    (tmp_path / "keys-acme.txt").write_text(f"ops:acme={SECRET}\n")
    (tmp_path / "keys-beta.txt").write_text(f"ops:beta={SECRET}\n")
    write_files(generate("nats-auth", load_fleet(fleet_path)), tmp_path / "auth")
    server = NatsServer(port=port, jetstream=False, config_file=tmp_path / "auth" / "nats.conf")
    await server.start()
    procs = AgentProcs(server.url, prefix, tmp_path / "logs")
    fleet = AuthFleet(server, prefix, tmp_path / "auth" / "creds", tmp_path / "x.log", procs)
    up_cmd = [sys.executable, "-m", "natsfleet.cli.main", "up", str(fleet_path)]
    up = await procs.spawn("up", [*up_cmd, "--state-dir", str(tmp_path / "state")])
    try:
        acme = await until_logged(up, re.compile(r"gateway-a2a-1 .*listening on (http://\S+/)"))
        beta = await until_logged(up, re.compile(r"gateway-beta-1 .*listening on (http://\S+/)"))
        await wait_for_instances_as_client(fleet, "echo")
        yield fleet, Gateway(up, acme), Gateway(up, beta)
    finally:
        for bus in fleet.buses:
            await bus.close()
        # SIGTERM first: `up` stops its gateways, agent and supervisor; a
        # SIGKILL alone (aclose) would leave them running, orphaned.
        up.terminate()
        with contextlib.suppress(TimeoutError):
            await up.wait(30)
        await procs.aclose()
        await server.stop()


async def test_the_a2a_gateway_runs_as_its_own_user_for_its_callers_tenant(
    a2a_fleet: tuple[AuthFleet, Gateway, Gateway],
) -> None:
    fleet, acme, beta = a2a_fleet
    client = await fleet.client()
    async with httpx.AsyncClient() as http:  # the probe needs no key, and reports NATS
        health = await http.get(acme.url + "healthz")
    assert (health.status_code, health.json()) == (200, {"nats": True})

    async with client_for(acme, SECRET, streaming=False) as blocking:
        [reply] = [
            r
            async for r in blocking.send_message(
                SendMessageRequest(message=message("echo", {"text": "hi"}))
            )
        ]
    assert reply.task.status.state == TaskState.TASK_STATE_COMPLETED, reply
    assert result_of(reply.task)["text"] == "hi"
    # The key's tenant travels with the task (Submit.tenant).
    assert (await client.status(reply.task.id, timeout_s=5)).tenant == "acme"

    async with client_for(acme, SECRET) as ops, client_for(beta, SECRET) as ops_beta:
        seen = Seen()
        streamed = SendMessageRequest(message=message("stream", {"chunks": 5, "gap_ms": 0}))
        await read(ops.send_message(streamed), seen)
        assert seen.text == "t0 t1 t2 t3 t4 " and seen.states[-1] == TaskState.TASK_STATE_COMPLETED

        # An approval: input-required, answered by a message.
        gate = message(None, {"x": 1})
        gate.metadata.update({"workflow": "gate"})
        seen = Seen()
        await read(ops.send_message(SendMessageRequest(message=gate)), seen)
        assert seen.states[-1] == TaskState.TASK_STATE_INPUT_REQUIRED and seen.task is not None
        answer = message(None, {"text": "approved"})
        answer.task_id = seen.task.id
        answered = Seen()
        await read(ops.send_message(SendMessageRequest(message=answer)), answered)
        assert answered.result is not None and answered.result["text"] == "approved"

        # A running task: resubscribed by its caller, not there for the same
        # caller name under another tenant (get, resubscribe, cancel), canceled.
        request = SendMessageRequest(
            message=message("sleep", {"ms": 20_000, "steps": 2}),
            configuration=SendMessageConfiguration(return_immediately=True),
        )
        stream = ops.send_message(request)
        task_id = (await anext(stream)).task.id
        await stream.aclose()
        resubscribed = ops.subscribe(SubscribeToTaskRequest(id=task_id))
        assert (await anext(resubscribed)).task.id == task_id
        await resubscribed.aclose()
        for other_tenant in (
            ops_beta.get_task(GetTaskRequest(id=task_id)),
            ops_beta.cancel_task(CancelTaskRequest(id=task_id)),
            anext(ops_beta.subscribe(SubscribeToTaskRequest(id=task_id))),
        ):
            with pytest.raises(TaskNotFoundError):
                await other_tenant
        canceled = await ops.cancel_task(CancelTaskRequest(id=task_id))
        assert canceled.status.state == TaskState.TASK_STATE_CANCELED

    log = fleet.procs.procs[-1].log()  # `natsfleet up`'s, every child's lines prefixed
    assert "a2a send by ops: task" in log and "tenant acme" in log
    assert "a2a approve by ops" in log and "a2a cancel by ops" in log
    assert "Permissions Violation" not in log, log

    s = fleet.subjects
    forbidden = [
        s.control("dlq"),  # the DLQ is the operator's
        s.control("list"),
        s.hello("echo", "forged"),  # never an agent
        s.result("echo", "forged"),
        f"$KV.{s.bucket(Bucket.STATE)}.forged",  # never task state
        f"$KV.{s.bucket(Bucket.IDEM)}.{idempotency_scope('cli')}.forged",  # not the CLI's keys
    ]
    probe = await Probe.connect(fleet, "gateway-a2a", "gateway")
    try:
        for subject in forbidden:
            await probe.nc.publish(subject, b"{}")
            assert "publish" in (await probe.violation()).lower(), subject
    finally:
        await probe.nc.close()
