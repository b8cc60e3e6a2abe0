"""The demo's two jobs: the `content` and `travel` workflows (examples/workflows/).

Each is submitted as one workflow run; the supervisor's workflow engine runs
every step as an ordinary task (assigned, timed out, retried, fenced). The
travel run stops at its approval step until `approve` (here: automatic, or a
refusal in the tests). Each step task's LLM usage makes the cost ledger.
"""

import contextlib
from collections.abc import Callable

import msgspec

from natsfleet.agents.builtins.content_types import Draft
from natsfleet.agents.builtins.travel_types import CalendarEntry, ConfirmationSent
from natsfleet.agents.tools import EditCriteria
from natsfleet.agents.tools.travel import Booking, Payment
from natsfleet.client import FleetClient, TaskFailed
from natsfleet.protocols import TaskEvent, TaskState, Usage, decode_raw, is_terminal

CONTENT_QUESTION = "How do leases and fencing tokens stop a deposed supervisor from acting?"
CONTENT_CRITERIA = EditCriteria(
    min_words=120, max_words=450, min_sources_cited=2, banned_phrases=("game changer", "delve")
)
TRAVEL_REQUEST = "Book me a flight from Boston to New York next Tuesday"
TRAVEL_EMAIL = "alex.traveller@example.com"
_RUN_TIMEOUT_S = 600.0


class LedgerRow(msgspec.Struct, frozen=True, kw_only=True):
    """One step task's line in the cost ledger."""

    step: str
    task_id: str
    agent: str
    usage: Usage


class ContentOutput(msgspec.Struct, frozen=True, kw_only=True):
    """The content workflow's `output` table."""

    article: Draft
    verdict: str
    notes: tuple[str, ...] | None = None
    rounds: int | None = None


class TravelOutput(msgspec.Struct, frozen=True, kw_only=True):
    """The travel workflow's `output` table."""

    itinerary: Booking
    payment: Payment
    calendar: CalendarEntry
    confirmation: ConfirmationSent


class ContentOutcome(msgspec.Struct, frozen=True, kw_only=True):
    run_id: str
    output: ContentOutput
    ledger: tuple[LedgerRow, ...]


class TravelOutcome(msgspec.Struct, frozen=True, kw_only=True):
    run_id: str
    prompt: str
    output: TravelOutput
    ledger: tuple[LedgerRow, ...]


Say = Callable[[TaskEvent], None]


async def ledger(client: FleetClient, run_id: str) -> tuple[LedgerRow, ...]:
    """Every step task of the run with its usage, in the order they ran."""
    reply = await client.status_reply(run_id, timeout_s=10.0)
    rows = []
    for step in reply.workflow.steps if reply.workflow else ():
        for task in step.tasks:
            record = await client.status(task.task_id, timeout_s=10.0)
            agent = record.instance_id or "?"
            rows.append(
                LedgerRow(step=step.name, task_id=task.task_id, agent=agent, usage=record.usage)
            )
    return tuple(rows)


async def _finished(client: FleetClient, run_id: str) -> TaskEvent:
    event = await client.wait(run_id, timeout_s=_RUN_TIMEOUT_S)
    if event.state != TaskState.COMPLETED:
        raise TaskFailed(event)
    return event


async def run_content(client: FleetClient, question: str) -> ContentOutcome:
    """The `content` workflow: research, then write and edit until approved (3 rounds)."""
    run_id = await client.submit(
        workflow="content",
        input={"question": question, "criteria": msgspec.to_builtins(CONTENT_CRITERIA)},
    )
    event = await _finished(client, run_id)
    output = decode_raw(event.output, ContentOutput)
    return ContentOutcome(run_id=run_id, output=output, ledger=await ledger(client, run_id))


async def run_travel(
    client: FleetClient, request: str, *, email: str = TRAVEL_EMAIL, approve: bool = True
) -> TravelOutcome:
    """The `travel` workflow; at its approval step, approve (or refuse) automatically."""
    run_id = await client.submit(workflow="travel", input={"request": request, "email": email})
    prompt = await _approval_prompt(client, run_id)
    await client.approve(
        run_id, approved=approve, note="automatic approval by natsfleet demo", timeout_s=10.0
    )
    event = await _finished(client, run_id)
    output = decode_raw(event.output, TravelOutput)
    return TravelOutcome(
        run_id=run_id, prompt=prompt, output=output, ledger=await ledger(client, run_id)
    )


async def _approval_prompt(client: FleetClient, run_id: str) -> str:
    """Wait for the run to ask for approval; the question it asks."""
    async with contextlib.aclosing(client.watch(run_id)) as events:
        async for event in events:
            if event.state == TaskState.INPUT_REQUIRED:
                break
            if is_terminal(event.state):
                raise TaskFailed(event)
    reply = await client.status_reply(run_id, timeout_s=10.0)
    waiting = [
        s for s in (reply.workflow.steps if reply.workflow else ()) if s.phase == "input_required"
    ]
    return waiting[0].detail if waiting else "approve?"


async def narrate(client: FleetClient, say: Say) -> None:
    """Hand every live task event to `say` (the demo prints step progress with it)."""
    async with contextlib.aclosing(client.watch()) as events:
        async for event in events:
            say(event)
