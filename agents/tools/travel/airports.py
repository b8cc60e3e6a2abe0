"""Airport lookup by IATA code or city name, over the airportsdata package.

airportsdata knows ~8,000 airports with IANA time zones but not which one a
traveller means by "New York". We combine IATA's multi-airport city groups
(NYC = JFK + LGA) with a few well-known additions and a short list of
primaries; elsewhere the city's "International" airport wins.
"""

import functools
import math
import re
from typing import TYPE_CHECKING

from natsfleet.agents.tools.errors import UnknownAirportError
from natsfleet.agents.tools.travel.types import Airport, CityAirports

if TYPE_CHECKING:
    import airportsdata

# Airports that serve a city but are listed under a neighbouring one.
_METRO_EXTRAS: dict[str, tuple[str, ...]] = {
    "new york": ("EWR",),
    "washington": ("BWI",),
    "san francisco": ("OAK", "SJC"),
    "los angeles": ("BUR", "LGB", "SNA"),
    "miami": ("FLL",),
}
# Where the "International" rule picks wrong or cannot decide.
_PRIMARY: dict[str, str] = {
    "new york": "JFK",
    "london": "LHR",
    "paris": "CDG",
    "tokyo": "HND",
    "chicago": "ORD",
    "washington": "IAD",
    "houston": "IAH",
    "dallas": "DFW",
    "rome": "FCO",
    "milan": "MXP",
    "stockholm": "ARN",
    "oslo": "OSL",
    "moscow": "SVO",
    "seoul": "ICN",
    "shanghai": "PVG",
    "beijing": "PEK",
    "osaka": "KIX",
    "sao paulo": "GRU",
    "toronto": "YYZ",
    "istanbul": "IST",
    "bangkok": "BKK",
    "buenos aires": "EZE",
    "rio de janeiro": "GIG",
    "berlin": "BER",  # the database still lists Tegel (TXL), closed in 2020
    "miami": "MIA",
    "los angeles": "LAX",
    "san francisco": "SFO",
}
_ALIASES = {
    "nyc": "new york",
    "new york city": "new york",
    "sf": "san francisco",
    "la": "los angeles",
}
# Not where a passenger flight leaves from.
_NOT_PASSENGER = re.compile(r"seaplane|heliport|air force|air base|army|naval|\bafb\b", re.I)
_IATA = re.compile(r"^[A-Za-z]{3}$")


def _to_airport(row: "airportsdata.Airport") -> Airport:
    return Airport(
        iata=row["iata"],
        icao=row["icao"],
        name=row["name"],
        city=row["city"],
        subdivision=row["subd"],
        country=row["country"],
        lat=float(row["lat"]),
        lon=float(row["lon"]),
        tz=row["tz"],
    )


@functools.cache
def _by_iata() -> dict[str, Airport]:
    import airportsdata  # ~0.1 s to parse its CSV: only when a lookup happens

    return {code: _to_airport(row) for code, row in airportsdata.load("IATA").items()}


@functools.cache
def _by_city() -> dict[str, tuple[Airport, ...]]:
    import airportsdata

    cities: dict[str, list[Airport]] = {}
    for airport in _by_iata().values():
        if airport.tz and not _NOT_PASSENGER.search(airport.name):
            cities.setdefault(_normalise(airport.city), []).append(airport)
    for group in airportsdata.load_iata_macs().values():
        members = cities.setdefault(_normalise(group["name"]), [])
        for code in group["airports"]:
            if code in _by_iata() and _by_iata()[code] not in members:
                members.append(_by_iata()[code])
    for city, codes in _METRO_EXTRAS.items():
        cities.setdefault(city, []).extend(_by_iata()[c] for c in codes if c in _by_iata())
    return {city: tuple(airports) for city, airports in cities.items()}


def _normalise(name: str) -> str:
    name = re.sub(r"[^\w\s]", " ", name.lower())
    name = re.sub(r"\s+", " ", name).strip()
    return _ALIASES.get(name, name)


def airport_by_iata(code: str) -> Airport:
    """The airport with IATA code `code` (case-insensitive).

    Raises:
        UnknownAirportError: no airport has this code.
    """
    airport = _by_iata().get(code.strip().upper())
    if airport is None:
        raise UnknownAirportError(code)
    return airport


def _rank(city: str, airport: Airport) -> tuple[int, int, int, str]:
    primary = 0 if _PRIMARY.get(city) == airport.iata else 1
    international = 0 if "international" in airport.name.lower() else 1
    # "Seattle Tacoma International" over "King County International".
    named = 0 if city in _normalise(airport.name) else 1
    return (primary, international, named, airport.iata)


def airports_for_city(name: str) -> CityAirports:
    """The airports serving city `name` ("New York" -> JFK, LGA, EWR), primary first.

    Raises:
        UnknownAirportError: no airport lists this city.
    """
    city = _normalise(name)
    airports = _by_city().get(city)
    if not airports:
        raise UnknownAirportError(name)
    group = _mac_members().get(city)
    if group:
        # IATA's city group plus known neighbours, not every airstrip named after the city.
        keep = group | set(_METRO_EXTRAS.get(city, ()))
        airports = tuple(a for a in airports if a.iata in keep)
    ranked = tuple(sorted(airports, key=lambda a: _rank(city, a)))
    return CityAirports(city=ranked[0].city, primary=ranked[0], airports=ranked)


@functools.cache
def _mac_members() -> dict[str, frozenset[str]]:
    import airportsdata

    return {
        _normalise(group["name"]): frozenset(group["airports"])
        for group in airportsdata.load_iata_macs().values()
    }


def resolve_airport(text: str) -> Airport:
    """An IATA code or a city name, resolved to one airport (a city's primary).

    Raises:
        UnknownAirportError: neither a code nor a known city.
    """
    text = text.strip()
    if _IATA.match(text) and text.upper() in _by_iata():
        # "Rome" and "ROM" differ; a bare 3-letter word is a code only if it is one.
        if text.isupper() or _normalise(text) not in _by_city():
            return _by_iata()[text.upper()]
    return airports_for_city(text).primary


def great_circle_km(a: Airport, b: Airport) -> float:
    """Distance between two airports along the Earth's surface (haversine, R = 6371 km)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a.lat, a.lon, b.lat, b.lon))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0 * math.asin(math.sqrt(h))
