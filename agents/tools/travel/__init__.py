"""The booker's tools: airports, fares (sandbox labelled), booking, payment, calendar, mail.

Every side effect is idempotent by the task id, sandbox providers say so in
every offer, booking and text they produce, and every error is a typed
`ToolError`.
"""

from natsfleet.agents.tools.travel.airports import (
    airport_by_iata,
    airports_for_city,
    great_circle_km,
    resolve_airport,
)
from natsfleet.agents.tools.travel.booking import BookingDesk
from natsfleet.agents.tools.travel.calendar import add_to_calendar, calendar_bytes
from natsfleet.agents.tools.travel.fares import (
    SANDBOX,
    FareProvider,
    PaymentProvider,
    SandboxFareProvider,
    SandboxPayments,
)
from natsfleet.agents.tools.travel.mail import (
    Confirmation,
    SmtpConfig,
    build_message,
    send_confirmation,
)
from natsfleet.agents.tools.travel.nlparse import parse_date, parse_passengers, parse_trip_request
from natsfleet.agents.tools.travel.search import FlightSearchResult, search_flights
from natsfleet.agents.tools.travel.store import BookingStore, SqliteBookingStore
from natsfleet.agents.tools.travel.types import (
    Airport,
    Booking,
    CityAirports,
    FlightQuery,
    Hold,
    Offer,
    Passenger,
    Payment,
    TripRequest,
    format_money,
)

__all__ = [
    "SANDBOX",
    "Airport",
    "Booking",
    "BookingDesk",
    "BookingStore",
    "CityAirports",
    "Confirmation",
    "FareProvider",
    "FlightQuery",
    "FlightSearchResult",
    "Hold",
    "Offer",
    "Passenger",
    "Payment",
    "PaymentProvider",
    "SandboxFareProvider",
    "SandboxPayments",
    "SmtpConfig",
    "SqliteBookingStore",
    "TripRequest",
    "add_to_calendar",
    "airport_by_iata",
    "airports_for_city",
    "build_message",
    "calendar_bytes",
    "format_money",
    "great_circle_km",
    "parse_date",
    "parse_passengers",
    "parse_trip_request",
    "resolve_airport",
    "search_flights",
    "send_confirmation",
]
