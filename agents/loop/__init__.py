"""natsfleet.agents.loop: the durable tool-calling loop (docs/tools.md).

A skill lets its model decide:

```python
from natsfleet.agents.loop import ToolContext, tool

@tool
async def pay(amount_usd: float, ctx: ToolContext) -> str:
    \"\"\"Pay an amount; returns the receipt id.\"\"\"
    return await bank.pay(amount_usd, idempotency_key=ctx.key)

class Assistant(Agent):
    @skill
    async def ask(self, input: Question, ctx: TaskContext) -> Answer:
        text = await ctx.loop(input.text, tools=[pay, *await ctx.skill_tools()])
        return Answer(text=text)
```
"""

from natsfleet.agents.loop.engine import MAX_RESULT_CHARS, Loop, LoopStats
from natsfleet.agents.loop.errors import (
    DuplicateToolError,
    InvalidOutputError,
    JournalError,
    JournalFencedError,
    LoopDeadlineError,
    LoopError,
    MaxTurnsExceededError,
)
from natsfleet.agents.loop.fleet import SkillTool, select_skills, skill_tools
from natsfleet.agents.loop.journal import Journal
from natsfleet.agents.loop.records import Claim, ToolResult, ToolStarted, TurnRecord
from natsfleet.agents.loop.tools import FunctionTool, Tool, ToolArgumentsError, ToolContext, tool

__all__ = [
    "MAX_RESULT_CHARS",
    "Claim",
    "DuplicateToolError",
    "FunctionTool",
    "InvalidOutputError",
    "Journal",
    "JournalError",
    "JournalFencedError",
    "Loop",
    "LoopDeadlineError",
    "LoopError",
    "LoopStats",
    "MaxTurnsExceededError",
    "SkillTool",
    "Tool",
    "ToolArgumentsError",
    "ToolContext",
    "ToolResult",
    "ToolStarted",
    "TurnRecord",
    "select_skills",
    "skill_tools",
    "tool",
]
