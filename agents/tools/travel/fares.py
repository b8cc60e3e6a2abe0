"""Fare providers: the `FareProvider` interface and the labelled sandbox one.

The sandbox invents flights. It is deterministic (same route, date and party
size give the same offers, in any process, on any day) and says what it is:
provider `sandbox`, `sandbox=True` on every offer, hold and booking, carrier
"Sandbox Air", and "[SANDBOX ...]" in every summary. Its offer ids encode the
query, so any process can turn an id back into the offer without shared state.
"""

import hashlib
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from natsfleet.agents.tools.errors import InvalidQueryError, UnknownOfferError
from natsfleet.agents.tools.travel.airports import airport_by_iata, great_circle_km
from natsfleet.agents.tools.travel.types import (
    Airport,
    Booking,
    FlightQuery,
    Hold,
    Offer,
    Passenger,
)

SANDBOX = "sandbox"
SANDBOX_CARRIER = "Sandbox Air"
MAX_PASSENGERS = 9
HOLD_TTL = timedelta(minutes=15)
_MIN_DISTANCE_KM = 50
# Departure windows (local time, minutes after midnight): morning, midday, evening.
_WINDOWS_MIN = ((6 * 60, 11 * 60), (11 * 60, 16 * 60), (16 * 60, 22 * 60))
_WINDOW_PRICE_FACTOR = (1.10, 0.95, 1.00)
# Weekday demand: Monday=0 ... Sunday=6; Fridays and Sundays cost more.
_WEEKDAY_PRICE_FACTOR = (1.05, 0.90, 0.90, 1.00, 1.20, 0.95, 1.20)
_OFFER_ID = re.compile(r"^sbx-([A-Z]{3})-([A-Z]{3})-(\d{8})-(\d)-(\d)$")


class FareProvider(Protocol):
    """Where flights are searched, held and booked. A real one wraps an airline API."""

    name: str

    async def search(self, query: FlightQuery) -> list[Offer]:
        """Offers for the query, cheapest first."""
        ...

    async def get_offer(self, offer_id: str) -> Offer:
        """The offer with this id, as issued; raises `UnknownOfferError`."""
        ...

    async def hold(self, offer_id: str) -> Hold:
        """Reserve the offer at its price for a while."""
        ...

    async def confirm(self, offer: Offer, passenger: Passenger, idempotency_key: str) -> str:
        """Book the offer; returns the provider's booking reference (PNR).

        Must be idempotent by `idempotency_key`: a real provider receives it as
        its own idempotency key, so a retry after a lost reply books once.
        """
        ...


class PaymentProvider(Protocol):
    """Where a booking is paid. Called only with a human approval token."""

    name: str

    async def capture(
        self, booking: Booking, amount_cents: int, approval_token: str, idempotency_key: str
    ) -> str:
        """Take the payment; returns the provider's payment reference. Idempotent by key."""
        ...


def _digest_int(*parts: object) -> int:
    # sha256, not `random`: the same inputs give the same numbers in every process and version.
    data = "|".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big")


def _reference(prefix: str, *parts: object) -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud on a phone
    n = _digest_int(*parts)
    chars = []
    for _ in range(6):
        n, i = divmod(n, len(alphabet))
        chars.append(alphabet[i])
    return prefix + "".join(chars)


def _validate(query: FlightQuery) -> tuple[Airport, Airport, float]:
    if not 1 <= query.passengers <= MAX_PASSENGERS:
        raise InvalidQueryError(f"passengers must be 1..{MAX_PASSENGERS}, got {query.passengers}")
    origin = airport_by_iata(query.origin)
    destination = airport_by_iata(query.destination)
    distance_km = great_circle_km(origin, destination)
    if distance_km < _MIN_DISTANCE_KM:
        raise InvalidQueryError(
            f"{origin.iata} and {destination.iata} are {distance_km:.0f} km apart: no flight"
        )
    return origin, destination, distance_km


