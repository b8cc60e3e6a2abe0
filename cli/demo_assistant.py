"""The demo's third part: the built-in `assistant`, whose model plans with the fleet's
skills as tools, and what its journal saves when an instance dies mid-run.

1. "Write an article about ..." (research, write, edit: the model's choice);
2. "Book me a flight to New York next Tuesday": after a few tool calls the
   assistant instance is killed (SIGKILL), a second instance takes the task
   over and replays the journal; `pay` waits for a person, whom the demo plays
   (`natsfleet approve TASK`); then calendar and confirmation;
3. from the journal and the task's attempts: how many model answers and tool
   results each later attempt replayed instead of making them again.

Without an API key the model is the offline provider's step-by-step policy,
and every line that shows its work says `[offline]`.
"""

import asyncio
import contextlib
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape

from natsfleet.agents.builtins.assistant import AssistantAnswer, AssistantInput
from natsfleet.agents.loop.journal import Journal
from natsfleet.agents.loop.records import ToolResult, TurnRecord
from natsfleet.cli.demo_fleet import Child, DemoFleet
from natsfleet.client import FleetClient
from natsfleet.protocols import Bucket, Progress, TaskRecord, TaskState, Timeouts, is_terminal

ARTICLE_REQUEST = "Write an article about how leases and fencing tokens stop a deposed supervisor"
TRIP_REQUEST = "Book me a flight to New York next Tuesday"
HOME_AIRPORT = "BOS"
#: The assistant instances heartbeat fast, and the trip task says its holder is
#: gone after this much silence: the kill is noticed in about a second.
HEARTBEAT_S = 0.2
HEARTBEAT_TIMEOUT_S = 1.0
#: Tool calls seen ending before the first instance is killed (the loop may have
#: gone further meanwhile: the demo says where the task was when it died).
KILL_AFTER_TOOLS = 2
_RESULT_TIMEOUT_S = 120.0


@dataclass(slots=True)
class AttemptReplay:
    """What one attempt of the task made itself and took from the journal."""

    attempt: int  # the attempt's number (a pause for approval is not counted)
    instance_id: str
    outcome: str
    model_calls: int
    tool_runs: int
    replayed_turns: int
    replayed_tools: int


@dataclass(slots=True)
class TripRun:
    task_id: str
    answer: AssistantAnswer
    killed: str
    pending: str
    attempts: list[AttemptReplay] = field(default_factory=list)


def _label(offline: bool) -> str:
    return "\\[offline] " if offline else ""  # escaped: not a rich markup tag


async def start_assistant(fleet: DemoFleet, instance_id: str) -> Child:
    return await fleet.start_agent(
        "assistant", instance_id, args=("--heartbeat-s", str(HEARTBEAT_S))
    )


async def follow(client: FleetClient, task_id: str, say: Callable[[Progress], None]) -> None:
    """Hand each tool event of the task (every attempt) to `say`, until it ends."""
    async for item in client.output(task_id):
        if isinstance(item, Progress) and item.note.startswith("tool "):
            say(item)


async def run_article(console: Console, client: FleetClient, offline: bool) -> AssistantAnswer:
    label = _label(offline)
    console.print(f"Request: {ARTICLE_REQUEST!r}")
    task_id = await client.submit("ask", AssistantInput(request=ARTICLE_REQUEST))
    shown = asyncio.create_task(
        follow(client, task_id, lambda p: console.print(f"  {label}{escape(p.note)}"))
    )
    try:
        answer = await client.result(task_id, AssistantAnswer, timeout_s=_RESULT_TIMEOUT_S)
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(shown, 5.0)
    console.print(f"  {label}the model chose: {' -> '.join(answer.steps) or 'no tools'}")
    first_line = answer.answer.splitlines()[0] if answer.answer else ""
    console.print(f"  final answer: {escape(first_line)}")
    return answer


async def run_trip(console: Console, fleet: DemoFleet, first: Child, offline: bool) -> TripRun:
    """The trip, with the first instance killed after `KILL_AFTER_TOOLS` tool calls."""
    client = fleet.client
    label = _label(offline)
    console.print(f"Request: {TRIP_REQUEST!r} (home airport {HOME_AIRPORT})")
    task_id = await client.submit(
        "ask",
        AssistantInput(request=TRIP_REQUEST, home_airport=HOME_AIRPORT),
        timeouts=Timeouts(heartbeat_timeout_s=HEARTBEAT_TIMEOUT_S),
    )
    done_tools = 0
    kill_now = asyncio.Event()

    def say(progress: Progress) -> None:
        nonlocal done_tools
        console.print(f"  {label}attempt {progress.attempt}: {escape(progress.note)}")
        if progress.attempt <= 1 and progress.note.endswith(" ok"):
            done_tools += 1
            if done_tools == KILL_AFTER_TOOLS:
                kill_now.set()

    shown = asyncio.create_task(follow(client, task_id, say))
    approver = asyncio.create_task(_approve_when_asked(console, client, task_id))
    result = asyncio.create_task(
        client.result(task_id, AssistantAnswer, timeout_s=_RESULT_TIMEOUT_S)
    )
    killer = asyncio.create_task(kill_now.wait())
    try:
        await asyncio.wait({result, killer}, return_when=asyncio.FIRST_COMPLETED)
        killed = ""
        if killer.done() and not result.done():
            killed = await _kill_then_replace(console, fleet, first, task_id)
        else:  # (a real model may finish in fewer tool calls)
            console.print("  the task ended before the demo could kill the assistant")
        answer = await result
        pending = await asyncio.wait_for(approver, 5.0)
    finally:
        helpers: list[asyncio.Task[Any]] = [approver, killer, result]
        for helper in helpers:
            helper.cancel()
        for helper in [*helpers, shown]:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(helper, 5.0)
    record = await client.status(task_id)
    attempts = await journal_replays(fleet, record)
    return TripRun(
        task_id=task_id, answer=answer, killed=killed, pending=pending, attempts=attempts
    )


