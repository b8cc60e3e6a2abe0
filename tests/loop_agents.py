"""An agent whose skill lets its model decide (`ctx.loop`), for the loop's tests.

Runnable as `natsfleet agent run tests.loop_agents:LoopAgent`. Its tools leave
traces in files named by the environment, so a test can count side effects
across processes:

- `NATSFLEET_TEST_EFFECTS`: every tool run appends `<tool> <arg> <key> <rerun> <pid>`;
- `NATSFLEET_TEST_GATE`: `gate` waits until this file exists.
"""

import asyncio
import os
from pathlib import Path

import msgspec

from natsfleet.agents import Agent, AgentConfig, TaskContext, skill
from natsfleet.agents.loop import ToolContext, tool

FAST = AgentConfig(
    capacity=4,
    heartbeat_interval_s=0.1,
    drain_grace_s=1.0,
    output_flush_s=0.02,
    shutdown_flush_s=2.0,
)


def _effect(line: str) -> None:
    path = os.environ.get("NATSFLEET_TEST_EFFECTS")
    if path:
        with Path(path).open("a") as out:
            out.write(line + "\n")


@tool
def record(step: str, ctx: ToolContext) -> str:
    """Record a step of the plan (a side effect, counted by the tests)."""
    _effect(f"record {step} {ctx.key} {ctx.rerun} {os.getpid()}")
    return f"recorded {step}"


@tool(timeout_s=None)
async def gate(ctx: ToolContext) -> str:
    """Wait until the gate opens."""
    _effect(f"gate - {ctx.key} {ctx.rerun} {os.getpid()}")
    path = Path(os.environ.get("NATSFLEET_TEST_GATE", "/nonexistent/gate"))
    while not path.exists():
        await asyncio.sleep(0.02)
    return "open"


@tool(timeout_s=None)
async def stubborn_gate(ctx: ToolContext) -> str:
    """Wait until the gate opens, ignoring cancellation (as a hung call might)."""
    _effect(f"stubborn_gate - {ctx.key} {ctx.rerun} {os.getpid()}")
    path = Path(os.environ.get("NATSFLEET_TEST_GATE", "/nonexistent/gate"))
    while not path.exists():
        try:
            await asyncio.sleep(0.02)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
    return "open"


@tool
async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
async def boom(reason: str) -> str:
    """Always fails."""
    raise ValueError(f"boom: {reason}")


@tool(timeout_s=0.1)
async def slow() -> str:
    """Takes far longer than its timeout."""
    await asyncio.sleep(5)
    return "late"


TOOLS = [record, gate, stubborn_gate, add, boom, slow]


@tool(approval=True)
def pay(amount: int, ctx: ToolContext) -> str:
    """Pay an amount (a person approves each payment first)."""
    _effect(f"pay {amount} {ctx.key} {ctx.approval_id} {os.getpid()}")
    return f"paid {amount}"


class Ask(msgspec.Struct, frozen=True, kw_only=True):
    prompt: str
    max_turns: int = 6
    # "verdict": ask for a `Verdict` Struct instead of text.
    output: str = ""
    # Fleet skills offered as tools too (by name), and as handoffs.
    skills: list[str] = []
    handoff: list[str] = []
    # Offer `pay`, whose calls wait for a person's approval.
    approval: bool = False


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    reason: str


class Answer(msgspec.Struct, frozen=True, kw_only=True):
    text: str
    instance_id: str
    model_calls: int
    replayed_turns: int
    tool_runs: int
    replayed_tools: int
    reruns: int


class Shout(msgspec.Struct, frozen=True, kw_only=True):
    text: str
    # Filled by the loop when `shout` is a handoff target.
    conversation: str = ""


class Shouted(msgspec.Struct, frozen=True, kw_only=True):
    text: str


class LoopAgent(Agent):
    name = "looper"
    version = "1"
    config = FAST

    @skill
    async def run(self, input: Ask, ctx: TaskContext) -> Answer:
        """Let the model use the test tools."""
        tools = list(TOOLS) + ([pay] if input.approval else [])
        if input.skills:
            tools += await ctx.skill_tools(names=input.skills, timeout_s=20)
        if input.handoff:
            tools += await ctx.skill_tools(names=input.handoff, timeout_s=20, handoff=True)
        if input.output == "verdict":
            verdict = await ctx.loop(
                input.prompt, tools=tools, output=Verdict, max_turns=input.max_turns
            )
            text = msgspec.json.encode(verdict).decode()
        else:
            text = await ctx.loop(input.prompt, tools=tools, max_turns=input.max_turns)
        stats = ctx.loop_stats[0]
        return Answer(
            text=text,
            instance_id=ctx.instance_id,
            model_calls=stats.model_calls,
            replayed_turns=stats.replayed_turns,
            tool_runs=stats.tool_runs,
            replayed_tools=stats.replayed_tools,
            reruns=stats.reruns,
        )

    @skill
    async def shout(self, input: Shout, ctx: TaskContext) -> Shouted:
        """Upper-case a text."""
        heard = "user: hand it over" in input.conversation
        _effect(f"shout {input.text} {ctx.task_id} {heard} {os.getpid()}")
        return Shouted(text=input.text.upper())
