"""The loop in an agent instance against a real nats-server (journal in KV
JOURNAL) and a wire-format LLM server played by the real SDKs."""

import asyncio
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from natsfleet.agents.loop import ToolResult, ToolStarted, TurnRecord
from natsfleet.agents.loop.journal import Journal
from natsfleet.protocols import (
    Accept,
    Assign,
    Bucket,
    Codec,
    Failure,
    FailureKind,
    Progress,
    Result,
    decode_raw,
    new_task_id,
    new_token,
    to_raw,
)
from tests.llm.wire import WireServer
from tests.loop.conftest import MODEL, Loops, lines, llm_config
from tests.loop_agents import Answer, Ask, Verdict

pytestmark = pytest.mark.asyncio

_PROGRESS = Codec[Progress](Progress)


async def journal_of(loops: Loops, task_id: str) -> dict[str, Any]:
    """Every entry of a task's journal, read as a fresh attempt 0 would (no claim)."""
    journal = Journal(
        loops.d.bus.js,
        bucket=loops.d.subjects.bucket(Bucket.JOURNAL),
        task_id=task_id,
        token="reader",
        attempt=0,
        instance_id="test",
    )
    await journal.load()
    return dict(journal.entries)


def tool_messages(request_body: dict[str, Any]) -> list[str]:
    """The tool results a request carried to the model (either wire format)."""
    out: list[str] = []
    for message in request_body["messages"]:
        if message.get("role") == "tool":
            out.append(message["content"])
        elif isinstance(message.get("content"), list):
            out += [b["content"] for b in message["content"] if b.get("type") == "tool_result"]
    return out


async def run(
    loops: Loops, ask: Ask, *, task_id: str | None = None, attempt: int = 1, **fields: Any
) -> tuple[Assign, Any]:
    assign = Assign(
        task_id=task_id or new_task_id(),
        token=new_token(),
        attempt=attempt,
        skill="run",
        input=to_raw(ask),
        **fields,
    )
    reply = await loops.d.request_raw(loops.d.subjects.assign("looper", "l1"), assign)
    assert isinstance(reply, Accept), reply
    return assign, reply


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_tools_run_concurrently_and_results_reach_the_model(
    loops: Loops, wire: WireServer, effects: Path, kind: str
) -> None:
    await loops.instance("l1", llm_config(wire, kind))
    wire.script(
        MODEL,
        wire.tool_calls(("add", {"a": 2, "b": 3}), ("record", {"step": "one"})),
        wire.ok("five, and recorded"),
    )
    progress: list[str] = []

    async def on_progress(message: Progress, _: object) -> None:
        progress.append(message.note)

    task_id = new_task_id()
    await loops.d.bus.subscribe(loops.d.subjects.task_output(task_id), _PROGRESS, on_progress)
    assign, _ = await run(loops, Ask(prompt="add 2 and 3, record one"), task_id=task_id)
    outcome = await loops.d.outcome(assign.token)
    assert isinstance(outcome, Result), outcome
    answer = decode_raw(outcome.output, Answer)
    assert answer.text == "five, and recorded"
    assert (answer.model_calls, answer.tool_runs, answer.replayed_turns) == (2, 2, 0)
    assert wire.count(MODEL) == 2
    assert tool_messages(wire.requests[1].body) == ["5", "recorded one"]
    assert [r.stream for r in wire.requests] == [True, True]  # text streams to watchers
    # Usage of every turn adds up in the Result.
    assert outcome.usage.calls == 2 and outcome.usage.output_tokens == 14
    entries = await journal_of(loops, task_id)
    assert {k for k in entries if k != "claim"} == {
        "0.0", "0.0.0", "0.0.0.start", "0.0.1", "0.0.1.start", "0.1",
    }  # fmt: skip
    assert isinstance(entries["0.1"], TurnRecord) and entries["0.1"].token == assign.token
    assert [line[:3] for line in lines(effects)] == [["record", "one", f"{task_id}/0/0/1"]]
    await loops.d.wait_for(lambda: len(progress) >= 4 or None, 5)
    assert sorted(progress) == sorted(
        ["tool add started", "tool add ok", "tool record started", "tool record ok"]
    )


async def test_tool_errors_are_results_the_model_sees(
    loops: Loops, wire: WireServer, effects: Path
) -> None:
    await loops.instance("l1", llm_config(wire))
    wire.script(
        MODEL,
        wire.tool_calls(
            ("nope", {}),
            ("add", "{not json"),
            ("add", {"a": "two", "b": 3}),
            ("boom", {"reason": "bad luck"}),
            ("slow", {}),
        ),
        wire.ok("recovered"),
    )
    assign, _ = await run(loops, Ask(prompt="try everything"))
    outcome = await loops.d.outcome(assign.token)
    assert isinstance(outcome, Result), outcome
    assert decode_raw(outcome.output, Answer).text == "recovered"
    seen = [json.loads(text)["error"] for text in tool_messages(wire.requests[1].body)]
    assert "no tool named 'nope'" in seen[0] and "add" in seen[0]
    assert "not a JSON object" in seen[1] and "{not json" in seen[1]
    assert "do not fit the schema" in seen[2] and "Expected `int`" in seen[2]
    assert seen[3] == "ValueError: boom: bad luck"
    assert "no result within 0.1 s" in seen[4]
    entries = await journal_of(loops, assign.task_id)
    statuses = [entries[f"0.0.{i}"].status for i in range(5)]
    assert statuses == ["unknown_tool", "bad_arguments", "bad_arguments", "error", "timeout"]


