"""The assistant: a request in words, planned and carried out by its model with the
fleet's skills as tools (docs/tools.md, "The assistant").

"Book me a flight to New York next Tuesday" becomes parse, search, hold, book,
then `pay`, which waits for a person's approval (`natsfleet approve TASK`),
then calendar and confirmation; "Write an article about X" becomes research,
write, edit. The model chooses; without an API key the offline provider's
step-by-step policy does (agents/llm/providers/offline_plan.py), labelled
`[offline]`. Every model answer and tool result is journaled: a second
instance resumes a task the first one dropped without asking the model or
running a tool again for what was journaled.
"""

import msgspec

from natsfleet.agents.agent import Agent, AgentConfig
from natsfleet.agents.context import TaskContext
from natsfleet.agents.loop import TurnRecord
from natsfleet.agents.loop.approval import requires_approval
from natsfleet.agents.skill import skill

#: Fleet skills whose calls wait for a person, and the input that gets the approval's id.
APPROVAL_SKILLS = {"pay": "approval_token"}
SYSTEM = (
    "You are an assistant that gets things done with the tools given. Plan the steps, "
    "call one tool at a time, pass each result on to the tools that need it, and never "
    "pay without the person's approval (the pay tool asks for it). Finish with a short "
    "summary of what was done."
)
#: How long one tool call (a fleet sub-task) may take.
TOOL_TIMEOUT_S = 120.0


class AssistantInput(msgspec.Struct, frozen=True, kw_only=True):
    """`ask`: what to do, in words; `home_airport` and `email` help travel requests."""

    request: str
    home_airport: str = ""
    email: str = ""
    max_turns: int = 12


class AssistantAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """`ask` output: the final answer, the tools called in order, and what the journal
    saved this attempt (model calls and tool runs replayed instead of made again)."""

    answer: str
    steps: tuple[str, ...]
    model_calls: int
    replayed_turns: int
    tool_runs: int
    replayed_tools: int
    offline: bool
    instance_id: str


def prompt_of(input: AssistantInput) -> str:
    """The request, with the details given as `name: value` lines."""
    lines = [input.request.strip()]
    if input.home_airport:
        lines.append(f"home_airport: {input.home_airport}")
    if input.email:
        lines.append(f"email: {input.email}")
    return "\n".join(lines)


class Assistant(Agent):
    """Plans and carries out requests with the fleet's skills as its tools."""

    name = "assistant"
    version = "1"
    description = "Does what a request in words asks, using the fleet's skills as tools."
    config = AgentConfig(capacity=4)

    @skill
    async def ask(self, input: AssistantInput, ctx: TaskContext) -> AssistantAnswer:
        """Carry out a request in words with the fleet's skills (paying waits for approval)."""
        gated = [
            requires_approval(t, token_argument=APPROVAL_SKILLS[t.skill])
            for t in await ctx.skill_tools(names=list(APPROVAL_SKILLS), timeout_s=TOOL_TIMEOUT_S)
        ]
        others = await ctx.skill_tools(exclude=list(APPROVAL_SKILLS), timeout_s=TOOL_TIMEOUT_S)
        # Gated tools first: with one call a turn, a payment is asked for as soon as it can be.
        answer = await ctx.loop(
            prompt_of(input),
            tools=[*gated, *others],
            system=SYSTEM,
            max_turns=input.max_turns,
            max_parallel_tools=1,
        )
        journal = await ctx.journal()
        turns = sorted(
            (
                (int(key.split(".")[1]), record)
                for key, record in journal.entries.items()
                if key.count(".") == 1 and key.startswith("0.") and isinstance(record, TurnRecord)
            ),
            key=lambda turn: turn[0],
        )
        stats = ctx.loop_stats[0]
        return AssistantAnswer(
            answer=str(answer),
            steps=tuple(c.name for _, record in turns for c in record.tool_calls),
            model_calls=stats.model_calls,
            replayed_turns=stats.replayed_turns,
            tool_runs=stats.tool_runs,
            replayed_tools=stats.replayed_tools,
            offline=any(record.offline for _, record in turns),
            instance_id=ctx.instance_id,
        )
