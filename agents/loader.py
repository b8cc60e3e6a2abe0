"""Resolve what `natsfleet agent run SPEC` names to an Agent class.

SPEC is a built-in name (`echo`), an import path (`package.module:Class`), or
a name registered by another distribution in the entry point group
`natsfleet.agents`:

```toml
[project.entry-points."natsfleet.agents"]
translator = "my_agents.translator:Translator"
```
"""

import importlib
from importlib.metadata import entry_points

from natsfleet.agents.agent import Agent
from natsfleet.agents.builtin import BUILTIN_AGENTS
from natsfleet.agents.errors import AgentNotFound

ENTRY_POINT_GROUP = "natsfleet.agents"


def available_agents() -> dict[str, str]:
    """Agent names runnable without an import path -> where they come from."""
    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    found.update(BUILTIN_AGENTS)
    return found


def _import(spec: str, path: str) -> object:
    module_name, _, attr_path = path.partition(":")
    try:
        target: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise AgentNotFound(spec, f"cannot import {module_name!r}: {exc}") from exc
    for attr in attr_path.split("."):
        try:
            target = getattr(target, attr)
        except AttributeError:
            raise AgentNotFound(spec, f"{module_name!r} has no {attr_path!r}") from None
    return target


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
