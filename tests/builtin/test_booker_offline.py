"""The booker's skills offline: rules parser, sandbox search, hold, idempotent book, pay
only with approval, .ics on disk, confirmation as .eml without an SMTP server."""

from datetime import date
from pathlib import Path

import pytest
from icalendar import Calendar

from natsfleet.agents.builtins.booker import Booker
from natsfleet.agents.builtins.travel_types import (
    ApprovalDecision,
    BookInput,
    CalendarInput,
    ConfirmationInput,
    HeldOffer,
    HoldInput,
    ParseTripInput,
    PayInput,
    Trip,
)
from natsfleet.agents.tools import ApprovalRequiredError, TripRequestError
from natsfleet.agents.tools.travel import Booking, FlightSearchResult, Passenger, Payment
from tests.builtin.harness import call_skill, offline_router

TODAY = date(2026, 3, 2)  # a Monday
ADA = Passenger(name="Ada Lovelace", email="ada@example.com")


@pytest.fixture
def booker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Booker:
    monkeypatch.setenv("NATSFLEET_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("NATSFLEET_SMTP_HOST", raising=False)
    return Booker()


async def run(booker: Booker, skill: str, value: object, **kw: object) -> object:
    return (await call_skill(booker, skill, value, offline_router(), **kw)).output  # type: ignore[arg-type]


async def book_trip(booker: Booker, workflow_id: str = "wf-1") -> Booking:
    request = ParseTripInput(
        request="Book me a flight from BOS to New York next Tuesday", traveller=ADA, today=TODAY
    )
    trip = await run(booker, "parse_trip", request)
    assert isinstance(trip, Trip)
    search = await run(booker, "search_flights", trip)
    assert isinstance(search, FlightSearchResult)
    hold = await run(booker, "hold_offer", HoldInput(search=search, trip=trip))
    assert isinstance(hold, HeldOffer) and hold.passenger == ADA
    booking = await run(booker, "book", BookInput(hold=hold), workflow_id=workflow_id)
    assert isinstance(booking, Booking)
    return booking


async def test_parse_trip_offline_uses_rules(booker: Booker) -> None:
    trip = await run(
        booker,
        "parse_trip",
        ParseTripInput(request="fly from Boston to Chicago tomorrow for 2 people", today=TODAY),
    )
    assert isinstance(trip, Trip)
    assert (trip.origin, trip.destination_airport.iata) == ("BOS", "ORD")
    assert trip.date == date(2026, 3, 3) and trip.passengers == 2
    assert trip.parsed_by == "rules"
    with pytest.raises(TripRequestError):
        await run(booker, "parse_trip", ParseTripInput(request="a flight to Atlantis", today=TODAY))


async def test_search_hold_book_is_idempotent_by_workflow(booker: Booker) -> None:
    first = await book_trip(booker, "wf-7")
    assert (
        first.sandbox and first.offer.origin.iata == "BOS" and first.offer.destination.iata == "JFK"
    )
    assert first.offer.departs_at.date() == date(2026, 3, 3)
    again = await book_trip(booker, "wf-7")
    assert again == first  # a retried workflow step books nothing new
    other = await book_trip(booker, "wf-8")
    assert other.booking_id != first.booking_id


async def test_hold_choice_and_cheapest(booker: Booker) -> None:
    trip = await run(
        booker, "parse_trip", ParseTripInput(request="from SFO to LAX on 2026-04-01", today=TODAY)
    )
    search = await run(booker, "search_flights", trip)  # type: ignore[attr-defined]
    cheapest = await run(booker, "hold_offer", HoldInput(offers=search.offers))  # type: ignore[attr-defined]
    third = await run(booker, "hold_offer", HoldInput(search=search, choice=3))  # type: ignore[arg-type]
    assert cheapest.offer == search.offers[0]  # type: ignore[attr-defined]
    assert third.offer == search.offers[2]  # type: ignore[attr-defined]


async def test_pay_needs_the_approval_token(booker: Booker) -> None:
    booking = await book_trip(booker)
    with pytest.raises(ApprovalRequiredError) as refused:
        await run(booker, "pay", PayInput(booking=booking))
    assert refused.value.retryable is False
    payment = await run(booker, "pay", PayInput(booking=booking, approval_token="appr-1"))
    assert isinstance(payment, Payment)
    assert payment.amount_cents == booking.offer.total_cents and payment.approval_token == "appr-1"
    assert await run(booker, "pay", PayInput(booking=booking, approval_token="appr-1")) == payment


async def test_calendar_and_eml_confirmation(booker: Booker, tmp_path: Path) -> None:
    booking = await book_trip(booker)
    entry = await run(booker, "add_to_calendar", CalendarInput(booking=booking))
    path = Path(entry.path)  # type: ignore[attr-defined]
    assert path.parent == tmp_path / "calendar" and path.suffix == ".ics"
    event = next(iter(Calendar.from_ical(path.read_bytes()).walk("VEVENT")))
    assert "SANDBOX" in str(event["SUMMARY"]) and "BOS -> JFK" in str(event["SUMMARY"])
    sent = await run(booker, "send_confirmation", ConfirmationInput(booking=booking))
    assert sent.delivery == "file" and sent.to == ADA.email  # type: ignore[attr-defined]
    eml = Path(sent.eml_path).read_text()  # type: ignore[attr-defined]
    assert "Booking confirmed: BOS -> JFK" in eml and "text/calendar" in eml


async def test_book_takes_the_approvers_choice(booker: Booker) -> None:
    trip = await run(
        booker, "parse_trip", ParseTripInput(request="from SFO to LAX on 2026-04-01", today=TODAY)
    )
    search = await run(booker, "search_flights", trip)
    hold = await run(booker, "hold_offer", HoldInput(offers=search.offers, trip=trip))  # type: ignore[attr-defined]
    approval = ApprovalDecision(input={"offer_index": 2}, approval_id="run/approve/0")
    booking = await run(booker, "book", BookInput(hold=hold, approval=approval))  # type: ignore[arg-type]
    assert booking.offer.offer_id == search.offers[1].offer_id  # type: ignore[attr-defined]
