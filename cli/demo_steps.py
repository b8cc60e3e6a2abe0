"""The demo's two jobs, run on a live fleet, and what the demo shows of them.

`run_content` and `run_travel` submit the skills as ordinary tasks through a
`FleetClient` (the supervisor assigns, times out, retries and fences each
one) and collect every task's LLM usage for the cost ledger.
"""

from datetime import date
from typing import Any, TypeVar

import msgspec

from natsfleet.agents.builtins.content_types import (
    Draft,
    EditInput,
    EditVerdict,
    Findings,
    ResearchInput,
    WriteInput,
)
from natsfleet.agents.builtins.travel_types import (
    BookInput,
    CalendarEntry,
    CalendarInput,
    ConfirmationInput,
    ConfirmationSent,
    HoldInput,
    ParseTripInput,
    PayInput,
    Trip,
)
from natsfleet.agents.tools import EditCriteria
from natsfleet.agents.tools.travel import Booking, FlightSearchResult, Hold, Payment
from natsfleet.bus import FleetClient
from natsfleet.protocols import Usage

T = TypeVar("T")

CONTENT_QUESTION = "How do leases and fencing tokens stop a deposed supervisor from acting?"
CONTENT_CRITERIA = EditCriteria(
    min_words=120, max_words=450, min_sources_cited=2, banned_phrases=("game changer", "delve")
)
MAX_ROUNDS = 3
TRAVEL_REQUEST = "Book me a flight from Boston to New York next Tuesday"
_STEP_TIMEOUT_S = 180.0


class LedgerRow(msgspec.Struct, frozen=True, kw_only=True):
    """One task's line in the cost ledger."""

    step: str
    task_id: str
    agent: str
    usage: Usage


class ContentOutcome(msgspec.Struct, frozen=True, kw_only=True):
    findings: Findings
    draft: Draft
    verdict: EditVerdict
    rounds: int
    ledger: tuple[LedgerRow, ...]


class TravelOutcome(msgspec.Struct, frozen=True, kw_only=True):
    trip: Trip
    search: FlightSearchResult
    hold: Hold
    booking: Booking
    approved_by: str
    payment: Payment
    calendar: CalendarEntry
    confirmation: ConfirmationSent
    ledger: tuple[LedgerRow, ...]


class StepRunner:
    """Runs one skill as a task and records its ledger row."""

    def __init__(self, client: FleetClient, say: Any) -> None:
        self.client = client
        self.say = say
        self.ledger: list[LedgerRow] = []

    async def __call__(self, step: str, input: Any, output_type: type[T]) -> T:
        task_id = await self.client.submit(step, input)
        output = await self.client.result(task_id, output_type, timeout_s=_STEP_TIMEOUT_S)
        record = await self.client.status(task_id, timeout_s=10.0)
        agent = record.instance_id or record.agent or "?"
        self.ledger.append(LedgerRow(step=step, task_id=task_id, agent=agent, usage=record.usage))
        self.say(step, agent, record.usage)
        return output


async def run_content(client: FleetClient, say: Any, question: str) -> ContentOutcome:
    """research -> (write -> edit) until approved or `MAX_ROUNDS` rounds."""
    run = StepRunner(client, say)
    findings = await run("research", ResearchInput(question=question), Findings)
    notes: tuple[str, ...] = ()
    previous: Draft | None = None
    verdict: EditVerdict | None = None
    rounds = 0
    for rounds in range(1, MAX_ROUNDS + 1):  # noqa: B007 - the count is reported
        write = WriteInput(findings=findings, brief=question, notes=notes, previous=previous)
        draft = await run("write", write, Draft)
        verdict = await run("edit", EditInput(draft=draft, criteria=CONTENT_CRITERIA), EditVerdict)
        if verdict.approved:
            break
        notes, previous = verdict.notes, verdict.draft
    assert verdict is not None
    return ContentOutcome(
        findings=findings,
        draft=verdict.draft,
        verdict=verdict,
        rounds=rounds,
        ledger=tuple(run.ledger),
    )


async def run_travel(client: FleetClient, say: Any, request: str, today: date) -> TravelOutcome:
    """parse -> search -> hold -> book -> approval -> pay -> calendar -> confirmation."""
    run = StepRunner(client, say)
    trip = await run("parse_trip", ParseTripInput(request=request, today=today), Trip)
    search = await run("search_flights", trip.query, FlightSearchResult)
    hold = await run("hold_offer", HoldInput(search=search), Hold)
    booking = await run("book", BookInput(hold=hold, passenger=trip.passenger), Booking)
    token = f"demo-auto-approval-{booking.booking_id}"
    payment = await run("pay", PayInput(booking=booking, approval_token=token), Payment)
    calendar = await run("add_to_calendar", CalendarInput(booking=booking), CalendarEntry)
    sent = await run("send_confirmation", ConfirmationInput(booking=booking), ConfirmationSent)
    return TravelOutcome(
        trip=trip,
        search=search,
        hold=hold,
        booking=booking,
        approved_by="the demo (automatic approval)",
        payment=payment,
        calendar=calendar,
        confirmation=sent,
        ledger=tuple(run.ledger),
    )
