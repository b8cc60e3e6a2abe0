"""A deterministic parser for travel requests, for when no language model is at hand.

It understands the common shapes: "book me a flight to New York next
Tuesday", "from BOS to SFO on 2026-12-03 for 2 people", "fly from Boston to
Chicago tomorrow", "to Paris on March 5th for two adults". Places are city
names or IATA codes written in capitals (so "see" is never Gillespie Field,
SEE). Relative dates resolve against the `today` given by the caller; a
weekday ("Tuesday", "next Tuesday") means the first one after today.
"""

import re
from datetime import date, timedelta

from natsfleet.agents.tools.errors import (
    InvalidQueryError,
    TripRequestError,
    UnknownAirportError,
)
from natsfleet.agents.tools.travel.airports import airport_by_iata, airports_for_city
from natsfleet.agents.tools.travel.types import Airport, TripRequest

_WEEKDAYS = {
    name: i
    for i, names in enumerate(
        [
            ("monday", "mon"),
            ("tuesday", "tue", "tues"),
            ("wednesday", "wed"),
            ("thursday", "thu", "thur", "thurs"),
            ("friday", "fri"),
            ("saturday", "sat"),
            ("sunday", "sun"),
        ]
    )
    for name in names
}
_MONTH_NAMES = (
    "january february march april may june july august september october november december"
).split()
_MONTHS = {
    name: i + 1
    for i, full in enumerate(_MONTH_NAMES)
    for name in (full, full[:3], "sept" if full == "september" else full[:3])
}
_NUMBERS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine".split())}
_NUMBER = r"(\d{1,2}|" + "|".join(_NUMBERS) + ")"
_WEEKDAY = "(" + "|".join(sorted(_WEEKDAYS, key=len, reverse=True)) + r")\b"
_MONTH = "(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_ORDINAL = r"(\d{1,2})(?:st|nd|rd|th)?"

# Words that end a place name: dates, counts, and the other clauses of a request.
_STOP_WORDS = {
    *_WEEKDAYS, *_MONTHS, "on", "next", "this", "today", "tomorrow", "tonight", "for", "in",
    "at", "from", "to", "leaving", "departing", "returning", "via", "please", "and", "with",
    "by", "around", "the", "a", "an", "me", "us",
}  # fmt: skip
_PLACE_WORDS = 4


def _number(word: str) -> int:
    return int(word) if word.isdigit() else _NUMBERS[word.lower()]


def _next_weekday(today: date, weekday: int, *, allow_today: bool) -> date:
    ahead = (weekday - today.weekday()) % 7
    if ahead == 0 and not allow_today:
        ahead = 7
    return today + timedelta(days=ahead)


def _month_day(today: date, month: int, day: int, year: str | None) -> date:
    if year:
        return date(int(year), month, day)
    candidate = date(today.year, month, day)
    # "March 5" said in December means next March.
    return candidate if candidate >= today else date(today.year + 1, month, day)


