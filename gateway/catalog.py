"""The fleet's tools: every skill live agents announce and every loaded workflow.

Read from the supervisor's control API (`agents`, `workflows`) every
`refresh_s`, and on demand when a call names a tool not seen yet. Nothing
here is state another replica needs: each replica reads the same registry.
When the list changes, `on_change` is awaited (the MCP server announces
`notifications/tools/list_changed` to its listeners).
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import jsonschema

from natsfleet.bus import NoResponders, RequestTimeout
from natsfleet.client import FleetClient
from natsfleet.gateway import schemas
from natsfleet.protocols import (
    AgentInfo,
    ErrorCode,
    NatsFleetError,
    RemoteError,
    SkillSpec,
    WorkflowInfo,
)

log = logging.getLogger(__name__)

#: A workflow's tool is `workflow.<name>`; a skill's is its own name.
WORKFLOW_PREFIX = "workflow."
#: MCP tool names (SEP-986): what a client may call.
TOOL_NAME_MAX_CHARS = 128


@dataclass(frozen=True, slots=True)
class FleetTool:
    """One MCP tool and what a call to it submits."""

    name: str
    kind: Literal["skill", "workflow"]
    target: str  # the skill or workflow name
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None
    wrapped: bool  # the skill's input is the `input` argument
    validator: Any  # jsonschema validator of the arguments

    def errors(self, arguments: dict[str, Any], limit: int = 5) -> list[str]:
        """Why `arguments` break the input schema (at most `limit` reasons)."""
        found = []
        try:
            for error in self.validator.iter_errors(arguments):
                where = "/".join(str(p) for p in error.absolute_path) or "(arguments)"
                found.append(f"{where}: {error.message[:200]}")
                if len(found) >= limit:
                    break
        except Exception as exc:  # an announced schema jsonschema cannot apply (a bad regex)
            return [f"the input schema of {self.name} cannot be checked: {type(exc).__name__}"]
        return found

    def fingerprint(self) -> bytes:
        return schemas.fingerprint(
            [self.name, self.kind, self.description, self.input_schema, self.output_schema]
        )


def _validator(schema: dict[str, Any]) -> Any:
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema)


def skill_tool(spec: SkillSpec) -> FleetTool | None:
    """The tool of a skill, None if its announced schema is unusable."""
    input_schema, wrapped = schemas.tool_input_schema(spec.input_schema)
    try:
        validator = _validator(input_schema)
    except Exception as exc:  # a Hello is untrusted: any schema jsonschema refuses
        log.warning("skill %s announces an unusable input schema: %s", spec.name, str(exc)[:200])
        return None
    output = schemas.object_schema(spec.output_schema) if spec.output_schema else None
    return FleetTool(
        name=spec.name,
        kind="skill",
        target=spec.name,
        description=spec.description or f"natsfleet skill {spec.name} (v{spec.version})",
        input_schema=input_schema,
        output_schema=output,
        wrapped=wrapped,
        validator=validator,
    )


def workflow_tool(info: WorkflowInfo) -> FleetTool:
    schema = schemas.workflow_input_schema(info.required_input)
    return FleetTool(
        name=WORKFLOW_PREFIX + info.name,
        kind="workflow",
        target=info.name,
        description=info.description or f"natsfleet workflow {info.name}",
        input_schema=schema,
        output_schema=None,
        wrapped=False,
        validator=_validator(schema),
    )


def build(
    agents: tuple[AgentInfo, ...], workflows: tuple[WorkflowInfo, ...]
) -> dict[str, FleetTool]:
    """Tools by name: skills of live, not draining instances, then workflows.

    Instances are read in id order and the first one to offer a skill gives
    its schema, so every replica builds the same list from the same registry.
    A workflow whose tool name a skill already has is left out (logged).
    """
    tools: dict[str, FleetTool] = {}
    for info in sorted(agents, key=lambda a: a.instance_id):
        if not info.alive or info.draining:
            continue
        for spec in info.skills:
            if spec.name not in tools and (tool := skill_tool(spec)) is not None:
                tools[tool.name] = tool
    for workflow in sorted(workflows, key=lambda w: w.name):
        tool = workflow_tool(workflow)
        if len(tool.name) > TOOL_NAME_MAX_CHARS:
            log.warning("workflow %s: tool name over %d characters", workflow.name, 128)
        elif tool.name in tools:
            log.warning("workflow %s: a skill is already named %s", workflow.name, tool.name)
        else:
            tools[tool.name] = tool
    return tools


class Catalog:
    """The current tool list of one replica, refreshed from the supervisor."""

    def __init__(
        self,
        client: FleetClient,
        *,
        control_timeout_s: float,
        on_change: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.client = client
        self.control_timeout_s = control_timeout_s
        self.on_change = on_change
        self.tools: dict[str, FleetTool] = {}
        self._fingerprint = b""
        self._lock = asyncio.Lock()

    async def refresh(self) -> bool:
        """Read the registry again; True if the tool list changed.

        Without an answering supervisor the last list is kept (a gateway
        started before its supervisor lists nothing until one answers).
        """
        async with self._lock:
            try:
                agents = await self.client.agents(timeout_s=self.control_timeout_s)
                workflows = await self._workflows()
            except (NoResponders, RequestTimeout) as exc:
                log.debug("tool list not refreshed: %s", exc)
                return False
            tools = build(agents, workflows)
            stamp = b"\n".join(tools[name].fingerprint() for name in sorted(tools))
            if stamp == self._fingerprint:
                return False
            self.tools, self._fingerprint = tools, stamp
        log.info("tools: %s", ", ".join(sorted(tools)) or "(none)")
        if self.on_change is not None:
            await self.on_change()
        return True

    async def _workflows(self) -> tuple[WorkflowInfo, ...]:
        try:
            return await self.client.workflows(timeout_s=self.control_timeout_s)
        except RemoteError as exc:
            if exc.code == ErrorCode.UNKNOWN_VERB:  # a supervisor older than `workflows`
                return ()
            raise

    async def find(self, name: str) -> FleetTool | None:
        """The tool named `name`, reading the registry once more if it is not known yet."""
        tool = self.tools.get(name)
        if tool is None:
            await self.refresh()
            tool = self.tools.get(name)
        return tool

    async def run(self, refresh_s: float) -> None:
        """Refresh forever, every `refresh_s` (the process's TaskGroup owns this)."""
        while True:
            try:
                await self.refresh()
            except NatsFleetError as exc:
                log.warning("tool list not refreshed: %s", exc)
            await asyncio.sleep(refresh_s)