async def test_a_new_attempt_replays_the_journal(
    loops: Loops, wire: WireServer, effects: Path, tmp_path: Path
) -> None:
    """Attempt 1 journals turn 0 and one tool, then stops inside the other tool;
    attempt 2 calls the model only for the turn not journaled, does not run the
    journaled tool again, and re-runs the unjournaled one with the same key."""
    await loops.instance("l1", llm_config(wire))
    wire.script(
        MODEL,
        wire.tool_calls(("record", {"step": "pay"}), ("gate", {})),
        wire.ok("all done"),
    )
    task_id = new_task_id()
    first, _ = await run(loops, Ask(prompt="pay then wait"), task_id=task_id)

    def both_started() -> bool | None:
        return len(lines(effects)) == 2 or None

    await loops.d.wait_for(both_started, 10)
    entries: dict[str, Any] = {}
    for _ in range(200):  # record's result is journaled just after its side effect
        entries = await journal_of(loops, task_id)
        if "0.0.0" in entries:
            break
        await asyncio.sleep(0.01)
    assert "0.0.0" in entries and "0.0.1.start" in entries and "0.0.1" not in entries
    await loops.d.cancel("looper", "l1", task_id, first.token)  # the attempt dies
    stopped = await loops.d.outcome(first.token)
    assert isinstance(stopped, Failure) and stopped.kind == FailureKind.CANCELED

    (tmp_path / "gate").touch()
    second, _ = await run(loops, Ask(prompt="pay then wait"), task_id=task_id, attempt=2)
    outcome = await loops.d.outcome(second.token)
    assert isinstance(outcome, Result), outcome
    answer = decode_raw(outcome.output, Answer)
    assert answer.text == "all done"
    assert (answer.model_calls, answer.replayed_turns) == (1, 1)
    assert (answer.tool_runs, answer.replayed_tools, answer.reruns) == (1, 1, 1)
    assert wire.count(MODEL) == 2  # turn 0 once (attempt 1), turn 1 once (attempt 2)
    ran = lines(effects)
    assert [r[0] for r in ran].count("record") == 1
    gates = [r for r in ran if r[0] == "gate"]
    assert [g[2] for g in gates] == [f"{task_id}/0/0/1"] * 2  # the same stable key
    assert [g[3] for g in gates] == ["False", "True"]  # the re-run knows it is one


async def test_a_deposed_attempt_cannot_write_the_journal(
    loops: Loops, wire: WireServer, effects: Path, tmp_path: Path
) -> None:
    """The zombie case in one process: attempt 1 waits in a tool while attempt 2
    claims the journal and finishes; attempt 1's next write is refused."""
    await loops.instance("l1", llm_config(wire))
    wire.script(MODEL, wire.tool_calls(("gate", {})), wire.ok("finished by attempt 2"))
    task_id = new_task_id()
    first, _ = await run(loops, Ask(prompt="wait"), task_id=task_id)
    await loops.d.wait_for(lambda: len(lines(effects)) == 1 or None, 10)
    second, _ = await run(loops, Ask(prompt="wait"), task_id=task_id, attempt=2)
    await loops.d.wait_for(lambda: len(lines(effects)) == 2 or None, 10)
    (tmp_path / "gate").touch()
    done = await loops.d.outcome(second.token)
    zombie = await loops.d.outcome(first.token)
    assert isinstance(done, Result), done
    assert isinstance(zombie, Failure) and zombie.error_type == "JournalFencedError"
    assert not zombie.retryable
    entries = await journal_of(loops, task_id)
    result = entries["0.0.0"]
    assert isinstance(result, ToolResult) and result.token == second.token
    claim = entries["claim"]
    assert claim.token == second.token and claim.attempt == 2
    # An older attempt arriving later never takes the journal back.
    late, _ = await run(loops, Ask(prompt="wait"), task_id=task_id, attempt=1)
    refused = await loops.d.outcome(late.token)
    assert isinstance(refused, Failure) and refused.error_type == "JournalFencedError"
    assert wire.count(MODEL) == 2


async def test_max_turns_is_a_typed_failure(loops: Loops, wire: WireServer, effects: Path) -> None:
    await loops.instance("l1", llm_config(wire))
    wire.script(MODEL, *[wire.tool_calls(("add", {"a": 1, "b": 1}))] * 3)
    assign, _ = await run(loops, Ask(prompt="loop forever", max_turns=3))
    outcome = await loops.d.outcome(assign.token)
    assert isinstance(outcome, Failure), outcome
    assert outcome.error_type == "MaxTurnsExceededError" and not outcome.retryable
    assert "3 turns" in outcome.detail and wire.count(MODEL) == 3


