"""The Agent base class and its small config Struct."""

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import msgspec

from natsfleet.agents.errors import AgentDefinitionError
from natsfleet.agents.mcp.config import AnyServer
from natsfleet.agents.session_config import SessionConfig
from natsfleet.agents.skill import SkillDef, skills_of
from natsfleet.protocols import SkillSpec, check_token


class AgentConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How one instance of an agent behaves.

    Attributes:
        capacity: Most attempts running at once (a task waiting on `ctx.call`
            does not count).
        heartbeat_interval_s: Time between heartbeats.
        drain_grace_s: On SIGTERM, how long running attempts may still finish
            before the rest are handed back.
        output_flush_s: `ctx.stream()` text is batched for this long before it
            is published, so a token stream is not one NATS message per token.
        recent_window_s: How long a finished token stays in `Heartbeat.recent`.
        shutdown_flush_s: After the grace period, how long to keep trying to
            get held outcomes acknowledged before leaving anyway.
        sessions: How loops use a task's session (token budget, lock expiry).
        mcp_servers: MCP servers whose tools its skills may give a loop
            (`await ctx.mcp_tools("name")`; docs/interop.md). Each is started or
            connected on first use and stopped after the drain; the fleet file's
            `[[agents.mcp_servers]]` are added to these.
    """

    capacity: int = 4
    heartbeat_interval_s: float = 2.0
    drain_grace_s: float = 10.0
    output_flush_s: float = 0.05
    recent_window_s: float = 30.0
    shutdown_flush_s: float = 5.0
    sessions: SessionConfig = SessionConfig()
    mcp_servers: tuple[AnyServer, ...] = ()

    def __post_init__(self) -> None:
        if self.capacity < 1:
            raise ValueError("capacity must be at least 1")
        if self.heartbeat_interval_s <= 0:
            raise ValueError("heartbeat_interval_s must be positive")
        if self.drain_grace_s < 0 or self.output_flush_s < 0:
            raise ValueError("drain_grace_s and output_flush_s cannot be negative")
        names = [server.name for server in self.mcp_servers]
        if len(set(names)) != len(names):
            raise ValueError(f"two MCP servers share a name: {', '.join(names)}")


class Agent:
    """Base class of every agent: a name, a version and `@skill` methods.

    ```python
    class Summarizer(Agent):
        name = "summarizer"
        version = "1.0"
        config = AgentConfig(capacity=8)

        @skill
        async def summarize(self, input: Text, ctx: TaskContext) -> Summary: ...
    ```

    `setup()` runs once before the instance says hello and `teardown()` once
    after it said bye; override them to open and close clients, and to set
    `self.llm` and `self.tools`, which every skill's context carries.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "0"
    description: ClassVar[str] = ""
    config: ClassVar[AgentConfig] = AgentConfig()
    #: Every skill's `ctx.llm`; set it in `setup()` (`natsfleet.agents.llm` provides one).
    llm: Any = None
    #: Every skill's `ctx.tools` (copied per attempt); set it in `setup()`.
    tools: Mapping[str, Any] = MappingProxyType({})

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            try:
                check_token(cls.name, "agent name")
            except ValueError as exc:
                raise AgentDefinitionError(str(exc)) from None

    @classmethod
    def skills(cls) -> dict[str, SkillDef]:
        """This agent's skills by name (resolved and checked on first use)."""
        if not cls.name:
            raise AgentDefinitionError(f"{cls.__qualname__} has no `name`")
        found = skills_of(cls)
        if not found:
            raise AgentDefinitionError(f"agent {cls.name!r} declares no @skill")
        return found

    @classmethod
    def skill_specs(cls) -> tuple[SkillSpec, ...]:
        return tuple(definition.spec() for definition in cls.skills().values())

    async def setup(self) -> None:
        """Called once before the instance announces itself."""

    async def teardown(self) -> None:
        """Called once when the instance has left the fleet."""
