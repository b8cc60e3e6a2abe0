"""Parsing a travel request: a model extracts the fields, the deterministic parser backs it.

The model only names places and a date; airports are still resolved by the
airport database, and a model answer that does not resolve falls back to the
deterministic parser (which is also what runs offline).
"""

import logging
import re
from datetime import date

import msgspec

from natsfleet.agents.llm import TaskLLM, Tier, user
from natsfleet.agents.tools import InvalidQueryError, ToolError
from natsfleet.agents.tools.travel import TripRequest, parse_trip_request, resolve_airport

log = logging.getLogger(__name__)

_SYSTEM = (
    "Extract a one-way flight request. Reply with one JSON object only: "
    '{"origin": "<IATA code or city, or null>", "destination": "<IATA code or city>", '
    '"date": "YYYY-MM-DD", "passengers": <int>}. Resolve relative dates against today.'
)
_JSON = re.compile(r"\{.*\}", re.S)


class _Extracted(msgspec.Struct, frozen=True):
    destination: str
    date: date
    origin: str | None = None
    passengers: int = 1


def _from_model(answer: str, home: str | None, today: date) -> TripRequest | None:
    match = _JSON.search(answer)
    if match is None:
        return None
    try:
        fields = msgspec.json.decode(match[0], type=_Extracted)
        origin = fields.origin or home
        if origin is None or fields.date < today:
            return None
        return TripRequest(
            origin=resolve_airport(origin),
            destination=resolve_airport(fields.destination),
            date=fields.date,
            passengers=fields.passengers,
        )
    except (msgspec.DecodeError, msgspec.ValidationError, ToolError) as exc:
        log.info("model's trip fields unusable (%s); using the rule-based parser", exc)
        return None


async def parse_trip_text(
    text: str, today: date, home: str | None, llm: TaskLLM | None
) -> tuple[TripRequest, str]:
    """The trip and who parsed it (`model:<deployment>` or `rules`).

    Raises:
        TripRequestError, InvalidQueryError: neither the model nor the rules understood it.
    """
    if llm is not None and not llm.router.offline:
        prompt = f"Today is {today:%A %Y-%m-%d}. Home airport: {home or 'unknown'}.\n\n{text}"
        request = user(prompt, system=_SYSTEM, tier=Tier.SMALL, max_tokens=200)
        response = await llm.complete(request)
        trip = _from_model(response.text, home, today)
        if trip is not None:
            return trip, f"model:{response.deployment}"
    trip = parse_trip_request(text, today, default_origin=home)
    if trip.origin.iata == trip.destination.iata:
        raise InvalidQueryError("origin and destination are the same airport")
    return trip, "rules"
