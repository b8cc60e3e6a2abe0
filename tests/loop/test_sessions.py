"""Sessions (docs/tools.md, "Sessions"): a loop continues its task's session,
on any instance; compaction keeps a session within its budget; two tasks of
one session are serialised; `natsfleet sessions list|show|delete`."""

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from click.testing import Result as Result_

from natsfleet.agents.loop import Journal, TurnRecord
from natsfleet.agents.loop.session import SessionBusyError, SessionFencedError, SessionLog
from natsfleet.agents.loop.session_admin import SessionInfo, show_session
from natsfleet.agents.loop.session_records import Conversation
from natsfleet.agents.session_config import SessionConfig
from natsfleet.bus import BusConfig
from natsfleet.cli.main import cli as cli_main
from natsfleet.process import NatsServer
from natsfleet.protocols import (
    Accept,
    Assign,
    Bucket,
    Result,
    decode_raw,
    new_task_id,
    new_token,
    to_raw,
)
from tests.agents.driver import driver
from tests.llm.wire import WireServer
from tests.loop.conftest import MODEL, Loops, llm_config
from tests.session_agents import BUDGET_TOKENS, ChatAgent, Said, Say


class Chats(Loops):
    """A driver plus in-process ChatAgent instances on one fleet."""

    agent_class = ChatAgent

    async def assign(self, instance_id: str, prompt: str, session: str) -> Assign:
        assign = Assign(
            task_id=new_task_id(),
            token=new_token(),
            attempt=1,
            skill="chat",
            input=to_raw(Say(prompt=prompt)),
            session_id=session,
        )
        reply = await self.d.request_raw(self.d.subjects.assign("chatter", instance_id), assign)
        assert isinstance(reply, Accept), reply
        return assign

    async def said(self, assign: Assign) -> Said:
        outcome = await self.d.outcome(assign.token, timeout_s=20)
        assert isinstance(outcome, Result), outcome
        return decode_raw(outcome.output, Said)

    async def chat(self, instance_id: str, prompt: str, session: str) -> Said:
        return await self.said(await self.assign(instance_id, prompt, session))

    async def journal(self, task_id: str) -> dict[str, Any]:
        journal = Journal(
            self.d.bus.js,
            bucket=self.d.subjects.bucket(Bucket.JOURNAL),
            task_id=task_id,
            token="reader",
            attempt=0,
            instance_id="test",
        )
        await journal.load()
        return dict(journal.entries)

    async def session(self, session_id: str) -> SessionInfo:
        bucket = self.d.subjects.bucket(Bucket.SESSIONS)
        info = await show_session(self.d.bus.js, bucket, session_id)
        assert info is not None
        return info


@pytest.fixture
async def chats(nats_server: NatsServer, prefix: str) -> AsyncIterator[Chats]:
    async with contextlib.AsyncExitStack() as stack:
        d = await stack.enter_async_context(driver(nats_server.url, prefix))
        yield Chats(d, nats_server.url, prefix, stack)


@pytest.fixture
async def wire() -> AsyncIterator[WireServer]:
    server = await WireServer().start()
    try:
        yield server
    finally:
        await server.stop()


def contents(body: dict[str, Any]) -> list[str]:
    """The text of every message a request carried (OpenAI wire)."""
    return [str(m.get("content") or "") for m in body["messages"]]


async def test_a_second_task_on_another_instance_continues_the_session(
    chats: Chats, wire: WireServer, effects: Path
) -> None:
    await chats.instance("c1", llm_config(wire))
    await chats.instance("c2", llm_config(wire))
    wire.script(
        MODEL,
        wire.tool_call("record", {"step": "flight NYC Tuesday"}),
        wire.ok("Booked the Tuesday flight to New York."),
        wire.ok("Moved it to Wednesday."),
    )
    first = await chats.chat("c1", "Book me a flight to New York next Tuesday", "trip-1")
    assert first.instance_id == "c1" and first.model_calls == 2
    second = await chats.chat("c2", "make it Wednesday instead", "trip-1")
    assert second.instance_id == "c2" and second.text == "Moved it to Wednesday."
    # The model of the second task saw the first task's whole exchange, then the follow-up.
    seen = contents(wire.requests[2].body)
    assert seen[-1] == "make it Wednesday instead"
    assert "Book me a flight to New York next Tuesday" in seen
    assert "recorded flight NYC Tuesday" in seen  # the tool result
    assert "Booked the Tuesday flight to New York." in seen
    info = await chats.session("trip-1")
    assert [len(e.messages) for e in info.conversation.exchanges] == [4, 2]
    assert info.holder is None and info.conversation.compactions == 0
    # Another session is another conversation.
    wire.script(MODEL, wire.ok("Hello."))
    await chats.chat("c1", "hi", "other")
    assert contents(wire.requests[3].body) == ["hi"]


