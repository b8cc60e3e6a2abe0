"""`natsfleet gateway mcp` against the official `mcp` SDK client: real supervisor,
agent and gateway processes over a real nats-server (docs/interop.md).

One fleet serves every check of the first test (processes are the cost):
tools listed with their schemas, a skill and a workflow called, progress and
streamed output seen, typed errors for bad arguments and for a failed task,
protocol errors for unknown tools and bad keys, an abandoned call's task
canceled, the same keyed call answered by either replica, a keyed call resumed on
another replica after kill -9 of the first (one run), one client behind
a round-robin balancer, a handshake-era client, 401 without the key, 413 for
a large body, a tool appearing when an agent joins and going when it leaves
(list-changed), then SIGTERM of one replica and the loss of NATS for the other.
"""

import asyncio
import contextlib
import itertools
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx2
import pytest
from click.testing import CliRunner
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.types import INVALID_PARAMS

from natsfleet.cli.main import cli
from natsfleet.process import NatsServer
from natsfleet.protocols import TaskState
from tests.gateway.mcp.conftest import SECRET, GatewayFleet
from tests.procs import REPO_ROOT, agent_env, until_agents

IDEM = "io.natsfleet/idempotency-key"
#: Two reconnect attempts, then the connection is closed for good.
LOSE_NATS_FAST = {"NATS_MAX_RECONNECT_ATTEMPTS": "2"}
TASK_ID = "io.natsfleet/task-id"

TWICE = """
format = 2
name = "twice"
description = "Echo the text, then echo the first echo's text."
required_input = ["text"]
output = { first = "${steps.one.output.text}", second = "${steps.two.output.text}" }

[steps.one]
kind = "task"
skill = "echo"
input = { text = "${input.text}" }

[steps.two]
kind = "task"
skill = "echo"
input = { text = "${steps.one.output.text}" }
after = ["one"]
"""


