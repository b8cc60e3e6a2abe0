"""An agent whose loop continues its task's session, for the session tests.

Runnable as `natsfleet agent run tests.session_agents:ChatAgent`. Tools are
those of tests/loop_agents.py (`gate` waits for `NATSFLEET_TEST_GATE`).
"""

import msgspec

from natsfleet.agents import Agent, AgentConfig, TaskContext, skill
from natsfleet.agents.session_config import SessionConfig
from tests.loop_agents import gate, record

#: Small enough that three short exchanges need a compaction.
BUDGET_TOKENS = 160


class Say(msgspec.Struct, frozen=True, kw_only=True):
    prompt: str


class Said(msgspec.Struct, frozen=True, kw_only=True):
    text: str
    instance_id: str
    model_calls: int


class ChatAgent(Agent):
    name = "chatter"
    version = "1"
    config = AgentConfig(
        capacity=4,
        heartbeat_interval_s=0.1,
        drain_grace_s=1.0,
        output_flush_s=0.02,
        shutdown_flush_s=2.0,
        sessions=SessionConfig(budget_tokens=BUDGET_TOKENS, lock_ttl_s=5.0, wait_s=20.0),
    )

    @skill
    async def chat(self, input: Say, ctx: TaskContext) -> Said:
        """Answer in the task's session, with the test tools."""
        text = await ctx.loop(input.prompt, tools=[record, gate], max_turns=4)
        return Said(
            text=text, instance_id=ctx.instance_id, model_calls=ctx.loop_stats[0].model_calls
        )
