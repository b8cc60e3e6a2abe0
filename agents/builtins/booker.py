"""The booker: a request in words to a paid, calendared, confirmed (sandbox) booking.

Skills, in the order the travel workflow runs them: `parse_trip`,
`search_flights`, `hold_offer`, `book` (idempotent by key), `pay` (only with
the human approval's token), `add_to_calendar`, `send_confirmation`. The fare
and payment providers are the labelled sandboxes of `natsfleet.agents.tools.travel`.

Files live under `$NATSFLEET_DATA_DIR` (default `./.natsfleet`): the booking
store `bookings.sqlite`, calendars in `calendar/`, and, when no SMTP server is
configured (`$NATSFLEET_SMTP_HOST` unset), confirmations as `.eml` in `outbox/`.
"""

import asyncio
import logging
import os
from datetime import date
from pathlib import Path

from natsfleet.agents.agent import Agent, AgentConfig
from natsfleet.agents.builtins.common import data_dir
from natsfleet.agents.builtins.travel_types import (
    DEFAULT_TRAVELLER,
    BookInput,
    CalendarEntry,
    CalendarInput,
    ConfirmationInput,
    ConfirmationSent,
    HeldOffer,
    HoldInput,
    ParseTripInput,
    PayInput,
    Trip,
)
from natsfleet.agents.builtins.trip_parse import parse_trip_text
from natsfleet.agents.context import TaskContext
from natsfleet.agents.errors import SkillError
from natsfleet.agents.llm import TaskLLM
from natsfleet.agents.skill import skill
from natsfleet.agents.telemetry import execute_tool
from natsfleet.agents.tools.travel import (
    Booking,
    BookingDesk,
    FlightQuery,
    FlightSearchResult,
    Offer,
    Passenger,
    Payment,
    SandboxFareProvider,
    SandboxPayments,
    SmtpConfig,
    SqliteBookingStore,
    add_to_calendar,
    build_message,
    search_flights,
    send_confirmation,
)
from natsfleet.agents.tools.travel.calendar import booking_summary

log = logging.getLogger(__name__)

SMTP_HOST_ENV = "NATSFLEET_SMTP_HOST"


def options_of(input: HoldInput) -> tuple[Offer, ...]:
    return input.offers or (input.search.offers if input.search is not None else ())


def pick_offer(input: HoldInput) -> str:
    """The offer id to hold: the given id, else the chosen (or cheapest) option."""
    if input.offer_id:
        return input.offer_id
    offers = options_of(input)
    if not offers:
        raise SkillError("hold_offer needs an offer_id, offers or a search result", retryable=False)
    if input.choice:
        return choose(offers, input.choice).offer_id
    return min(offers, key=lambda o: (o.total_cents, o.departs_at)).offer_id


def choose(offers: tuple[Offer, ...], number: object) -> Offer:
    """Option `number` (1-based) of `offers`; a SkillError names the valid range."""
    if not isinstance(number, int) or not 1 <= number <= len(offers):
        raise SkillError(f"offer {number!r} is not one of 1-{len(offers)}", retryable=False)
    return offers[number - 1]


def booked_offer(input: BookInput) -> Offer:
    """The held offer, or the option the approver chose (`{"offer_index": n}`)."""
    chosen = (input.approval.input or {}).get("offer_index") if input.approval else None
    if chosen is not None and input.hold is not None:
        return choose(input.hold.options, chosen)
    offer = input.hold.offer if input.hold is not None else input.offer
    if offer is None:
        raise SkillError("book needs a hold or an offer", retryable=False)
    return offer


def write_eml(booking: Booking, to: str, folder: Path) -> tuple[Path, str, str]:
    """The confirmation as `<folder>/<booking id>.eml` (rewritten on a retry)."""
    message = build_message(booking, to, SmtpConfig.from_env().sender)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{booking.booking_id}.eml"
    staging = path.with_suffix(".eml.tmp")
    staging.write_bytes(message.as_bytes())
    staging.replace(path)
    return path, str(message["Subject"]), str(message["Message-ID"])


