"""`search_flights`: the booker's search tool over any `FareProvider`."""

from datetime import date

import msgspec

from natsfleet.agents.tools.travel.airports import resolve_airport
from natsfleet.agents.tools.travel.fares import FareProvider, SandboxFareProvider
from natsfleet.agents.tools.travel.types import FlightQuery, Offer


class FlightSearchResult(msgspec.Struct, frozen=True, kw_only=True):
    """Offers for a query, cheapest first, and whether they are sandbox offers."""

    query: FlightQuery
    provider: str
    sandbox: bool
    offers: tuple[Offer, ...]

    def text(self) -> str:
        """Numbered offer lines for a person or a model to choose from."""
        header = f"{len(self.offers)} offers from provider {self.provider!r}"
        if self.sandbox:
            header += " (SANDBOX: invented flights for demos; nothing real can be booked)"
        lines = [f"{i}. {o.summary()}  [offer {o.offer_id}]" for i, o in enumerate(self.offers, 1)]
        return "\n".join([header + ":", *lines])


async def search_flights(
    origin: str,
    destination: str,
    date: date,
    passengers: int = 1,
    *,
    provider: FareProvider | None = None,
) -> FlightSearchResult:
    """Search one-way flights.

    Args:
        origin: IATA code or city name ("BOS", "Boston"); a city means its primary airport.
        destination: Same as `origin`.
        date: Local departure date.
        passengers: Party size, 1..9.
        provider: Fare source; the labelled sandbox when omitted.

    Raises:
        UnknownAirportError: a place is neither a code nor a known city.
        InvalidQueryError: same airport, or a party size out of range.
    """
    provider = provider or SandboxFareProvider()
    query = FlightQuery(
        origin=resolve_airport(origin).iata,
        destination=resolve_airport(destination).iata,
        date=date,
        passengers=passengers,
    )
    offers = await provider.search(query)
    return FlightSearchResult(
        query=query,
        provider=provider.name,
        sandbox=any(o.sandbox for o in offers),
        offers=tuple(offers),
    )