def parse_date(text: str, today: date) -> date | None:
    """The travel date mentioned in `text`, resolved against `today`; None if none is.

    Raises:
        InvalidQueryError: a date that does not exist ("February 30").
    """
    t = text.lower()
    try:
        if m := re.search(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b", t):
            return date(int(m[1]), int(m[2]), int(m[3]))
        if m := re.search(rf"\b{_MONTH}\s+{_ORDINAL}\b(?:,?\s+(\d{{4}}))?", t):
            return _month_day(today, _MONTHS[m[1]], int(m[2]), m[3])
        if m := re.search(rf"\b{_ORDINAL}\s+(?:of\s+)?{_MONTH}(?:,?\s+(\d{{4}}))?", t):
            return _month_day(today, _MONTHS[m[2]], int(m[1]), m[3])
    except ValueError as exc:
        raise InvalidQueryError(f"no such date in {text!r}: {exc}") from None
    if re.search(r"\bday after tomorrow\b", t):
        return today + timedelta(days=2)
    if re.search(r"\btomorrow\b", t):
        return today + timedelta(days=1)
    if re.search(r"\b(today|tonight)\b", t):
        return today
    if m := re.search(rf"\bin\s+{_NUMBER}\s+(day|week)s?\b", t):
        return today + timedelta(days=_number(m[1]) * (7 if m[2] == "week" else 1))
    if re.search(r"\bin\s+a\s+week\b", t):
        return today + timedelta(days=7)
    if m := re.search(rf"\b(this\s+)?{_WEEKDAY}", t):
        return _next_weekday(today, _WEEKDAYS[m[2]], allow_today=bool(m[1]))
    return None


def parse_passengers(text: str) -> int:
    """How many travel ("for 2 people", "three adults", "for me" = 1); 1 when unsaid."""
    people = r"(?:people|persons|passengers|adults|travell?ers|tickets|seats|pax|of us)\b"
    if m := re.search(rf"\b{_NUMBER}\s+{people}", text, re.I):
        return _number(m[1])
    # "for 2" is a party of two; "for 2 days" is not.
    if m := re.search(rf"\bfor\s+{_NUMBER}\b(?!\s+(?:days?|weeks?|nights?|hours?)\b)", text, re.I):
        return _number(m[1])
    return 1


def _resolve_place(words: list[str]) -> Airport | None:
    # Longest prefix first: "New York please" -> "New York".
    for n in range(len(words), 0, -1):
        phrase = " ".join(words[:n])
        try:
            if n == 1 and re.fullmatch(r"[A-Z]{3}", phrase):
                return airport_by_iata(phrase)
            return airports_for_city(phrase).primary
        except UnknownAirportError:
            continue
    return None


def _place_after(keyword: str, text: str) -> tuple[Airport | None, str | None]:
    """The first place after `keyword` that resolves, else the first name-like phrase."""
    unresolved = None
    # Lookahead, so "want to fly to Paris" still sees the second "to".
    for m in re.finditer(rf"\b{keyword}\s+(?=(.+))", text, re.I):
        words: list[str] = []
        for raw in m[1].split():
            word = raw.strip(".,;:!?\"'()")
            if not word or word.lower() in _STOP_WORDS or word[0].isdigit():
                break
            words.append(word)
            if len(words) == _PLACE_WORDS or raw[-1] in ".,;:!?":
                break
        airport = _resolve_place(words)
        if airport is not None:
            return airport, None
        if words and words[0][0].isupper() and unresolved is None:
            unresolved = " ".join(words)  # "to Atlantis": a name, just not one we know
    return None, unresolved


def parse_trip_request(text: str, today: date, *, default_origin: str | None = None) -> TripRequest:
    """Parse a one-way flight request.

    Args:
        text: What the traveller wrote.
        today: The date relative words ("tomorrow", "next Tuesday") count from.
        default_origin: IATA code or city used when the text names no origin
            (the traveller's home airport).

    Raises:
        TripRequestError: origin, destination or date missing or not a known place;
            `missing` and `unresolved` name which.
        InvalidQueryError: the date does not exist or is in the past.
    """
    missing: list[str] = []
    unresolved: dict[str, str] = {}
    destination, bad = _place_after("to", text)
    if destination is None:
        missing.append("destination") if bad is None else unresolved.setdefault("destination", bad)
    origin, bad = _place_after("from", text)
    if origin is None and bad is None and default_origin:
        origin, bad = _place_after("from", f"from {default_origin}")
    if origin is None:
        missing.append("origin") if bad is None else unresolved.setdefault("origin", bad)
    travel_date = parse_date(text, today)
    if travel_date is None:
        missing.append("date")
    if missing or unresolved:
        raise TripRequestError(missing, unresolved)
    assert origin is not None and destination is not None and travel_date is not None
    if travel_date < today:
        raise InvalidQueryError(f"{travel_date.isoformat()} is in the past (today is {today})")
    return TripRequest(
        origin=origin,
        destination=destination,
        date=travel_date,
        passengers=parse_passengers(text),
    )
