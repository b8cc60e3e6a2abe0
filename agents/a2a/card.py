"""A remote agent's Agent Card as natsfleet needs it: its skills, their schemas
when the card has them, and how it wants the API key.

A2A's `AgentSkill` has no schema field. A card served by natsfleet's own A2A
gateway puts every skill's input and output JSON Schema in one card extension
(`SCHEMAS_EXTENSION`, `params[skill] = {version, input_schema, output_schema}`),
and this client reads it; other cards' skills take text and an optional data
part (`TEXT_INPUT_SCHEMA`).
"""

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from natsfleet.agents.a2a.errors import CardUnavailable
from natsfleet.protocols import integral_numbers
from natsfleet.protocols.limits import ID_MAX_CHARS, LABEL_MAX_CHARS

if TYPE_CHECKING:
    import httpx
    from a2a.types import AgentCard

#: The card extension natsfleet's A2A gateway (gateway/a2a/card.py) puts schemas in.
SCHEMAS_EXTENSION = "urn:natsfleet:a2a:skill-schemas:v1"
#: Largest card read (bytes of its body): a bigger one is refused while it
#: streams in, so a hostile server cannot grow the client without bound.
MAX_CARD_BYTES = 1024 * 1024
#: Longest the whole card fetch may take (a server dripping bytes is cut off).
CARD_TIMEOUT_S = 30.0
#: Most skills a card may list (more: the card is refused), so the tools or
#: the proxy's Hello stay small.
MAX_CARD_SKILLS = 256
#: Longest skill description kept (a longer one is cut, with a warning).
SKILL_DESCRIPTION_MAX_CHARS = 4096
#: Largest input or output schema of one skill, as JSON (larger: card refused).
SKILL_SCHEMA_MAX_BYTES = 64 * 1024
#: Where the card is read, under the agent's URL (the A2A spec's well-known path).
CARD_PATH = "/.well-known/agent-card.json"
#: The arguments of a skill whose card gives no schema: its message's text
#: part, and a data part if given.
TEXT_INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "description": "the message to the remote agent"},
        "data": {"type": "object", "description": "structured input, sent as a data part"},
    },
    "required": ["text"],
}
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RemoteSkill:
    """One skill of a remote agent.

    Attributes:
        id: The card's skill id (sent as the message's metadata `skill`).
        input_schema, output_schema: From the schemas extension; None when the
            card has none (the input is then text and an optional data part).
    """

    id: str
    name: str
    description: str
    version: str = "1"
    input_schema: dict[str, Any] | None = None
    output_schema: dict[str, Any] | None = None

    @property
    def arguments_schema(self) -> dict[str, Any]:
        return self.input_schema if self.input_schema is not None else TEXT_INPUT_SCHEMA


@dataclass(frozen=True, slots=True)
class RemoteCard:
    """What the client keeps of a card: the SDK's card, the skills, the key header."""

    url: str
    card: "AgentCard"
    skills: tuple[RemoteSkill, ...]
    #: The header an API key goes in, as the card's security schemes ask
    #: (`Authorization` as a bearer token unless it names an API-key header).
    key_header: str = "Authorization"

    @property
    def name(self) -> str:
        return self.card.name

    def skill(self, skill_id: str) -> RemoteSkill:
        for found in self.skills:
            if found.id == skill_id:
                return found
        known = ", ".join(s.id for s in self.skills) or "none"
        raise CardUnavailable(self.url, f"no skill {skill_id!r} on its card (skills: {known})")

    def key_headers(self, api_key: str | None) -> dict[str, str]:
        if not api_key:
            return {}
        if self.key_header == "Authorization":
            return {"Authorization": f"Bearer {api_key}"}
        return {self.key_header: api_key}


def _schemas(card: "AgentCard") -> Mapping[str, Any]:
    from google.protobuf import json_format

    for extension in card.capabilities.extensions:
        if extension.uri == SCHEMAS_EXTENSION and extension.HasField("params"):
            # protobuf's Struct holds every number as a double: 4 -> 4.0.
            params = integral_numbers(json_format.MessageToDict(extension.params))
            return params if isinstance(params, dict) else {}
    return {}


def _schema(url: str, skill_id: str, entry: Any, field: str) -> dict[str, Any] | None:
    value = entry.get(field) if isinstance(entry, dict) else None
    if not isinstance(value, dict) or not value:
        return None
    size = len(json.dumps(value).encode())
    if size > SKILL_SCHEMA_MAX_BYTES:
        raise CardUnavailable(
            url,
            f"skill {skill_id[:ID_MAX_CHARS]!r}'s {field} is {size} bytes of JSON, "
            f"over the limit of {SKILL_SCHEMA_MAX_BYTES}",
        )
    return value


def _description(url: str, skill_id: str, text: str) -> str:
    if len(text) <= SKILL_DESCRIPTION_MAX_CHARS:
        return text
    _log.warning(
        "A2A agent %s: skill %r's description (%d characters) cut to %d",
        url,
        skill_id,
        len(text),
        SKILL_DESCRIPTION_MAX_CHARS,
    )
    return text[:SKILL_DESCRIPTION_MAX_CHARS]


