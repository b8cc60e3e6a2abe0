"""A remote agent's Agent Card as natsfleet needs it: its skills, their schemas
when the card has them, and how it wants the API key.

A2A's `AgentSkill` has no schema field. A card served by natsfleet's own A2A
gateway puts every skill's input and output JSON Schema in one card extension
(`SCHEMAS_EXTENSION`, `params[skill] = {version, input_schema, output_schema}`),
and this client reads it; other cards' skills take text and an optional data
part (`TEXT_INPUT_SCHEMA`).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from natsfleet.agents.a2a.errors import CardUnavailable
from natsfleet.protocols.limits import LABEL_MAX_CHARS

if TYPE_CHECKING:
    import httpx
    from a2a.types import AgentCard

#: The card extension natsfleet's A2A gateway (gateway/a2a/card.py) puts schemas in.
SCHEMAS_EXTENSION = "urn:natsfleet:a2a:skill-schemas:v1"
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
            params = json_format.MessageToDict(extension.params)
            return params if isinstance(params, dict) else {}
    return {}


def _schema(entry: Any, field: str) -> dict[str, Any] | None:
    value = entry.get(field) if isinstance(entry, dict) else None
    return value if isinstance(value, dict) and value else None


def _key_header(card: "AgentCard") -> str:
    for scheme in card.security_schemes.values():
        kind = scheme.WhichOneof("scheme")
        if kind == "api_key_security_scheme":
            api_key = scheme.api_key_security_scheme
            if api_key.location.lower() == "header" and api_key.name:
                return str(api_key.name)
    return "Authorization"


def read_card(url: str, card: "AgentCard") -> RemoteCard:
    """The skills (with schemas from the extension) and key header of `card`."""
    if not card.skills:
        raise CardUnavailable(url, f"its card ({card.name or 'unnamed'}) lists no skills")
    schemas = _schemas(card)
    skills = []
    for skill in card.skills:
        entry = schemas.get(skill.id)
        version = entry.get("version") if isinstance(entry, dict) else None
        skills.append(
            RemoteSkill(
                id=skill.id,
                name=skill.name or skill.id,
                description=skill.description,
                # A label on the wire (protocols/limits.py): a longer one
                # would make the proxy's Hello refused.
                version=version[:LABEL_MAX_CHARS] if isinstance(version, str) and version else "1",
                input_schema=_schema(entry, "input_schema"),
                output_schema=_schema(entry, "output_schema"),
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


async def fetch_card(http: "httpx.AsyncClient", url: str) -> RemoteCard:
    """Fetch and read the card at `<url>/.well-known/agent-card.json`.

    Raises:
        CardUnavailable: no answer, an HTTP error, not a card, or no skills.
    """
    from a2a.client import A2ACardResolver
    from a2a.utils.errors import A2AError

    check_url(url)
    try:
        card = await A2ACardResolver(http, url).get_agent_card()
    except A2AError as exc:
        raise CardUnavailable(url, str(exc) or type(exc).__name__) from None
    if not card.supported_interfaces:
        raise CardUnavailable(url, "its card names no interface (URL) to send messages to")
    return read_card(url, card)