async def test_compaction_keeps_the_session_within_budget_and_records_the_summary(
    chats: Chats, wire: WireServer
) -> None:
    await chats.instance("c1", llm_config(wire))
    prompts = [f"Request {i}: " + " ".join(["word"] * 50) for i in range(3)]
    wire.script(
        MODEL,
        wire.ok("one"),
        wire.ok("two"),
        wire.ok("three"),
        wire.ok("SUMMARY: the user sent requests 0 and 1."),
        wire.ok("four"),
    )
    for prompt in prompts:
        await chats.chat("c1", prompt, "long")
        info = await chats.session("long")
        assert info.conversation.tokens <= BUDGET_TOKENS, info.conversation.tokens
    conv: Conversation = info.conversation
    assert conv.compactions == 1 and conv.summary is not None
    assert conv.summary.text == "SUMMARY: the user sent requests 0 and 1."
    assert conv.summary.covers == 2 and [e.n for e in conv.exchanges] == [2]
    # The summary request carried the compacted exchanges; the summary is journaled.
    summary_request = wire.requests[3].body
    assert "Request 0" in json.dumps(summary_request) and "Request 2" not in json.dumps(
        summary_request
    )
    journal = await chats.journal(conv.summary.task_id)
    assert isinstance(journal["0.summary"], TurnRecord)
    assert conv.summary.task_id == conv.exchanges[0].task_id  # the task that compacted
    # The next task sees the summary (in its system prompt) and the kept exchange.
    await chats.chat("c1", "and now?", "long")
    body = wire.requests[4].body
    assert "SUMMARY: the user sent requests 0 and 1." in json.dumps(body["messages"][0])
    assert contents(body)[-3:] == [prompts[2], "three", "and now?"]


async def test_compaction_with_the_offline_provider(chats: Chats) -> None:
    await chats.instance("c1")  # no key: offline
    for i in range(4):
        said = await chats.chat("c1", f"Note {i}: " + " ".join(["pencil"] * 40), "pad")
        assert said.text.startswith("[offline]")
        conv = (await chats.session("pad")).conversation
        assert conv.tokens <= BUDGET_TOKENS
    assert conv.compactions >= 1 and conv.summary is not None
    assert conv.summary.offline and conv.summary.text.startswith("[offline]")


