"""A remote A2A agent's skills as a natsfleet agent: `natsfleet agent run a2a:URL`
(docs/interop.md, "Proxying a remote A2A agent into the fleet").

The proxy is a real agent process: its Hello carries the card's skills (with
their schemas when the card has them), and each attempt assigned to it is
forwarded to the remote agent as one message. The remote task's status
messages become the attempt's progress notes, its artifacts' text the task's
streamed output, and its result the attempt's `Result`. So the supervisor's
guarantees hold: timeouts, retries, reassignment across proxy replicas. An
attempt that stops (Cancel, hand-back, deadline) cancels its remote task.

How a remote outcome becomes the attempt's: completed is a `Result` (the data
part when the card gives an output schema, else `A2AResult`); failed,
rejected, canceled, input-required and auth-required are a `Failure`
`RemoteTaskEnded`, not retryable; unreachable, or the connection cut mid-task,
a `Failure` `RemoteUnavailable`, retryable; a request the agent refuses (an
A2A error), `RemoteProtocolError`, not retryable.
"""

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgspec

from natsfleet.agents.a2a.card import RemoteCard, RemoteSkill, check_url, fetch_card
from natsfleet.agents.a2a.errors import A2AClientError
from natsfleet.agents.a2a.messages import A2AResult
from natsfleet.agents.a2a.remote import RemoteAgent
from natsfleet.agents.agent import Agent, AgentConfig
from natsfleet.agents.context import TaskContext
from natsfleet.agents.errors import AgentDefinitionError, SkillError
from natsfleet.agents.skill import SkillDef
from natsfleet.protocols import ID_MAX_CHARS, SkillSpec, is_name
from natsfleet.protocols.limits import LABEL_MAX_CHARS

#: A proxy mostly waits on the network: more attempts at once than an agent doing work.
PROXY_CONFIG = AgentConfig(capacity=16)
_SLUG = re.compile(r"[^a-z0-9_-]+")


class A2AInput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The input of a proxied skill whose card gives no schema."""

    text: str = ""
    data: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """How a proxy reaches its remote agent.

    `api_key` and `headers` come from the environment (`natsfleet agent run`
    reads `NATSFLEET_A2A_KEY` and `NATSFLEET_A2A_HEADERS`), never argv.
    """

    url: str
    api_key: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    cancel_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        check_url(self.url)


class A2AProxy(Agent):
    """Base of the proxy classes `proxy_agent` builds, one per remote card."""

    remote_card: ClassVar[RemoteCard]
    settings: ClassVar[ProxySettings]
    _skill_defs: ClassVar[dict[str, SkillDef]] = {}
    _specs: ClassVar[tuple[SkillSpec, ...]] = ()
    config: ClassVar[AgentConfig] = PROXY_CONFIG

    def __init__(self) -> None:
        self.remote = RemoteAgent(
            self.settings.url,
            api_key=self.settings.api_key,
            headers=self.settings.headers,
            cancel_timeout_s=self.settings.cancel_timeout_s,
        )

    @classmethod
    def skills(cls) -> dict[str, SkillDef]:
        if not cls._skill_defs:
            raise AgentDefinitionError(f"{cls.__qualname__} is not built by proxy_agent()")
        return dict(cls._skill_defs)

    @classmethod
    def skill_specs(cls) -> tuple[SkillSpec, ...]:
        return cls._specs

    async def setup(self) -> None:
        await self.remote.open(self.remote_card)

    async def teardown(self) -> None:
        await self.remote.aclose()

    async def forward(self, skill: RemoteSkill, value: Any, ctx: TaskContext) -> Any:
        """One attempt: the remote task's updates as progress and output, its result."""
        arguments = msgspec.structs.asdict(value) if isinstance(value, A2AInput) else value

        def on_update(note: str, text: str) -> None:
            if note:
                ctx.progress(note=note[:500])
            if text:
                ctx.stream(text)

        try:
            result = await self.remote.run(skill, arguments, on_update)
        except A2AClientError as exc:
            raise SkillError(
                str(exc), retryable=exc.retryable, error_type=type(exc).__name__
            ) from None
        if skill.output_schema is not None and result.data is not None:
            return result.data
        return result


def _forwarder(skill: RemoteSkill) -> Callable[[A2AProxy, Any, TaskContext], Awaitable[Any]]:
    async def forward(self: A2AProxy, value: Any, ctx: TaskContext) -> Any:
        return await self.forward(skill, value, ctx)

    return forward


def default_name(card: RemoteCard) -> str:
    """`a2a-<card name>`, lower-cased, other characters as `-`."""
    slug = _SLUG.sub("-", card.name.lower()).strip("-") or "agent"
    return f"a2a-{slug}"[:ID_MAX_CHARS]


def proxy_agent(
    card: RemoteCard, settings: ProxySettings, *, name: str = "", skill_prefix: str = ""
) -> type[A2AProxy]:
    """The agent class proxying `card`'s skills (fleet skill = prefix + skill id).

    Raises:
        AgentDefinitionError: a skill id or the name is not a valid fleet name.
    """
    namespace: dict[str, Any] = {
        "name": name or default_name(card),
        "version": (card.card.version or "0")[:LABEL_MAX_CHARS],
        "description": f"A2A proxy of {card.name} at {card.url}"[:1000],
        "remote_card": card,
        "settings": settings,
    }
    defs: dict[str, SkillDef] = {}
    specs: list[SkillSpec] = []
    for index, skill in enumerate(card.skills):
        fleet_name = skill_prefix + skill.id
        if not is_name(fleet_name):
            raise AgentDefinitionError(
                f"remote skill {skill.id!r} as fleet skill {fleet_name!r} is not a valid name "
                f"(1 to {ID_MAX_CHARS} characters of A-Z a-z 0-9 _ - .)"
            )
        if fleet_name in defs:
            raise AgentDefinitionError(f"the card lists skill {skill.id!r} twice")
        input_type: Any = Any if skill.input_schema is not None else A2AInput
        method = f"skill_{index}"
        namespace[method] = _forwarder(skill)
        defs[fleet_name] = SkillDef(
            name=fleet_name,
            version=skill.version,
            description=skill.description,
            method=method,
            input_type=input_type,
            output_type=Any,
            decoder=msgspec.json.Decoder(input_type),
        )
        specs.append(
            SkillSpec(
                name=fleet_name,
                version=skill.version,
                description=skill.description,
                input_schema=skill.input_schema or msgspec.json.schema(A2AInput),
                output_schema=skill.output_schema or msgspec.json.schema(A2AResult),
            )
        )
    namespace["_skill_defs"] = defs
    namespace["_specs"] = tuple(specs)
    return type("A2AProxyAgent", (A2AProxy,), namespace)


def load_proxy(
    settings: ProxySettings, *, name: str = "", skill_prefix: str = "", timeout_s: float = 10.0
) -> type[A2AProxy]:
    """Fetch the card at `settings.url` and build its proxy class (before the
    agent's own event loop starts). Raises `CardUnavailable`, `AgentDefinitionError`."""
    return asyncio.run(_load(settings, name, skill_prefix, timeout_s))


async def _load(
    settings: ProxySettings, name: str, skill_prefix: str, timeout_s: float
) -> type[A2AProxy]:
    import httpx

    async with httpx.AsyncClient(headers=dict(settings.headers), timeout=timeout_s) as http:
        card = await fetch_card(http, settings.url)
    return proxy_agent(card, settings, name=name, skill_prefix=skill_prefix)