async def _until_canceled(gw: GatewayFleet, skill: str, timeout_s: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not [t for t in await gw.client.list(TaskState.CANCELED) if t.skill == skill]:
        assert asyncio.get_running_loop().time() < deadline, "the task was never canceled"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def mcp_client(
    url: str, mode: str = "auto", key: str = SECRET, hooks: list[Any] | None = None
) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx2.AsyncClient(
        headers=headers, timeout=httpx2.Timeout(30, read=60), event_hooks={"request": hooks or []}
    ) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:  # type: ignore[arg-type]
            yield client


async def test_the_fleet_as_mcp_tools_through_two_replicas(
    gw: GatewayFleet, nats_server: NatsServer
) -> None:
    gw.workflow("twice", TWICE)
    # Started together: a gateway lists nothing until a supervisor answers.
    _, _, a, b, c = await asyncio.gather(
        gw.supervisor(),
        gw.echo("e1"),
        gw.gateway("gw-a", env=LOSE_NATS_FAST),
        gw.gateway("gw-b"),
        gw.gateway("gw-c"),
    )
    await until_agents(gw.client, 1)

    async with mcp_client(a.url) as client:
        # Tools: every skill with its schema from the Hello, and the workflow.
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert {"echo", "sleep", "fail", "stream", "workflow.twice"} <= set(listed)
        assert listed["echo"].input_schema["properties"]["text"] == {"type": "string"}
        assert listed["echo"].input_schema["required"] == ["text"]
        assert listed["workflow.twice"].input_schema["required"] == ["text"]

        # A skill: its output is the structured result, its JSON the text.
        echoed = await client.call_tool("echo", {"text": "hi"})
        assert not echoed.is_error, echoed
        assert echoed.structured_content is not None
        assert echoed.structured_content["text"] == "hi"
        assert echoed.meta is not None and echoed.meta[TASK_ID]

        # Progress of the task reaches the client as progress notifications.
        seen: list[tuple[float, str | None]] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append((progress, message))

        slept = await client.call_tool(
            "sleep", {"ms": 300, "steps": 3}, progress_callback=on_progress
        )
        assert not slept.is_error, slept
        assert [m for _, m in seen] == ["0% step 0", "33% step 1", "67% step 2"]
        assert [p for p, _ in seen] == [1.0, 2.0, 3.0]

        # Streamed output arrives as progress too, all of it before the result.
        streamed: list[str] = []

        async def on_text(progress: float, total: float | None, message: str | None) -> None:
            streamed.append(message or "")

        text = await client.call_tool("stream", {"chunks": 5}, progress_callback=on_text)
        assert not text.is_error, text
        assert "".join(streamed) == "t0 t1 t2 t3 t4 "

        # A client that gives up on an unkeyed call cancels its task (nobody is left
        # to take the result).
        with anyio.move_on_after(1.0):
            await client.call_tool("sleep", {"ms": 30_000, "steps": 30})
        await _until_canceled(gw, "sleep")

        # A workflow run is a tool call too.
        run = await client.call_tool("workflow.twice", {"text": "wf"})
        assert not run.is_error, run
        assert run.structured_content == {"first": "wf", "second": "wf"}

        # Arguments that break the schema: a tool error saying why, nothing submitted.
        bad = await client.call_tool("echo", {"txt": 1})
        assert bad.is_error
        assert bad.structured_content is not None
        assert bad.structured_content["error_type"] == "invalid_arguments"
        assert "'text' is a required property" in bad.structured_content["detail"]
        assert TASK_ID not in (bad.meta or {})  # no task was submitted

        # An unknown tool or a malformed idempotency key: a protocol error (-32602).
        for name, meta in (("x" * 200, None), ("nope", None), ("echo", {IDEM: "a\x00b"})):
            with pytest.raises(MCPError) as refused:
                await client.call_tool(name, {"text": "t"}, meta=meta)
            assert refused.value.code == INVALID_PARAMS, refused.value

        # A failed task: a tool error with the skill's reason.
        failed = await client.call_tool("fail", {"message": "boom", "retryable": False})
        assert failed.is_error
        assert failed.structured_content is not None
        assert failed.structured_content["state"] == "failed"
        assert "boom" in failed.structured_content["detail"]
        assert failed.meta is not None and failed.meta[TASK_ID]

        # The same key through the other replica: the same task, not a second run.
        first = await client.call_tool("echo", {"text": "once"}, meta={IDEM: "k-1"})
    async with mcp_client(b.url) as other:
        again = await other.call_tool("echo", {"text": "once"}, meta={IDEM: "k-1"})
        assert again.meta is not None and first.meta is not None
        assert again.meta[TASK_ID] == first.meta[TASK_ID]
        assert again.structured_content == first.structured_content

    # One client behind a round-robin balancer: each request to the next replica.
    ports = itertools.cycle([httpx2.URL(a.url).port, httpx2.URL(b.url).port])

    async def balance(request: httpx2.Request) -> None:
        port = next(ports)
        request.url = request.url.copy_with(port=port)
        request.headers["host"] = f"127.0.0.1:{port}"

    calls_before = [g.proc.log().count("mcp call echo by") for g in (a, b)]
    async with mcp_client(a.url, hooks=[balance]) as balanced:
        assert "echo" in {tool.name for tool in (await balanced.list_tools()).tools}
        for n in range(4):
            answer = await balanced.call_tool("echo", {"text": f"rr{n}"})
            assert answer.structured_content is not None
            assert answer.structured_content["text"] == f"rr{n}"
    calls_after = [g.proc.log().count("mcp call echo by") for g in (a, b)]
    assert all(after > before for before, after in zip(calls_before, calls_after, strict=True))

    # A handshake-era (2025-11-25) client works the same, statelessly.
    async with mcp_client(b.url, mode="legacy") as legacy:
        assert legacy.protocol_version == "2025-11-25"
        result = await legacy.call_tool("echo", {"text": "old"})
        assert result.structured_content is not None
        assert result.structured_content["text"] == "old"

    # Without the key, or with a wrong one: 401 before anything is read.
    async with httpx2.AsyncClient() as http:
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        for headers in ({}, {"Authorization": "Bearer wrong-key-0123456789"}, {"X-API-Key": "x"}):
            refused = await http.post(a.url, json=body, headers=headers)
            assert refused.status_code == 401, refused.text
            assert refused.headers["www-authenticate"].startswith("Bearer")
        # With the key, a body over the limit is refused unread.
        big = {**body, "params": {"cursor": "x" * 2_000_000}}
        too_big = await http.post(a.url, json=big, headers={"X-API-Key": SECRET})
        assert too_big.status_code == 413, too_big.text

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted
            for _ in range(3):
                yield b"x" * 1_000_000

        chunked = await http.post(a.url, content=chunks(), headers={"X-API-Key": SECRET})
        assert chunked.status_code == 413, chunked.text
        assert chunked.json() == too_big.json()  # the JSON-RPC error, code -32600
    assert "refused POST /mcp" in a.proc.log()
    # Who called what is logged (never the key).
    assert "mcp call echo by tester: task" in a.proc.log()
    assert SECRET not in a.proc.log()

    # An agent with a new skill joins: listeners hear the tool list changed.
    async with mcp_client(a.url) as client:
        async with client.listen(tools_list_changed=True) as changes:
            joined = await gw.echo("c1", "tests.fleet_agents:ConcurrencyAgent")
            await asyncio.wait_for(anext(changes), 10)
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert "work" in names
        # ... and when it leaves (drains on SIGTERM), its tool goes.
        async with client.listen(tools_list_changed=True) as changes:
            joined.terminate()
            await asyncio.wait_for(anext(changes), 10)
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert "work" not in names and "echo" in names

    # kill -9 of a replica mid-call: the same keyed call on another replica picks
    # the task up and gets its result; it ran once.
    running = asyncio.Event()

    async def started(progress: float, total: float | None, message: str | None) -> None:
        running.set()

    async def doomed_call() -> None:
        async with mcp_client(c.url) as doomed:
            await doomed.call_tool(
                "sleep", {"ms": 1500, "steps": 3}, progress_callback=started, meta={IDEM: "k-9"}
            )

    doomed = asyncio.create_task(doomed_call())
    await asyncio.wait_for(running.wait(), 10)
    await c.proc.kill()
    with contextlib.suppress(Exception):  # its connection is gone: whatever the SDK raises
        await asyncio.wait_for(doomed, 10)
    async with mcp_client(a.url) as client:
        resumed = await client.call_tool("sleep", {"ms": 1500, "steps": 3}, meta={IDEM: "k-9"})
    assert not resumed.is_error, resumed
    assert resumed.meta is not None
    record = await gw.client.status(resumed.meta[TASK_ID])
    assert record.state == TaskState.COMPLETED and record.attempts == 1, record
    # Sleep tasks so far: the progress one, the abandoned one, and this one (not two).
    sleeps = [t for t in await gw.client.list(limit=1000) if t.skill == "sleep"]
    assert len(sleeps) == 3, sleeps

    # SIGTERM stops a replica (exit 0); a replica whose NATS is gone for good exits 6.
    b.proc.signal(signal.SIGTERM)
    assert await b.proc.wait(10) == 0, b.proc.log()
    await nats_server.stop()
    assert await a.proc.wait(15) == 6, a.proc.log()
    assert "NATS connection closed for good" in a.proc.log()
    for gateway in (a, b):
        assert "Traceback" not in gateway.proc.log(), gateway.proc.log()


@pytest.mark.parametrize(
    ("keys", "why"),
    [
        ("", "no API key configured"),
        ("tester=short", "a secret is 16 to 256 printable characters"),
        # One rule for both gateways (gateway/keys.py): no dots in a name since.
        ("bad name=0123456789abcdef0", "is not [A-Za-z0-9_-]{1,64}"),
        ("nosecret", "an entry is name=secret"),
    ],
)
def test_a_gateway_refuses_to_start_without_usable_keys(keys: str, why: str) -> None:
    # Checked before NATS is reached (the URL points nowhere): exit 2, the reason on stderr.
    result = CliRunner().invoke(
        cli,
        ["gateway", "mcp", "--nats", "nats://127.0.0.1:1", "--port", "0"],
        env={"NATSFLEET_GATEWAY_KEYS": keys},
    )
    assert result.exit_code == 2, result.output
    assert why in result.output


def test_the_cli_does_not_load_the_mcp_sdk_for_other_verbs() -> None:
    # The SDK costs seconds to import: only `natsfleet gateway mcp` pays for it.
    code = "import sys, natsfleet.cli.main; sys.exit('mcp' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], env=agent_env(), cwd=REPO_ROOT, check=False)
    assert done.returncode == 0
