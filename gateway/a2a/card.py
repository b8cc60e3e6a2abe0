"""The Agent Card, built from the fleet's registry.

Each skill a live instance offers is an A2A skill (tagged with the agents
that offer it). A2A's `AgentSkill` has no field for schemas, so the input and
output JSON Schemas of every skill go in one card extension,
`SCHEMAS_EXTENSION`, as `params[skill] = {version, input_schema, output_schema}`.
The card is rebuilt from the registry at most every `ttl_s`; when the
supervisor does not answer the last card is served.
"""

import logging
import time
from dataclasses import dataclass
from importlib import metadata

from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentExtension,
    AgentInterface,
    AgentSkill,
    APIKeySecurityScheme,
    HTTPAuthSecurityScheme,
    SecurityRequirement,
    SecurityScheme,
    StringList,
)

from natsfleet.client import FleetClient
from natsfleet.protocols import AgentInfo, NatsFleetError, SkillSpec

log = logging.getLogger(__name__)

SCHEMAS_EXTENSION = "urn:natsfleet:a2a:skill-schemas:v1"
#: The header an API key may come in (else `Authorization: Bearer <key>`).
API_KEY_HEADER = "X-API-Key"
MODES = ["application/json", "text/plain"]


@dataclass(frozen=True, slots=True)
class CardSettings:
    name: str
    description: str
    url: str
    ttl_s: float = 2.0


#: Addresses a server binds to but no client can connect to.
_WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104


def default_card_url(host: str, port: int) -> str:
    """The Agent Card's URL without `--public-url`: the bound address, except that a
    wildcard names none a client can use (this machine's loopback instead: a client
    elsewhere needs `--public-url`, since the A2A client refuses a card of another origin)."""
    host = _WILDCARDS.get(host, host)
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def _version() -> str:
    try:
        return metadata.version("natsfleet")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a source tree
        return "0"


def skills_of(agents: tuple[AgentInfo, ...]) -> dict[str, tuple[SkillSpec, set[str]]]:
    """Each skill a live instance offers, with the highest version seen and its agents."""
    found: dict[str, tuple[SkillSpec, set[str]]] = {}
    for info in agents:
        if not info.alive:
            continue
        for spec in info.skills:
            known = found.get(spec.name)
            if known is None:
                found[spec.name] = (spec, {info.agent})
                continue
            best = spec if spec.version > known[0].version else known[0]
            found[spec.name] = (best, known[1] | {info.agent})
    return found


def build_card(settings: CardSettings, agents: tuple[AgentInfo, ...]) -> AgentCard:
    skills = skills_of(agents)
    card = AgentCard(
        name=settings.name,
        description=settings.description,
        version=_version(),
        supported_interfaces=[
            AgentInterface(url=settings.url, protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        default_input_modes=MODES,
        default_output_modes=MODES,
    )
    card.security_schemes["bearer"].CopyFrom(
        SecurityScheme(http_auth_security_scheme=HTTPAuthSecurityScheme(scheme="Bearer"))
    )
    card.security_schemes["apiKey"].CopyFrom(
        SecurityScheme(
            api_key_security_scheme=APIKeySecurityScheme(location="header", name=API_KEY_HEADER)
        )
    )
    for scheme in ("bearer", "apiKey"):
        requirement = SecurityRequirement()
        requirement.schemes[scheme].CopyFrom(StringList())
        card.security_requirements.append(requirement)
    schemas = AgentExtension(
        uri=SCHEMAS_EXTENSION,
        description="JSON Schemas of each skill's input and output (params[skill])",
    )
    for name in sorted(skills):
        spec, offered_by = skills[name]
        card.skills.append(
            AgentSkill(
                id=name,
                name=name,
                description=spec.description or name,
                tags=sorted(offered_by),
                input_modes=MODES,
                output_modes=MODES,
            )
        )
        schemas.params.update(
            {
                name: {
                    "version": spec.version,
                    "input_schema": spec.input_schema,
                    "output_schema": spec.output_schema,
                }
            }
        )
    card.capabilities.extensions.append(schemas)
    return card


class CardSource:
    """The current card: rebuilt from the registry at most every `ttl_s`."""

    def __init__(self, client: FleetClient, settings: CardSettings) -> None:
        self.client = client
        self.settings = settings
        self.card = build_card(settings, ())
        self._built_at = float("-inf")

    async def current(self, _: AgentCard | None = None) -> AgentCard:
        if time.monotonic() - self._built_at < self.settings.ttl_s:
            return self.card
        try:
            agents = await self.client.agents(timeout_s=2.0)
        except NatsFleetError as exc:
            log.warning("agent card: the registry did not answer (%s); serving the last card", exc)
            return self.card
        self.card = build_card(self.settings, agents)
        self._built_at = time.monotonic()
        return self.card
