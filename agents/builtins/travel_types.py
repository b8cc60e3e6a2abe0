"""Inputs and outputs of the booker's skills (the tool types are reused as they are)."""

from datetime import date

import msgspec

from natsfleet.agents.tools.travel import (
    Booking,
    FlightQuery,
    FlightSearchResult,
    Hold,
    Offer,
    Passenger,
    Payment,
    TripRequest,
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
    home_airport: str | None = None
    today: date | None = None


class Trip(msgspec.Struct, frozen=True, kw_only=True):
    """`parse_trip` output: the resolved trip, the search to run, and who travels."""

    trip: TripRequest
    query: FlightQuery
    passenger: Passenger
    parsed_by: str


class HoldInput(msgspec.Struct, frozen=True, kw_only=True):
    """`hold_offer`: an offer id, or offers to choose from (`choice` 1-based; 0 = cheapest).

    `search` (a `search_flights` output) or `offers` give the options.
    """

    offer_id: str = ""
    search: FlightSearchResult | None = None
    offers: tuple[Offer, ...] = ()
    choice: int = 0


class BookInput(msgspec.Struct, frozen=True, kw_only=True):
    """`book`: the held offer (or an offer) for a passenger.

    `idempotency_key` defaults to `<workflow id>/book` in a workflow, else the task id.
    """

    passenger: Passenger = DEFAULT_TRAVELLER
    hold: Hold | None = None
    offer: Offer | None = None
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
