"""An agent whose output size is its input: `tests.payload_agents:InflateAgent`."""

import msgspec

from natsfleet.agents import Agent, TaskContext, skill
from tests.fleet_agents import FAST


class Inflate(msgspec.Struct, frozen=True, kw_only=True):
    size_bytes: int


class Inflated(msgspec.Struct, frozen=True, kw_only=True):
    text: str


class InflateAgent(Agent):
    """Answers a small input with an output of `size_bytes` characters."""

    name = "inflate"
    version = "1"
    config = FAST

    @skill
    async def inflate(self, input: Inflate, ctx: TaskContext) -> Inflated:
        return Inflated(text="y" * input.size_bytes)