async def test_two_tasks_of_one_session_are_serialised(
    chats: Chats,
    wire: WireServer,
    effects: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A holds the session while its tool waits at the gate; B, started meanwhile
    on another instance, waits; its first model call comes after A's last and
    sees A's whole exchange."""
    caplog.set_level(logging.INFO, logger="natsfleet.agents.loop.session")
    await chats.instance("c1", llm_config(wire))
    await chats.instance("c2", llm_config(wire))
    wire.script(MODEL, wire.tool_call("gate", {}), wire.ok("A done"), wire.ok("B done"))
    a = await chats.assign("c1", "task A", "shared")
    await chats.d.wait_for(lambda: effects.exists() or None, 10)  # A is in its tool
    b = await chats.assign("c2", "task B", "shared")
    await chats.d.wait_for(
        lambda: any(f"task {b.task_id} waits" in r.getMessage() for r in caplog.records) or None,
        10,
    )
    assert wire.count(MODEL) == 1  # B made no model call while A holds the session
    (tmp_path / "gate").touch()
    said_a, said_b = await chats.said(a), await chats.said(b)
    assert (said_a.text, said_b.text) == ("A done", "B done")
    assert [contents(r.body)[-1] for r in wire.requests] == ["task A", "open", "task B"]
    seen = contents(wire.requests[2].body)  # [1] is A's tool-calling answer
    assert (seen[0], *seen[2:]) == ("task A", "open", "A done", "task B")
    conv = (await chats.session("shared")).conversation
    assert [e.task_id for e in conv.exchanges] == [a.task_id, b.task_id]


async def cli(chats: Chats, *args: str) -> Result_:
    """The CLI in this process (in a thread: it runs its own event loop); what it
    does is not about processes, and a process start costs ~2 s on a loaded machine."""
    command = [*args, "--nats", chats.url, "--prefix", chats.prefix]
    # The CLI quiets some loggers for its own output (cli/connect.py): not for later tests.
    levels = {
        name: logger.level
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    try:
        return await asyncio.to_thread(CliRunner().invoke, cli_main, command)
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


async def test_sessions_cli_lists_shows_and_deletes(chats: Chats, wire: WireServer) -> None:
    await chats.instance("c1", llm_config(wire))
    wire.script(MODEL, wire.ok("first answer"), wire.ok("second answer"))
    await chats.chat("c1", "first question", "s-one")
    await chats.chat("c1", "second question", "s-two")
    listed = await cli(chats, "sessions", "list", "--json")
    assert listed.exit_code == 0, listed.output
    ids = {s["session_id"] for s in json.loads(listed.stdout)}
    assert ids == {"s-one", "s-two"}
    shown = await cli(chats, "sessions", "show", "s-one")
    assert shown.exit_code == 0, shown.output
    assert "user: first question" in shown.stdout and "assistant: first answer" in shown.stdout
    assert "second" not in shown.stdout
    deleted = await cli(chats, "sessions", "delete", "s-one")
    assert deleted.exit_code == 0, deleted.output
    assert (await cli(chats, "sessions", "show", "s-one")).exit_code == 2
    assert (await cli(chats, "sessions", "delete", "s-one")).exit_code == 2
    bad = await cli(chats, "sessions", "show", "not a.valid id")
    assert bad.exit_code == 2 and "session id" in bad.output
    listed = await cli(chats, "sessions", "list", "--json")
    assert {s["session_id"] for s in json.loads(listed.stdout)} == {"s-two"}


def session_log(
    bus: Any, task_id: str, attempt: int, lock_ttl_s: float = 5.0, wait_s: float = 0.2
) -> SessionLog:
    return SessionLog(
        bus.js,
        bucket=bus.subjects.bucket(Bucket.SESSIONS),
        session_id="locked",
        task_id=task_id,
        token=new_token(),
        attempt=attempt,
        instance_id="i",
        config=SessionConfig(budget_tokens=100, lock_ttl_s=lock_ttl_s, wait_s=wait_s),
    )


async def test_the_session_lock_is_fenced_and_a_stale_one_taken_over(bus: Any) -> None:
    """A retry of the holder's task takes the lock at once and fences the older
    attempt; another task waits, then (busy) fails retryable; a lock nobody
    refreshes for lock_ttl_s is taken over, and its holder's writes are refused."""
    await bus.provision()
    task = new_task_id()
    first = session_log(bus, task, 1)
    await first._acquire(None)  # held; never refreshed nor released (a frozen instance)
    retry = session_log(bus, task, 2)
    await retry._acquire(None)  # the task's retry takes it at once
    with pytest.raises(SessionFencedError):
        await first.write_entry("conv", Conversation())
    with pytest.raises(SessionBusyError) as busy:
        async with session_log(bus, new_task_id(), 1).hold(None):
            pass
    assert busy.value.retryable and busy.value.holder == task
    with pytest.raises(SessionFencedError):  # an older attempt never takes it back
        async with session_log(bus, task, 1).hold(None):
            pass
    # The retry's instance dies: nobody refreshes its lock.
    stale = session_log(bus, new_task_id(), 1, lock_ttl_s=0.3, wait_s=5.0)
    async with stale.hold(5.0):
        assert stale.waited_s >= 0.3
        with pytest.raises(SessionFencedError):
            await retry.write_entry("conv", Conversation())
        await stale.write_entry("conv", Conversation(next_n=7))
    info = await show_session(bus.js, bus.subjects.bucket(Bucket.SESSIONS), "locked")
    assert info is not None and info.holder is None and info.conversation.next_n == 7


async def test_the_session_id_travels_from_submit_to_the_loop(
    nats_server: NatsServer, prefix: str, wire: WireServer
) -> None:
    """Through a real (in-process) supervisor: FleetClient.submit(session=) and
    `natsfleet submit --session`; a bad id is refused before anything is sent."""
    import msgspec

    from natsfleet.client import FleetClient
    from natsfleet.protocols import InvalidValue
    from natsfleet.supervisor import Supervisor, SupervisorConfig
    from tests.supervisor.conftest import FAST

    sup = Supervisor(
        msgspec.convert({**FAST, "supervisor_id": "sup-s"}, SupervisorConfig),
        BusConfig(url=nats_server.url, prefix=prefix),
    )
    running = asyncio.create_task(sup.run())
    try:
        await asyncio.wait_for(sup.active.wait(), 15)
        async with contextlib.AsyncExitStack() as stack:
            d = await stack.enter_async_context(driver(nats_server.url, prefix, results=False))
            chats = Chats(d, nats_server.url, prefix, stack)
            await chats.instance("c1", llm_config(wire))
            wire.script(MODEL, wire.ok("Tuesday it is."), wire.ok("Wednesday, then."))
            client = FleetClient(d.bus)
            first = await client.submit("chat", Say(prompt="fly Tuesday"), session="trip-9")
            assert (await client.result(first, Said, timeout_s=20)).text == "Tuesday it is."
            submitted = await cli(
                chats, "submit", "chat", "--input", '{"prompt": "Wednesday"}',
                "--session", "trip-9", "--wait",
            )  # fmt: skip
            assert submitted.exit_code == 0, submitted.output
            assert contents(wire.requests[1].body) == ["fly Tuesday", "Tuesday it is.", "Wednesday"]
            with pytest.raises(InvalidValue):
                await client.submit("chat", Say(prompt="x"), session="no.dots")
    finally:
        sup.shutdown()
        await asyncio.wait_for(running, 15)


def test_the_offline_policy_answers_the_latest_request_of_a_session() -> None:
    """Earlier exchanges (their tool calls and results) are history: the offline
    policy picks tools for the newest request, and a correction is no request."""
    from natsfleet.agents.llm.providers.offline_tools import tool_turn
    from natsfleet.agents.llm.types import ChatMessage, LLMRequest, ToolCall
    from natsfleet.agents.loop.tools import FunctionTool
    from tests.loop_agents import add, record

    tools = tuple(t.spec for t in (record, add) if isinstance(t, FunctionTool))
    earlier = (
        ChatMessage(role="user", content="record step: one"),
        ChatMessage(role="assistant", tool_calls=(ToolCall(id="c0", name="record", arguments={}),)),
        ChatMessage(role="tool", content="recorded one", tool_call_id="c0"),
        ChatMessage(role="assistant", content="[offline] Done: record step: one"),
    )
    follow_up = ChatMessage(role="user", content="add a: 2 and b: 3")
    text, calls = tool_turn(LLMRequest(messages=(*earlier, follow_up), tools=tools))
    assert [c.name for c in calls] == ["add"], text
    answered = (
        *earlier,
        follow_up,
        ChatMessage(role="assistant", tool_calls=calls),
        ChatMessage(role="tool", content="5", tool_call_id=calls[0].id),
    )
    text, again = tool_turn(LLMRequest(messages=answered, tools=tools))
    assert again == () and text.startswith("[offline] Done: add a: 2 and b: 3")
    assert "- add: 5" in text and "recorded one" not in text
    corrected = (
        *answered,
        ChatMessage(role="assistant", content="[offline] Done"),
        ChatMessage(role="user", content="That answer is not valid (record it). Reply..."),
    )
    text, after = tool_turn(LLMRequest(messages=corrected, tools=tools))
    assert after == () and "add a: 2 and b: 3" in text


async def test_a_task_waiting_for_a_session_holds_no_slot(
    chats: Chats,
    wire: WireServer,
    effects: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Capacity 4: A holds the session in its tool, three more tasks of the session
    wait; a fifth task (another session) is still accepted, and runs."""
    caplog.set_level(logging.INFO, logger="natsfleet.agents.loop.session")
    await chats.instance("c1", llm_config(wire))
    wire.script(MODEL, wire.tool_call("gate", {}), wire.ok("C done"), wire.ok("A done"))
    wire.script(MODEL, *(wire.ok("B done") for _ in range(3)))
    a = await chats.assign("c1", "task A", "busy")
    await chats.d.wait_for(lambda: effects.exists() or None, 10)
    waiting = [await chats.assign("c1", f"task B{i}", "busy") for i in range(3)]
    await chats.d.wait_for(
        lambda: sum(" waits" in r.getMessage() for r in caplog.records) >= 3 or None, 10
    )
    c = await chats.assign("c1", "task C", "elsewhere")  # Accept: 3 slots were given up
    assert (await chats.said(c)).text == "C done"
    (tmp_path / "gate").touch()
    assert (await chats.said(a)).text == "A done"
    assert [(await chats.said(b)).text for b in waiting] == ["B done"] * 3
