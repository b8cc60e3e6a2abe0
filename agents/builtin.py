"""Built-in agents, runnable by name: `natsfleet agent run echo`.

The built-ins live in `natsfleet.agents.builtins` (researcher, writer,
editor, booker); third-party agents use the `natsfleet.agents` entry point
group instead.
"""

import msgspec

from natsfleet.agents.agent import Agent
from natsfleet.agents.context import TaskContext
from natsfleet.agents.skill import skill

#: Built-in agent name -> `module:Class`, imported only when asked for.
BUILTIN_AGENTS: dict[str, str] = {
    "echo": "natsfleet.agents.builtin:EchoAgent",
    "researcher": "natsfleet.agents.builtins.researcher:Researcher",
    "writer": "natsfleet.agents.builtins.writer:Writer",
    "editor": "natsfleet.agents.builtins.editor:Editor",
    "booker": "natsfleet.agents.builtins.booker:Booker",
    "assistant": "natsfleet.agents.builtins.assistant:Assistant",
}


class EchoIn(msgspec.Struct, frozen=True, kw_only=True):
    text: str


class EchoOut(msgspec.Struct, frozen=True, kw_only=True):
    text: str
    instance_id: str


class EchoAgent(Agent):
    """Answers with its input: a smoke test for a fleet's plumbing."""

    name = "echo"
    version = "1"

    @skill
    async def echo(self, input: EchoIn, ctx: TaskContext) -> EchoOut:
        """Return the input text, and which instance answered."""
        return EchoOut(text=input.text, instance_id=ctx.instance_id)