class Booker(Agent):
    """Books flights through pluggable (sandbox) providers, paying only after approval."""

    name = "booker"
    version = "1"
    description = "Parses trip requests, searches, holds, books, pays, calendars and confirms."
    config = AgentConfig(capacity=8)

    def __init__(self, desk: BookingDesk | None = None, folder: Path | None = None) -> None:
        self._desk = desk
        self._folder = folder

    async def setup(self) -> None:
        self._ensure()

    def _ensure(self) -> tuple[BookingDesk, Path]:
        if self._folder is None:
            self._folder = data_dir()
        if self._desk is None:
            store = SqliteBookingStore(self._folder / "bookings.sqlite")
            self._desk = BookingDesk(SandboxFareProvider(), SandboxPayments(), store)
        return self._desk, self._folder

    @skill
    async def parse_trip(self, input: ParseTripInput, ctx: TaskContext) -> Trip:
        """A request in words to airports, a date and a party size (model, else rules)."""
        llm = ctx.llm if isinstance(ctx.llm, TaskLLM) else None
        today = input.today or date.today()
        trip, parsed_by = await parse_trip_text(input.request, today, input.home_airport, llm)
        passenger = input.traveller
        if input.email:
            passenger = Passenger(name=passenger.name, email=input.email)
        return Trip(
            origin=trip.origin.iata,
            destination=trip.destination.iata,
            date=trip.date,
            passengers=trip.passengers,
            origin_airport=trip.origin,
            destination_airport=trip.destination,
            passenger=passenger,
            email=passenger.email,
            parsed_by=parsed_by,
        )

    @skill(name="search_flights")
    async def search(self, input: FlightQuery, ctx: TaskContext) -> FlightSearchResult:
        """Offers for a one-way query, cheapest first (sandbox provider, labelled)."""
        desk, _ = self._ensure()
        with execute_tool("search_flights", provider="sandbox"):
            return await search_flights(
                input.origin, input.destination, input.date, input.passengers, provider=desk.fares
            )

    @skill
    async def hold_offer(self, input: HoldInput, ctx: TaskContext) -> HeldOffer:
        """Hold the chosen offer (default: the cheapest) at its price."""
        desk, _ = self._ensure()
        with execute_tool("hold_offer"):
            hold = await desk.hold_offer(pick_offer(input))
        return HeldOffer(
            hold_id=hold.hold_id,
            offer=hold.offer,
            expires_at=hold.expires_at,
            summary=hold.offer.summary(),
            passenger=input.trip.passenger if input.trip is not None else DEFAULT_TRAVELLER,
            options=options_of(input) or (hold.offer,),
        )

    @skill
    async def book(self, input: BookInput, ctx: TaskContext) -> Booking:
        """Book the held offer, once per key (`<workflow>/book`, or the task id)."""
        desk, _ = self._ensure()
        offer = booked_offer(input)
        passenger = input.passenger or (input.hold.passenger if input.hold else DEFAULT_TRAVELLER)
        key = input.idempotency_key or (
            f"{ctx.workflow_id}/book" if ctx.workflow_id else ctx.task_id
        )
        with execute_tool("book"):
            return await desk.book(offer, passenger, key)

    @skill
    async def pay(self, input: PayInput, ctx: TaskContext) -> Payment:
        """Pay for a booking; refuses without the human approval's token."""
        desk, _ = self._ensure()
        amount = (
            input.booking.offer.total_cents if input.amount_cents is None else input.amount_cents
        )
        with execute_tool("pay", provider="sandbox"):
            return await desk.pay(input.booking, amount, input.approval_token or None)

    @skill
    async def add_to_calendar(self, input: CalendarInput, ctx: TaskContext) -> CalendarEntry:
        """Write the booking as an iCalendar file; returns its path."""
        _, folder = self._ensure()
        with execute_tool("add_to_calendar"):
            path = await asyncio.to_thread(add_to_calendar, input.booking, folder / "calendar")
        return CalendarEntry(
            path=str(path.resolve()),
            booking_id=input.booking.booking_id,
            summary=booking_summary(input.booking),
        )

    @skill
    async def send_confirmation(
        self, input: ConfirmationInput, ctx: TaskContext
    ) -> ConfirmationSent:
        """Email the confirmation over SMTP, or write it as .eml when no server is set."""
        _, folder = self._ensure()
        to = input.to or input.email or input.booking.passenger.email
        if os.environ.get(SMTP_HOST_ENV):
            config = SmtpConfig.from_env()
            with execute_tool("send_confirmation", delivery="smtp"):
                sent = await send_confirmation(input.booking, to, config)
            return ConfirmationSent(
                to=sent.to,
                subject=sent.subject,
                message_id=sent.message_id,
                delivery="smtp",
                server=f"{config.host}:{config.port}",
            )
        path, subject, message_id = await asyncio.to_thread(
            write_eml, input.booking, to, folder / "outbox"
        )
        log.info("no SMTP server configured (%s unset): wrote %s", SMTP_HOST_ENV, path)
        return ConfirmationSent(
            to=to,
            subject=subject,
            message_id=message_id,
            delivery="file",
            eml_path=str(path.resolve()),
        )