def _block_minutes(distance_km: float, variation_min: int) -> int:
    # ~800 km/h average ground speed plus ~45 min for taxi, climb and approach.
    minutes = 45 + distance_km / 800 * 60 + variation_min
    return int(5 * round(minutes / 5))


def _make_offer(query: FlightQuery, index: int) -> Offer:
    origin, destination, distance_km = _validate(query)
    key = (origin.iata, destination.iata, query.date.isoformat(), index)
    start_min, end_min = _WINDOWS_MIN[index]
    slot = start_min + 15 * (_digest_int(*key, "slot") % ((end_min - start_min) // 15))
    departs_at = datetime.combine(
        query.date, time(slot // 60, slot % 60), tzinfo=ZoneInfo(origin.tz)
    )
    duration_min = _block_minutes(distance_km, 5 * (_digest_int(*key, "wind") % 5) - 10)
    arrives_at = (departs_at + timedelta(minutes=duration_min)).astimezone(ZoneInfo(destination.tz))
    base_usd = 59 + 0.085 * distance_km
    jitter = 0.85 + (_digest_int(*key, "fare") % 41) / 100  # 0.85 .. 1.25
    factor = _WINDOW_PRICE_FACTOR[index] * _WEEKDAY_PRICE_FACTOR[query.date.weekday()] * jitter
    per_passenger_cents = round(base_usd * factor) * 100 - 1  # fares end in .99
    return Offer(
        offer_id=f"sbx-{origin.iata}-{destination.iata}-{query.date:%Y%m%d}-{query.passengers}-{index}",
        provider=SANDBOX,
        sandbox=True,
        carrier=SANDBOX_CARRIER,
        flight_number=f"SBX{100 + _digest_int(*key, 'flight') % 900}",
        origin=origin,
        destination=destination,
        departs_at=departs_at,
        arrives_at=arrives_at,
        duration_min=duration_min,
        distance_km=round(distance_km),
        passengers=query.passengers,
        price_per_passenger_cents=per_passenger_cents,
        total_cents=per_passenger_cents * query.passengers,
    )


class SandboxFareProvider:
    """A clearly labelled fake fare source for demos and tests; books nothing real.

    Args:
        clock: Returns the current UTC time; used only for hold expiry.
    """

    name = SANDBOX

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))

    async def search(self, query: FlightQuery) -> list[Offer]:
        """Three deterministic offers (morning, midday, evening), cheapest first."""
        offers = [_make_offer(query, i) for i in range(len(_WINDOWS_MIN))]
        return sorted(offers, key=lambda o: (o.total_cents, o.departs_at))

    async def get_offer(self, offer_id: str) -> Offer:
        """Rebuild the offer from its id."""
        match = _OFFER_ID.match(offer_id)
        if match is None:
            raise UnknownOfferError(offer_id)
        origin, destination, day, passengers, index = match.groups()
        try:
            travel_date = date(int(day[:4]), int(day[4:6]), int(day[6:]))
        except ValueError:
            raise UnknownOfferError(offer_id) from None
        if int(index) >= len(_WINDOWS_MIN):
            raise UnknownOfferError(offer_id)
        query = FlightQuery(
            origin=origin, destination=destination, date=travel_date, passengers=int(passengers)
        )
        return _make_offer(query, int(index))

    async def hold(self, offer_id: str) -> Hold:
        """A 15-minute hold; the sandbox never runs out of seats."""
        offer = await self.get_offer(offer_id)
        return Hold(hold_id=f"hold-{offer_id}", offer=offer, expires_at=self._clock() + HOLD_TTL)

    async def confirm(self, offer: Offer, passenger: Passenger, idempotency_key: str) -> str:
        """A booking reference derived from the key: a retry gets the same one."""
        return _reference("SB", idempotency_key, offer.offer_id)


class SandboxPayments:
    """A fake card processor: approves every approved payment, moves no money."""

    name = SANDBOX

    async def capture(
        self, booking: Booking, amount_cents: int, approval_token: str, idempotency_key: str
    ) -> str:
        """A payment reference derived from the key."""
        return _reference("SBPAY-", idempotency_key, booking.booking_id, amount_cents)
