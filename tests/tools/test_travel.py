"""Airports, the sandbox fare provider, booking idempotency and payment approval."""

import asyncio
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec
import pytest

from natsfleet.agents.tools import (
    AmountMismatchError,
    ApprovalRequiredError,
    IdempotencyConflictError,
    InvalidQueryError,
    UnknownAirportError,
    UnknownOfferError,
)
from natsfleet.agents.tools.travel import (
    Booking,
    BookingDesk,
    Offer,
    Passenger,
    SandboxFareProvider,
    SandboxPayments,
    SqliteBookingStore,
    airport_by_iata,
    airports_for_city,
    resolve_airport,
    search_flights,
)

ADA = Passenger(name="Ada Lovelace", email="ada@example.com")
DAY = date(2026, 12, 3)
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def desk_on(path: Path) -> BookingDesk:
    return BookingDesk(
        SandboxFareProvider(clock=lambda: NOW),
        SandboxPayments(),
        SqliteBookingStore(path),
        clock=lambda: NOW,
    )


def test_airport_by_code_and_city() -> None:
    bos = airport_by_iata("bos")
    assert (bos.iata, bos.city, bos.tz) == ("BOS", "Boston", "America/New_York")
    new_york = airports_for_city("New York")
    assert new_york.primary.iata == "JFK"
    assert {"JFK", "LGA", "EWR"} <= {a.iata for a in new_york.airports}
    assert airports_for_city("nyc").primary.iata == "JFK"
    assert airports_for_city("london").primary.tz == "Europe/London"
    assert resolve_airport("San Francisco").iata == "SFO"
    with pytest.raises(UnknownAirportError):
        resolve_airport("Atlantis")
    with pytest.raises(UnknownAirportError):
        airport_by_iata("QQQ")


async def test_sandbox_search_is_deterministic_and_labelled() -> None:
    first = await search_flights("BOS", "San Francisco", DAY, 2)
    again = await search_flights("Boston", "SFO", DAY, 2)
    assert msgspec.json.encode(first) == msgspec.json.encode(again)
    assert first.provider == "sandbox" and first.sandbox
    assert len(first.offers) == 3
    assert "SANDBOX" in first.text()
    for offer in first.offers:
        assert offer.sandbox and offer.provider == "sandbox"
        assert "SANDBOX" in offer.summary()
        assert offer.total_cents == 2 * offer.price_per_passenger_cents
    totals = [o.total_cents for o in first.offers]
    assert totals == sorted(totals)
    other_day = await search_flights("BOS", "SFO", date(2026, 12, 4), 2)
    assert [o.offer_id for o in other_day.offers] != [o.offer_id for o in first.offers]


async def test_sandbox_times_are_local_and_durations_realistic() -> None:
    result = await search_flights("JFK", "LHR", DAY)
    for offer in result.offers:
        assert offer.departs_at.utcoffset() == ZoneInfo("America/New_York").utcoffset(
            offer.departs_at.replace(tzinfo=None)
        )
        assert offer.arrives_at.utcoffset() == ZoneInfo("Europe/London").utcoffset(
            offer.arrives_at.replace(tzinfo=None)
        )
        assert offer.departs_at.date() == DAY
        assert 6 <= offer.departs_at.hour < 22
        assert 5 * 60 + 30 <= offer.duration_min <= 8 * 60  # ~5,540 km across the Atlantic
        assert (offer.arrives_at - offer.departs_at).total_seconds() == offer.duration_min * 60
    for short in (await search_flights("BOS", "LGA", DAY)).offers:
        assert 50 <= short.duration_min <= 80  # ~300 km


async def test_sandbox_refuses_nonsense_queries() -> None:
    with pytest.raises(InvalidQueryError):
        await search_flights("JFK", "JFK", DAY)
    with pytest.raises(InvalidQueryError):
        await search_flights("BOS", "SFO", DAY, passengers=0)
    provider = SandboxFareProvider()
    with pytest.raises(UnknownOfferError):
        await provider.get_offer("sbx-BOS-SFO-20261203-1-7")
    with pytest.raises(UnknownOfferError):
        await provider.get_offer("made-up")


async def test_offer_id_round_trips_and_hold_expires_later(tmp_path: Path) -> None:
    offer = (await search_flights("BOS", "SFO", DAY)).offers[0]
    desk = desk_on(tmp_path / "bookings.db")
    hold = await desk.hold_offer(offer.offer_id)
    assert hold.offer == offer
    assert hold.expires_at > NOW


async def test_booking_is_idempotent_across_store_objects(tmp_path: Path) -> None:
    db = tmp_path / "bookings.db"
    offer = (await search_flights("BOS", "SFO", DAY, 2)).offers[0]
    first = await desk_on(db).book(offer, ADA, "task-0001")
    assert first.sandbox and first.reference.startswith("SB")

    # A fresh store on the same file, as after a process restart.
    desk = desk_on(db)
    again = await desk.book(offer, ADA, "task-0001")
    assert again == first
    other = await desk.book(offer, ADA, "task-0002")
    assert other.booking_id != first.booking_id
    assert SqliteBookingStore(db).booking_for_key("task-0001") == first

    later_offer = (await search_flights("BOS", "SFO", DAY, 2)).offers[1]
    with pytest.raises(IdempotencyConflictError):
        await desk.book(later_offer, ADA, "task-0001")


async def test_booking_survives_a_json_round_trip(tmp_path: Path) -> None:
    offer = (await search_flights("BOS", "SFO", DAY)).offers[0]
    wire = msgspec.json.encode(offer)
    booking = await desk_on(tmp_path / "b.db").book(
        msgspec.json.decode(wire, type=Offer), ADA, "task-json"
    )
    assert msgspec.json.decode(msgspec.json.encode(booking), type=Booking) == booking


async def test_pay_requires_approval_and_is_idempotent(tmp_path: Path) -> None:
    db = tmp_path / "bookings.db"
    offer = (await search_flights("BOS", "SFO", DAY)).offers[0]
    booking = await desk_on(db).book(offer, ADA, "task-pay")
    desk = desk_on(db)
    with pytest.raises(ApprovalRequiredError) as refused:
        await desk.pay(booking, offer.total_cents, None)
    assert refused.value.retryable is False
    with pytest.raises(ApprovalRequiredError):
        await desk.pay(booking, offer.total_cents, "")
    assert SqliteBookingStore(db).payment_for(booking.booking_id) is None
    with pytest.raises(AmountMismatchError):
        await desk.pay(booking, offer.total_cents - 100, "approval-1")

    paid = await desk.pay(booking, offer.total_cents, "approval-1")
    assert paid.sandbox and paid.amount_cents == offer.total_cents
    assert paid.approval_token == "approval-1"
    assert await desk_on(db).pay(booking, offer.total_cents, "approval-1") == paid


async def test_concurrent_bookings_with_one_key_make_one_booking(tmp_path: Path) -> None:
    db = tmp_path / "bookings.db"
    offer = (await search_flights("BOS", "SFO", DAY)).offers[0]
    results = await asyncio.gather(*(desk_on(db).book(offer, ADA, "task-race") for _ in range(5)))
    assert len({msgspec.json.encode(b) for b in results}) == 1
