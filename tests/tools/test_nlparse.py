"""The offline trip-request parser: places, relative dates, party size, and what is missing."""

from datetime import date

import pytest

from natsfleet.agents.tools import InvalidQueryError, TripRequestError
from natsfleet.agents.tools.travel import parse_date, parse_passengers, parse_trip_request

SUNDAY = date(2026, 11, 22)


@pytest.mark.parametrize(
    ("text", "origin", "destination", "day", "passengers"),
    [
        ("book me a flight to New York next Tuesday", "BOS", "JFK", date(2026, 11, 24), 1),
        ("from BOS to SFO on 2026-12-03 for 2 people", "BOS", "SFO", date(2026, 12, 3), 2),
        ("fly from Boston to Chicago tomorrow", "BOS", "ORD", date(2026, 11, 23), 1),
        ("I want to fly to Paris on March 5th for two adults", "BOS", "CDG", date(2027, 3, 5), 2),
        ("Flight to SFO, from JFK, on Dec 24", "JFK", "SFO", date(2026, 12, 24), 1),
        ("to London on 3 December, 3 passengers", "BOS", "LHR", date(2026, 12, 3), 3),
        ("to new york city in 3 days for 2", "BOS", "JFK", date(2026, 11, 25), 2),
    ],
)
def test_parses_common_requests(
    text: str, origin: str, destination: str, day: date, passengers: int
) -> None:
    trip = parse_trip_request(text, SUNDAY, default_origin="BOS")
    assert (trip.origin.iata, trip.destination.iata) == (origin, destination)
    assert (trip.date, trip.passengers) == (day, passengers)
    assert trip.query().origin == origin


def test_missing_destination_is_named() -> None:
    with pytest.raises(TripRequestError) as info:
        parse_trip_request("book me a flight next Tuesday", SUNDAY, default_origin="BOS")
    assert info.value.missing == ("destination",)
    assert "missing destination" in str(info.value)
    assert info.value.retryable is False


def test_everything_missing_and_unknown_places_are_named() -> None:
    with pytest.raises(TripRequestError) as info:
        parse_trip_request("I need to go somewhere", SUNDAY)
    assert set(info.value.missing) == {"origin", "destination", "date"}
    with pytest.raises(TripRequestError) as unknown:
        parse_trip_request("from Boston to Atlantis tomorrow", SUNDAY)
    assert unknown.value.missing == ()
    assert unknown.value.unresolved == {"destination": "Atlantis"}


def test_lowercase_three_letter_words_are_not_airport_codes() -> None:
    # "see" is an IATA code (SEE); a request's ordinary words must not become airports.
    with pytest.raises(TripRequestError) as info:
        parse_trip_request("fly to see grandma tomorrow", SUNDAY, default_origin="BOS")
    assert "destination" in info.value.missing


def test_relative_dates() -> None:
    assert parse_date("next tuesday", SUNDAY) == date(2026, 11, 24)
    assert parse_date("on Sunday", SUNDAY) == date(2026, 11, 29)  # a weekday is never today
    assert parse_date("this Sunday", SUNDAY) == SUNDAY
    assert parse_date("the day after tomorrow", SUNDAY) == date(2026, 11, 24)
    assert parse_date("in two weeks", SUNDAY) == date(2026, 12, 6)
    assert parse_date("January 2nd", SUNDAY) == date(2027, 1, 2)
    assert parse_date("no date here", SUNDAY) is None
    with pytest.raises(InvalidQueryError):
        parse_date("on 2026-02-30", SUNDAY)
    with pytest.raises(InvalidQueryError, match="in the past"):
        parse_trip_request("from BOS to SFO on 2026-01-05", SUNDAY)


def test_party_size() -> None:
    assert parse_passengers("for 4 travellers") == 4
    assert parse_passengers("three adults") == 3
    assert parse_passengers("for 5 days") == 1
    assert parse_passengers("just me") == 1
