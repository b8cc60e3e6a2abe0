"""A remote A2A agent (tests/a2a_remote.py, a real a2a-sdk server process) as
tools of the agent loop, in an agent instance driven by the loop tests' model
server and stand-in supervisor (docs/interop.md, "Using a remote A2A agent as
a tool")."""

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from natsfleet.agents.a2a import (
    A2AAgent,
    A2AResult,
    CardUnavailable,
    RemoteProtocolError,
    RemoteSkill,
    RemoteTaskEnded,
)
from natsfleet.agents.a2a.card import TEXT_INPUT_SCHEMA
from natsfleet.agents.loop import ToolContext
from natsfleet.process import NatsServer
from natsfleet.protocols import Assign, Result, decode_raw, new_task_id, new_token, to_raw
from tests.a2a_agents import A2ALoopAgent, AskRemote, Told
from tests.a2a_client.conftest import start_remote
from tests.agents.driver import driver
from tests.llm.wire import WireServer
from tests.loop.conftest import MODEL, Loops, llm_config, wire
from tests.procs import AgentProcs

pytestmark = pytest.mark.asyncio
__all__ = ["wire"]


CTX = ToolContext(key="t/0/0/0", task_id="t", attempt=1, token="tok", name="shout")


class RemoteLoops(Loops):
    agent_class = A2ALoopAgent


@pytest.fixture
async def loops(nats_server: NatsServer, prefix: str) -> AsyncIterator[RemoteLoops]:
    async with contextlib.AsyncExitStack() as stack:
        d = await stack.enter_async_context(driver(nats_server.url, prefix))
        yield RemoteLoops(d, nats_server.url, prefix, stack)


def tool_messages(request_body: dict[str, Any]) -> list[str]:
    """The tool results a request carried to the model (OpenAI's wire)."""
    return [m["content"] for m in request_body["messages"] if m.get("role") == "tool"]


async def ask(loops: RemoteLoops, ask: AskRemote) -> Result:
    assign = Assign(
        task_id=new_task_id(), token=new_token(), attempt=1, skill="ask", input=to_raw(ask)
    )
    await loops.d.request_raw(loops.d.subjects.assign("a2a-looper", "l1"), assign)
    outcome = await loops.d.outcome(assign.token, timeout_s=20)
    assert isinstance(outcome, Result), outcome
    return outcome


async def test_remote_skills_are_tools_and_their_failures_are_results(
    loops: RemoteLoops, wire: WireServer, tmp_path: Path
) -> None:
    async with AgentProcs(loops.url, loops.prefix, tmp_path / "procs") as procs:
        remote = await start_remote(procs, tmp_path)
        await loops.instance("l1", llm_config(wire))

        # The card's skills are the tools, described and with text arguments.
        async with A2AAgent(remote.url) as agent:
            tools = {t.spec.name: t for t in agent.tools()}
            assert list(tools) == ["shout", "refuse", "linger", "greet"]
            assert tools["shout"].spec.parameters == TEXT_INPUT_SCHEMA
            assert "Shout a text back" in tools["shout"].spec.description
            assert "Shouter" in tools["shout"].spec.description
            # An agent may answer with a message and no task: that is the result.
            greeting = await tools["greet"].run({"text": "you"}, CTX)
            assert greeting == A2AResult(task_id="", text="hello, you")
            # A rejected task (a skill it does not have) says so, with why.
            with pytest.raises(RemoteTaskEnded, match="rejected: no skill 'nope'"):
                await agent.run(RemoteSkill(id="nope", name="nope", description=""), {"text": ""})
        # A result over the bound is refused, not held.
        async with A2AAgent(remote.url, max_result_chars=3) as tiny:
            with pytest.raises(RemoteProtocolError, match="over 3 characters"):
                await tiny.as_tool("shout").run({"text": "hello"}, CTX)

        # One turn: a completed task, a failed one, one past the tool's timeout.
        wire.script(
            MODEL,
            wire.tool_calls(
                ("shout", {"text": "hello", "data": {"n": 2}}),
                ("refuse", {"text": "please"}),
                ("linger", {"text": "wait"}),
                ("shout", {"data": "not an object"}),
            ),
            wire.ok("done"),
        )
        outcome = await ask(loops, AskRemote(prompt="go", url=remote.url, timeout_s=1.0))
        assert decode_raw(outcome.output, Told).text == "done"
        shouted, refused, lingered, bad = tool_messages(wire.requests[1].body)
        result = json.loads(shouted)
        assert A2AResult(**result) == A2AResult(
            task_id=result["task_id"], text="HELLO", data={"shout": "HELLO", "data": {"n": 2}}
        )
        assert json.loads(refused)["error"].startswith("RemoteTaskEnded: A2A agent")
        assert "failed: refused: this agent never does that" in refused
        assert "no result within 1.0 s" in json.loads(lingered)["error"]
        assert "do not fit the schema" in json.loads(bad)["error"]
        # The call given up on cancelled its remote task.
        [lingering] = await remote.until("start linger", 1)
        assert await remote.until("cancel", 1) == [lingering.split()[-1]]

        # The remote agent killed mid-call: an error result at once, not a hang.
        wire.script(MODEL, wire.tool_call("linger", {"text": "wait"}), wire.ok("carried on"))
        started = time.monotonic()
        asking = ask(loops, AskRemote(prompt="go", url=remote.url, timeout_s=30.0))
        pending = asyncio.ensure_future(asking)
        await remote.until("start linger", 2)
        await remote.kill()
        outcome = await pending
        assert time.monotonic() - started < 15  # far below the tool's 30 s
        assert decode_raw(outcome.output, Told).text == "carried on"
        [cut] = tool_messages(wire.requests[3].body)
        assert json.loads(cut)["error"].startswith("RemoteUnavailable: A2A agent")

        # A dead agent's card: a typed error naming it.
        with pytest.raises(CardUnavailable, match=remote.url):
            await A2AAgent(remote.url).open()