async def test_budget_counts_journaled_turns_and_ends_the_loop(
    loops: Loops, wire: WireServer, effects: Path, tmp_path: Path
) -> None:
    """The journal's turns count against the budget: a second attempt that finds
    the budget spent by the first stops before calling the model."""
    config = llm_config(wire, input_usd_per_mtok=100_000.0)  # 12 input tokens = $1.20
    await loops.instance("l1", config)
    wire.script(MODEL, wire.tool_calls(("gate", {})))
    task_id = new_task_id()
    first, _ = await run(loops, Ask(prompt="spend"), task_id=task_id, budget_usd=1000.0)
    await loops.d.wait_for(lambda: len(lines(effects)) == 1 or loops.d.outcomes or None, 10)
    assert not loops.d.outcomes, loops.d.outcomes
    await loops.d.cancel("looper", "l1", task_id, first.token)
    await loops.d.outcome(first.token)
    (tmp_path / "gate").touch()
    second, _ = await run(loops, Ask(prompt="spend"), task_id=task_id, attempt=2, budget_usd=1.0)
    outcome = await loops.d.outcome(second.token)
    assert isinstance(outcome, Failure), outcome
    assert outcome.error_type == "BudgetExceeded" and not outcome.retryable
    # The journal's spend, not an estimate of the next call, stopped it.
    assert "spent $1.200000" in outcome.detail and "estimated" not in outcome.detail
    assert wire.count(MODEL) == 1


async def test_deadline_ends_the_loop_with_a_timeout(
    loops: Loops, wire: WireServer, effects: Path
) -> None:
    await loops.instance("l1", llm_config(wire))
    wire.script(MODEL, wire.tool_calls(("gate", {})))
    assign, _ = await run(loops, Ask(prompt="wait"), remaining_ms=400)
    outcome = await loops.d.outcome(assign.token)
    assert isinstance(outcome, Failure), outcome
    assert outcome.kind == FailureKind.TIMEOUT


async def test_output_struct_gets_one_correction(
    loops: Loops, wire: WireServer, effects: Path
) -> None:
    await loops.instance("l1", llm_config(wire))
    wire.script(
        MODEL,
        wire.ok("sure, it is fine"),
        wire.ok('```json\n{"ok": true, "reason": "checked"}\n```'),
        wire.ok("still prose"),
        wire.ok('{"ok": "maybe"}'),
    )
    good, _ = await run(loops, Ask(prompt="check", output="verdict"))
    outcome = await loops.d.outcome(good.token)
    assert isinstance(outcome, Result), outcome
    verdict = msgspec.json.decode(decode_raw(outcome.output, Answer).text, type=Verdict)
    assert verdict == Verdict(ok=True, reason="checked")
    system = wire.requests[0].body["messages"][0]
    assert system["role"] == "system" and "JSON Schema" in system["content"]
    assert "not valid" in wire.requests[1].body["messages"][-1]["content"]

    bad, _ = await run(loops, Ask(prompt="check", output="verdict"))
    failed = await loops.d.outcome(bad.token)
    assert isinstance(failed, Failure) and failed.error_type == "InvalidOutputError"
    assert "Verdict" in failed.detail and not failed.retryable


async def test_offline_policy_drives_the_loop_without_a_key(
    loops: Loops, effects: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "NATSFLEET_FLEET_FILE"):
        monkeypatch.delenv(key, raising=False)
    await loops.instance("l1")  # the default config: no key, so offline
    assign, _ = await run(loops, Ask(prompt="Please record this step.\nstep: booked"))
    outcome = await loops.d.outcome(assign.token)
    assert isinstance(outcome, Result), outcome
    answer = decode_raw(outcome.output, Answer)
    assert answer.text.startswith("[offline] Done")
    assert "record: recorded booked" in answer.text
    assert [line[:2] for line in lines(effects)] == [["record", "booked"]]
    entries = await journal_of(loops, assign.task_id)
    turn = entries["0.0"]
    assert isinstance(turn, TurnRecord) and turn.offline and turn.text.startswith("[offline]")
    assert isinstance(entries["0.0.0.start"], ToolStarted)


async def test_spans_invoke_agent_chat_and_execute_tool(
    loops: Loops, wire: WireServer, effects: Path, spans: Any
) -> None:
    await loops.instance("l1", llm_config(wire))
    wire.script(MODEL, wire.tool_calls(("add", {"a": 1, "b": 2})), wire.ok("3"))
    assign, _ = await run(loops, Ask(prompt="add"))
    assert isinstance(await loops.d.outcome(assign.token), Result)
    finished = {s.name: s for s in spans.get_finished_spans()}
    agent = finished["invoke_agent looper"]
    tool_span = finished["execute_tool add"]
    chats = [s for s in spans.get_finished_spans() if s.name == f"chat {MODEL}"]
    assert len(chats) == 2
    assert tool_span.attributes["gen_ai.tool.call.id"] == "call_1"
    skill_span = finished["skill run"]
    assert skill_span.parent.span_id == agent.context.span_id
    for child in (tool_span, *chats):
        assert child.context.trace_id == agent.context.trace_id
        assert child.parent.span_id == skill_span.context.span_id
