"""An agent whose model may call a remote A2A agent's skills as tools, for
tests/a2a_client/. Runnable as `natsfleet agent run tests.a2a_agents:A2ALoopAgent`."""

import msgspec

from natsfleet.agents import Agent, TaskContext, skill
from natsfleet.agents.a2a import A2AAgent
from tests.loop_agents import FAST


class AskRemote(msgspec.Struct, frozen=True, kw_only=True):
    prompt: str
    url: str
    timeout_s: float = 10.0


class Told(msgspec.Struct, frozen=True, kw_only=True):
    text: str


class A2ALoopAgent(Agent):
    name = "a2a-looper"
    version = "1"
    config = FAST

    @skill
    async def ask(self, input: AskRemote, ctx: TaskContext) -> Told:
        """Let the model use the remote agent's skills."""
        remote = A2AAgent(input.url, timeout_s=input.timeout_s, cancel_timeout_s=2.0)
        async with remote:
            text = await ctx.loop(input.prompt, tools=remote.tools(), max_turns=4)
        return Told(text=text)
