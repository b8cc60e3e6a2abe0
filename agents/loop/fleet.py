"""Fleet skills as tools: any skill of the fleet, described from the registry.

The registry's Hello messages carry each skill's description and input JSON
Schema (`SkillSpec`); `skill_tools` turns the chosen ones into tools. Calling
one is a sub-task through the supervisor (load-balanced, timed out, fenced,
traced, like `ctx.call`) whose idempotency key is the call's stable key
(`ToolContext.key`): a re-run of an unjournaled call after a crash gets the
same child task, not a second one.
"""

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import msgspec

from natsfleet.agents.llm.types import ToolSpec
from natsfleet.agents.loop.tools import ToolContext, inline_schema, provider_tool_name
from natsfleet.protocols import AgentInfo, SkillSpec


class SkillCaller(Protocol):
    """The runtime's side: submit a keyed child and wait for it; list the registry."""

    async def call_skill(
        self, skill: str, input: Any, *, key: str, timeout_s: float | None
    ) -> msgspec.Raw: ...

    async def agents(self, timeout_s: float | None = None) -> tuple[AgentInfo, ...]: ...


#: A handoff target's input property the loop fills with the conversation so far.
CONVERSATION = "conversation"


class SkillTool:
    """One fleet skill offered to the model as a tool.

    With `handoff=True` it is a *handoff*: calling it hands the task over to
    that agent, and its answer ends the loop as the final answer (the model is
    not asked again). If the skill's input has a string property
    `conversation`, the loop fills it with the conversation so far (the model
    does not see that property), so the other agent continues where this one
    stopped.
    """

    def __init__(
        self,
        skill: SkillSpec,
        agent: str,
        caller: SkillCaller,
        *,
        timeout_s: float | None,
        handoff: bool = False,
    ) -> None:
        self.skill = skill.name
        self.agent = agent
        self.ends_loop = handoff
        self._caller = caller
        self.timeout_s = timeout_s
        parameters = inline_schema(dict(skill.input_schema)) or {"type": "object"}
        if parameters.get("type") != "object":
            parameters = {"type": "object"}  # providers take object arguments only
        self._fills_conversation = False
        props = parameters.get("properties")
        if handoff and isinstance(props, dict) and CONVERSATION in props:
            self._fills_conversation = True
            parameters = {
                **parameters,
                "properties": {k: v for k, v in props.items() if k != CONVERSATION},
                "required": [r for r in parameters.get("required", []) if r != CONVERSATION],
            }
        description = skill.description or f"skill {skill.name} of agent {agent}"
        if handoff:
            description = (
                f"Hand the task over to agent {agent}: {description} "
                "Its answer is the final answer."
            )
        self.spec = ToolSpec(
            name=provider_tool_name(skill.name, "_"),  # skill names may have dots
            description=description,
            parameters=parameters,
            returns=type_name(skill.output_schema),
        )

    async def run(self, arguments: dict[str, Any], ctx: ToolContext) -> Any:
        # The child's own input check refuses what does not decode (bad_input),
        # which reaches the model as this call's error.
        if self._fills_conversation:
            arguments = {**arguments, CONVERSATION: ctx.conversation}
        return await self._caller.call_skill(
            self.skill, arguments, key=ctx.key, timeout_s=self.timeout_s
        )


def type_name(schema: dict[str, Any]) -> str:
    """The name of a JSON Schema's type (`Findings` for msgspec's `#/$defs/Findings`)."""
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return ref.removeprefix("#/$defs/")[:100]
    title = schema.get("title")
    return title[:100] if isinstance(title, str) else ""


def select_skills(
    agents: Iterable[AgentInfo],
    *,
    names: Sequence[str] | None = None,
    agent_types: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
) -> list[tuple[str, SkillSpec]]:
    """`(agent type, skill)` of every live skill chosen by name and/or agent type
    (None = no filter), each once, sorted by name (a stable tool list)."""
    found: dict[str, tuple[str, SkillSpec]] = {}
    for info in agents:
        if not info.alive or info.draining:
            continue
        if agent_types is not None and info.agent not in agent_types:
            continue
        for spec in info.skills:
            if names is not None and spec.name not in names:
                continue
            if spec.name in exclude:
                continue
            found.setdefault(spec.name, (info.agent, spec))
    return [found[name] for name in sorted(found)]


async def skill_tools(
    caller: SkillCaller,
    *,
    names: Sequence[str] | None = None,
    agent_types: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    timeout_s: float | None = 300.0,
    handoff: bool = False,
) -> list[SkillTool]:
    """The fleet's skills as tools (or handoffs), chosen by name, by agent type, or all."""
    chosen = select_skills(
        await caller.agents(), names=names, agent_types=agent_types, exclude=exclude
    )
    return [
        SkillTool(spec, agent, caller, timeout_s=timeout_s, handoff=handoff)
        for agent, spec in chosen
    ]
