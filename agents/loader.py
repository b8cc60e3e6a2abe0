"""Resolve what `natsfleet agent run SPEC` names to an Agent class.

SPEC is a built-in name (`echo`), an import path (`package.module:Class`), or
a name registered by another distribution in the entry point group
`natsfleet.agents`:

```toml
[project.entry-points."natsfleet.agents"]
translator = "my_agents.translator:Translator"
```
"""

from importlib.metadata import entry_points

from natsfleet.agents.agent import Agent
from natsfleet.agents.builtin import BUILTIN_AGENTS
from natsfleet.agents.errors import AgentNotFound
from natsfleet.process.specs import AGENT_ENTRY_POINT_GROUP, ImportSpecError, resolve_spec

# Kept as this module's public name (re-exported by natsfleet.agents).
ENTRY_POINT_GROUP = AGENT_ENTRY_POINT_GROUP


def available_agents() -> dict[str, str]:
    """Agent names runnable without an import path -> where they come from."""
    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    found.update(BUILTIN_AGENTS)
    return found


def _import(spec: str, path: str) -> object:
    try:
        return resolve_spec(path)
    except ImportSpecError as exc:
        raise AgentNotFound(spec, exc.detail) from exc.cause


def load_agent(spec: str) -> type[Agent]:
    """The Agent subclass that `spec` names.

    Raises:
        AgentNotFound: nothing by that name, or it is not an Agent subclass.
    """
    if ":" in spec:
        target = _import(spec, spec)
    elif spec in BUILTIN_AGENTS:
        target = _import(spec, BUILTIN_AGENTS[spec])
    else:
        matches = entry_points(group=ENTRY_POINT_GROUP, name=spec)
        if not matches:
            known = ", ".join(sorted(available_agents())) or "none"
            raise AgentNotFound(
                spec, f"not a built-in or installed agent (known: {known}); or use module:Class"
            )
        target = _import(spec, next(iter(matches)).value)
    if not (isinstance(target, type) and issubclass(target, Agent)):
        raise AgentNotFound(spec, f"{target!r} is not a natsfleet Agent subclass")
    return target