async def _kill_then_replace(console: Console, fleet: DemoFleet, first: Child, task_id: str) -> str:
    first.signal(signal.SIGKILL)
    await first.proc.wait()
    state = (await fleet.client.status(task_id)).state.value
    console.print(
        f"  [red]killed[/]  {first.name} (SIGKILL) mid-run (the task was {state}); "
        "starting a second instance"
    )
    second = await start_assistant(fleet, "assistant-2")
    console.print(f"  [green]started[/] {second.name}: it takes the task over from the journal")
    return first.name


async def _approve_when_asked(console: Console, client: FleetClient, task_id: str) -> str:
    """Play the person: when the task waits, show the pending call and approve it."""
    async with contextlib.aclosing(client.watch(task_id)) as events:
        async for event in events:
            if event.state == TaskState.INPUT_REQUIRED:
                record = await client.status(task_id)
                call = record.pending_call
                shown = f"{call.tool} {call.arguments[:100]}..." if call else event.detail
                console.print(f"  [yellow]waiting[/] for a person's approval: {escape(shown)}")
                ack = await client.approve(
                    task_id, note="automatic approval by natsfleet demo", timeout_s=10.0
                )
                console.print(
                    f"  [green]approved[/] by the demo as `natsfleet approve {task_id}` would: "
                    f"{escape(ack.detail)}"
                )
                return call.tool if call else ""
            if is_terminal(event.state):
                return ""
    return ""


async def journal_replays(fleet: DemoFleet, record: TaskRecord) -> list[AttemptReplay]:
    """Per attempt, from the journal's tokens: made itself, and replayed (written by
    the attempts before it: a later attempt replays every earlier turn and result)."""
    journal = Journal(
        fleet.bus.js,
        bucket=fleet.bus.subjects.bucket(Bucket.JOURNAL),
        task_id=record.task_id,
        token="demo-reader",  # noqa: S106 (a reader's name: it writes nothing)
        attempt=0,
        instance_id="demo",
    )
    await journal.load()
    turns: dict[str, int] = {}
    tools: dict[str, int] = {}
    for entry in journal.entries.values():
        if isinstance(entry, TurnRecord):
            turns[entry.token] = turns.get(entry.token, 0) + 1
        elif isinstance(entry, ToolResult):
            tools[entry.token] = tools.get(entry.token, 0) + 1
    out: list[AttemptReplay] = []
    earlier_turns = earlier_tools = 0
    for attempt in record.history:
        out.append(
            AttemptReplay(
                attempt=attempt.attempt,
                instance_id=attempt.instance_id,
                outcome=attempt.outcome or "running",
                model_calls=turns.get(attempt.token, 0),
                tool_runs=tools.get(attempt.token, 0),
                replayed_turns=earlier_turns,
                replayed_tools=earlier_tools,
            )
        )
        earlier_turns += turns.get(attempt.token, 0)
        earlier_tools += tools.get(attempt.token, 0)
    return out


def show_replays(console: Console, run: TripRun, offline: bool) -> None:
    label = _label(offline)
    steps = " -> ".join(run.answer.steps)
    console.print(f"  {label}the model chose: {steps}")
    first_line = run.answer.answer.splitlines()[0] if run.answer.answer else ""
    console.print(f"  final answer: {escape(first_line)}")
    console.print("The task's journal (each model answer and tool result is written once):")
    for i, a in enumerate(run.attempts, 1):
        console.print(
            f"  {i}. attempt {a.attempt} on {a.instance_id:<12} {a.outcome:<18} "
            f"made {a.model_calls} model calls, {a.tool_runs} tool runs; "
            f"replayed {a.replayed_turns} model answers, {a.replayed_tools} tool results"
        )
    replayed_turns = sum(a.replayed_turns for a in run.attempts)
    replayed_tools = sum(a.replayed_tools for a in run.attempts)
    made_turns = sum(a.model_calls for a in run.attempts)
    made_tools = sum(a.tool_runs for a in run.attempts)
    after = f"after the kill of {run.killed}" if run.killed else "no instance was killed"
    console.print(
        f"Replayed from the journal rather than repeated: {replayed_turns} model calls and "
        f"{replayed_tools} tool runs ({after}; after the approval); the task made "
        f"{made_turns} model calls and {made_tools} tool runs in all, each once."
    )
