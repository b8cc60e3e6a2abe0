"""natsfleet.agents: write an agent as a class with typed skills; run each
instance as its own process.

```python
from natsfleet.agents import Agent, TaskContext, skill

class Summarizer(Agent):
    name = "summarizer"

    @skill
    async def summarize(self, input: Text, ctx: TaskContext) -> Summary: ...
```

Run it with `natsfleet agent run my_module:Summarizer`.
"""

from natsfleet.agents.agent import Agent, AgentConfig
from natsfleet.agents.context import TaskContext
from natsfleet.agents.errors import (
    AgentDefinitionError,
    AgentError,
    AgentNotFound,
    SkillError,
    SubtaskFailed,
)
from natsfleet.agents.loader import ENTRY_POINT_GROUP, available_agents, load_agent
from natsfleet.agents.process import run_agent, serve
from natsfleet.agents.runtime import AgentRuntime, default_instance_id
from natsfleet.agents.skill import SkillDef, skill

__all__ = [
    "ENTRY_POINT_GROUP",
    "Agent",
    "AgentConfig",
    "AgentDefinitionError",
    "AgentError",
    "AgentNotFound",
    "AgentRuntime",
    "SkillDef",
    "SkillError",
    "SubtaskFailed",
    "TaskContext",
    "available_agents",
    "default_instance_id",
    "load_agent",
    "run_agent",
    "serve",
    "skill",
]