def _key_header(card: "AgentCard") -> str:
    for scheme in card.security_schemes.values():
        kind = scheme.WhichOneof("scheme")
        if kind == "api_key_security_scheme":
            api_key = scheme.api_key_security_scheme
            if api_key.location.lower() == "header" and api_key.name:
                return str(api_key.name)
    return "Authorization"


def read_card(url: str, card: "AgentCard") -> RemoteCard:
    """The skills (with schemas from the extension) and key header of `card`.

    Raises:
        CardUnavailable: no skills, more than `MAX_CARD_SKILLS`, a skill id
            empty or over `ID_MAX_CHARS`, a schema over `SKILL_SCHEMA_MAX_BYTES`.
    """
    if not card.skills:
        raise CardUnavailable(url, f"its card ({card.name or 'unnamed'}) lists no skills")
    if len(card.skills) > MAX_CARD_SKILLS:
        raise CardUnavailable(
            url, f"its card lists {len(card.skills)} skills, over the limit of {MAX_CARD_SKILLS}"
        )
    schemas = _schemas(card)
    skills = []
    for skill in card.skills:
        if not skill.id or len(skill.id) > ID_MAX_CHARS:
            raise CardUnavailable(
                url,
                f"its card has a skill id of {len(skill.id)} characters "
                f"(1 to {ID_MAX_CHARS} allowed): {skill.id[:ID_MAX_CHARS]!r}",
            )
        entry = schemas.get(skill.id)
        version = entry.get("version") if isinstance(entry, dict) else None
        skills.append(
            RemoteSkill(
                id=skill.id,
                name=(skill.name or skill.id)[:LABEL_MAX_CHARS],
                description=_description(url, skill.id, skill.description),
                # A label on the wire (protocols/limits.py): a longer one
                # would make the proxy's Hello refused.
                version=version[:LABEL_MAX_CHARS] if isinstance(version, str) and version else "1",
                input_schema=_schema(url, skill.id, entry, "input_schema"),
                output_schema=_schema(url, skill.id, entry, "output_schema"),
            )
        )
    return RemoteCard(url=url, card=card, skills=tuple(skills), key_header=_key_header(card))


def check_url(url: str) -> str:
    """An agent URL is http(s) (`CardUnavailable` otherwise), checked before any request."""
    if not url.startswith(("http://", "https://")) or len(url) > 2048:
        raise CardUnavailable(url[:200], "the URL must start with http:// or https://")
    return url


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def check_same_origin(card: RemoteCard) -> None:
    """Every JSON-RPC interface of the card is where the card came from, so a
    key sent to it goes nowhere else (`CardUnavailable` otherwise)."""
    for interface in card.card.supported_interfaces:
        if interface.protocol_binding == "JSONRPC" and _origin(interface.url) != _origin(card.url):
            raise CardUnavailable(
                card.url,
                f"its card sends messages to {interface.url[:200]}, another origin: "
                "the key is not sent there (fetch the card from that origin)",
            )


async def _card_body(http: "httpx.AsyncClient", url: str, max_bytes: int) -> bytes:
    """The card's body, read as it streams and refused past `max_bytes`."""
    target = f"{url.rstrip('/')}{CARD_PATH}"
    async with http.stream("GET", target) as response:
        if response.status_code >= 400:
            raise CardUnavailable(url, f"GET {target[:200]} answered HTTP {response.status_code}")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise CardUnavailable(
                url, f"its card is {declared} bytes, over the limit of {max_bytes}"
            )
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > max_bytes:
                raise CardUnavailable(url, f"its card is over the limit of {max_bytes} bytes")
        return bytes(body)


async def fetch_card(
    http: "httpx.AsyncClient",
    url: str,
    *,
    max_card_bytes: int = MAX_CARD_BYTES,
    timeout_s: float = CARD_TIMEOUT_S,
) -> RemoteCard:
    """Fetch and read the card at `<url>/.well-known/agent-card.json`: at most
    `max_card_bytes` of body, within `timeout_s` in all. The SDK parses it.

    Raises:
        CardUnavailable: no answer, an HTTP error, too big or too slow, not a
            card, or its skills break the limits of `read_card`.
    """
    import httpx
    from a2a.client.card_resolver import parse_agent_card
    from google.protobuf.json_format import ParseError

    check_url(url)
    try:
        async with asyncio.timeout(timeout_s):
            body = await _card_body(http, url, max_card_bytes)
    except TimeoutError:
        raise CardUnavailable(url, f"its card did not arrive within {timeout_s} s") from None
    except httpx.HTTPError as exc:
        raise CardUnavailable(url, f"fetching its card: {exc or type(exc).__name__}") from None
    try:
        card = parse_agent_card(json.loads(body))
    # JSONDecodeError and UnicodeDecodeError are ValueErrors; deep nesting, a RecursionError.
    except (ValueError, TypeError, AttributeError, RecursionError, ParseError) as exc:
        raise CardUnavailable(url, f"its card is not a valid Agent Card: {exc}") from None
    if not card.supported_interfaces:
        raise CardUnavailable(url, "its card names no interface (URL) to send messages to")
    return read_card(url, card)
