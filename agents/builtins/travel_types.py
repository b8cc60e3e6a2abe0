"""Inputs and outputs of the booker's skills (the tool types are reused as they are)."""

from datetime import date, datetime
from typing import Any

import msgspec

from natsfleet.agents.tools.travel import (
    Airport,
    Booking,
    FlightQuery,
    FlightSearchResult,
    Offer,
    Passenger,
    Payment,
)

#: Who travels when a request does not say (the demo's traveller).
DEFAULT_TRAVELLER = Passenger(name="Alex Traveller", email="alex.traveller@example.com")


class ParseTripInput(msgspec.Struct, frozen=True, kw_only=True):
    """`parse_trip`: a request in words, e.g. "a flight from BOS to New York next Tuesday".

    `home_airport` is the origin when the request names none; `today` anchors
    relative dates (default: the agent's local date).
    """

    request: str
    traveller: Passenger = DEFAULT_TRAVELLER
    email: str | None = None  # overrides the traveller's email
    home_airport: str | None = None
    today: date | None = None


class Trip(msgspec.Struct, frozen=True, kw_only=True):
    """`parse_trip` output: the search to run (its first four fields are a `FlightQuery`,
    so a `Trip` is a valid `search_flights` input), the airports, and who travels."""

    origin: str
    destination: str
    date: date
    passengers: int
    origin_airport: Airport
    destination_airport: Airport
    passenger: Passenger
    email: str
    parsed_by: str

    def query(self) -> FlightQuery:
        return FlightQuery(
            origin=self.origin,
            destination=self.destination,
            date=self.date,
            passengers=self.passengers,
        )


class HoldInput(msgspec.Struct, frozen=True, kw_only=True):
    """`hold_offer`: an offer id, or offers to choose from (`choice` 1-based; none = cheapest).

    `search` (a `search_flights` output) or `offers` give the options; `trip`
    (the `parse_trip` output) names the passenger, carried on to `book`.
    """

    offer_id: str = ""
    search: FlightSearchResult | None = None
    offers: tuple[Offer, ...] = ()
    choice: int | None = None
    trip: Trip | None = None


class HeldOffer(msgspec.Struct, frozen=True, kw_only=True):
    """`hold_offer` output: the hold, a line for the approval prompt, the passenger, and
    every option (so the approver may pick another by its 1-based `offer_index`)."""

    hold_id: str
    offer: Offer
    expires_at: datetime
    summary: str
    passenger: Passenger = DEFAULT_TRAVELLER
    options: tuple[Offer, ...] = ()


class ApprovalDecision(msgspec.Struct, frozen=True, kw_only=True):
    """The output of a workflow's approval step, as `book` reads it."""

    approved: bool = True
    input: dict[str, Any] | None = None
    note: str = ""
    approval_id: str = ""


class BookInput(msgspec.Struct, frozen=True, kw_only=True):
    """`book`: the held offer (or an offer) for a passenger, after the approval.

    `idempotency_key` defaults to `<workflow id>/book` in a workflow, else the task id.
    """

    passenger: Passenger | None = None  # default: the hold's passenger
    hold: HeldOffer | None = None
    offer: Offer | None = None
    approval: ApprovalDecision | None = None  # `{"offer_index": n}` books option n instead
    idempotency_key: str = ""


class PayInput(msgspec.Struct, frozen=True, kw_only=True):
    """`pay`: a booking and the token of the human approval (required).

    `amount_cents` defaults to the booking's total.
    """

    booking: Booking
    approval_token: str = ""
    amount_cents: int | None = None


class CalendarInput(msgspec.Struct, frozen=True, kw_only=True):
    """`add_to_calendar`: the booking to put in a calendar file."""

    booking: Booking


class CalendarEntry(msgspec.Struct, frozen=True, kw_only=True):
    """`add_to_calendar` output: where the .ics file is."""

    path: str
    booking_id: str
    summary: str


class ConfirmationInput(msgspec.Struct, frozen=True, kw_only=True):
    """`send_confirmation`: the booking, and the address (default: the passenger's)."""

    booking: Booking
    to: str = ""
    email: str | None = None  # same as `to` (the workflow passes the trip's email)
    payment: Payment | None = None


class ConfirmationSent(msgspec.Struct, frozen=True, kw_only=True):
    """`send_confirmation` output. `delivery` is `smtp` (sent to `server`) or `file`
    (no SMTP server configured: the message was written to `eml_path`)."""

    to: str
    subject: str
    message_id: str
    delivery: str
    server: str = ""
    eml_path: str = ""
