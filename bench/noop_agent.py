"""The benchmark's no-op agent on the real runtime (`bench/dispatch.py --agent runtime`).

natsfleet agent run noop_agent:Noop   (with bench/ on PYTHONPATH)
"""

from typing import Any

from natsfleet.agents import Agent, AgentConfig, TaskContext, skill


class Noop(Agent):
    """Answers every `echo` task with nothing, at once."""

    name = "bench"
    config = AgentConfig(capacity=100, heartbeat_interval_s=0.5)

    @skill
    async def echo(self, input: dict[str, Any], ctx: TaskContext) -> None:
        """Do nothing."""
        return None
