"""Typed inputs and outputs of the booker's tools.

Money is integer cents with an ISO currency code (no float rounding in a
payment); times are timezone-aware datetimes in the airport's own zone, and
every airport carries its IANA zone name so the zone survives JSON (which
keeps only the UTC offset).
"""

from datetime import date, datetime

import msgspec


class Airport(msgspec.Struct, frozen=True, kw_only=True):
    """An airport from the airportsdata database."""

    iata: str
    icao: str
    name: str
    city: str
    subdivision: str
    country: str
    lat: float
    lon: float
    tz: str

    @property
    def label(self) -> str:
        """`New York (JFK)`."""
        return f"{self.city} ({self.iata})"


class CityAirports(msgspec.Struct, frozen=True, kw_only=True):
    """The airports serving a city; `primary` is the one to pick without other hints."""

    city: str
    primary: Airport
    airports: tuple[Airport, ...]


class FlightQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Input of `search_flights`: IATA codes, the local departure date, and travellers."""

    origin: str
    destination: str
    date: date
    passengers: int = 1


class Offer(msgspec.Struct, frozen=True, kw_only=True):
    """A priced, bookable flight. `sandbox` is True for offers that are not real flights."""

    offer_id: str
    provider: str
    sandbox: bool
    carrier: str
    flight_number: str
    origin: Airport
    destination: Airport
    departs_at: datetime
    arrives_at: datetime
    duration_min: int
    distance_km: int
    passengers: int
    price_per_passenger_cents: int
    total_cents: int
    currency: str = "USD"

    def summary(self) -> str:
        """One line a person can read; sandbox offers say so first."""
        label = "[SANDBOX - not a real flight] " if self.sandbox else ""
        hours, minutes = divmod(self.duration_min, 60)
        return (
            f"{label}{self.carrier} {self.flight_number} {self.origin.label} "
            f"{self.departs_at:%a %d %b %H:%M} -> {self.destination.label} "
            f"{self.arrives_at:%a %d %b %H:%M} ({hours}h{minutes:02d}), "
            f"{self.passengers} pax, {format_money(self.total_cents, self.currency)}"
        )


class Hold(msgspec.Struct, frozen=True, kw_only=True):
    """An offer reserved at its price until `expires_at` (UTC)."""

    hold_id: str
    offer: Offer
    expires_at: datetime


class Passenger(msgspec.Struct, frozen=True, kw_only=True):
    """The traveller the booking is for (the lead passenger for a group)."""

    name: str
    email: str


class Booking(msgspec.Struct, frozen=True, kw_only=True):
    """A confirmed booking. `idempotency_key` is the task id that made it."""

    booking_id: str
    idempotency_key: str
    reference: str
    offer: Offer
    passenger: Passenger
    created_at: datetime
    sandbox: bool


class Payment(msgspec.Struct, frozen=True, kw_only=True):
    """A captured payment for a booking; at most one per booking."""

    payment_id: str
    booking_id: str
    amount_cents: int
    currency: str
    approval_token: str
    paid_at: datetime
    sandbox: bool


class TripRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What a traveller asked for, resolved to airports and a date."""

    origin: Airport
    destination: Airport
    date: date
    passengers: int = 1

    def query(self) -> FlightQuery:
        """The flight search this request asks for."""
        return FlightQuery(
            origin=self.origin.iata,
            destination=self.destination.iata,
            date=self.date,
            passengers=self.passengers,
        )


def format_money(cents: int, currency: str) -> str:
    """`USD 1,234.50`."""
    return f"{currency} {cents // 100:,}.{cents % 100:02d}"
