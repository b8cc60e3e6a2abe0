"""Agents for tests, runnable as `natsfleet agent run tests.fleet_agents:EchoAgent`.

A subprocess needs the repository root on PYTHONPATH (tests/procs.py sets it).
Every class uses short intervals so tests stay fast.
"""

import asyncio
from pathlib import Path

import msgspec

from natsfleet.agents import Agent, AgentConfig, SkillError, TaskContext, skill

#: Short heartbeat and grace, for tests.
FAST = AgentConfig(
    capacity=4,
    heartbeat_interval_s=0.1,
    drain_grace_s=1.0,
    output_flush_s=0.02,
    shutdown_flush_s=2.0,
)


class Text(msgspec.Struct, frozen=True, kw_only=True):
    text: str


class Echoed(msgspec.Struct, frozen=True, kw_only=True):
    text: str
    instance_id: str
    attempt: int


class Sleep(msgspec.Struct, frozen=True, kw_only=True):
    ms: int
    steps: int = 4


class Slept(msgspec.Struct, frozen=True, kw_only=True):
    ms: int
    instance_id: str


class Fail(msgspec.Struct, frozen=True, kw_only=True):
    message: str
    retryable: bool = True
    # "skill": a SkillError; "crash": an arbitrary exception.
    how: str = "skill"


class Never(msgspec.Struct, frozen=True):
    pass


class Work(msgspec.Struct, frozen=True, kw_only=True):
    ms: int
    record_dir: str


class Worked(msgspec.Struct, frozen=True, kw_only=True):
    instance_id: str
    concurrent: int


class Stream(msgspec.Struct, frozen=True, kw_only=True):
    chunks: int
    gap_ms: int = 1


class FanOut(msgspec.Struct, frozen=True, kw_only=True):
    texts: list[str]


class FannedIn(msgspec.Struct, frozen=True, kw_only=True):
    texts: list[str]


class EchoAgent(Agent):
    """Echo, sleep, fail and stream: the general-purpose test agent."""

    name = "echo"
    version = "1.2"
    config = FAST

    def __init__(self) -> None:
        self.runs: dict[str, int] = {}
        self.cancelled_seen: list[str] = []

    @skill(version="2")
    async def echo(self, input: Text, ctx: TaskContext) -> Echoed:
        """Return the text."""
        self.runs[ctx.task_id] = self.runs.get(ctx.task_id, 0) + 1
        return Echoed(text=input.text, instance_id=ctx.instance_id, attempt=ctx.attempt)

    @skill
    async def sleep(self, input: Sleep, ctx: TaskContext) -> Slept:
        """Sleep for `ms`, reporting progress in `steps`."""
        self.runs[ctx.task_id] = self.runs.get(ctx.task_id, 0) + 1
        try:
            for step in range(input.steps):
                ctx.progress(step / input.steps, f"step {step}")
                await asyncio.sleep(input.ms / 1000 / input.steps)
        except asyncio.CancelledError:
            self.cancelled_seen.append(ctx.task_id)
            raise
        return Slept(ms=input.ms, instance_id=ctx.instance_id)

    @skill
    async def fail(self, input: Fail, ctx: TaskContext) -> Never:
        """Fail as asked."""
        if input.how == "crash":
            raise ValueError(input.message)
        raise SkillError(input.message, retryable=input.retryable)

    @skill
    async def stream(self, input: Stream, ctx: TaskContext) -> Text:
        """Stream `chunks` small pieces of text, then return them joined."""
        parts = []
        for i in range(input.chunks):
            piece = f"t{i} "
            parts.append(piece)
            ctx.stream(piece)
            if input.gap_ms:
                await asyncio.sleep(input.gap_ms / 1000)
        return Text(text="".join(parts))


class ConcurrencyAgent(Agent):
    """Records how many `work` tasks run at once; the maximum goes to a file."""

    name = "recorder"
    config = msgspec.structs.replace(FAST, capacity=2)

    def __init__(self) -> None:
        self.current = 0
        self.max_seen = 0

    @skill
    async def work(self, input: Work, ctx: TaskContext) -> Worked:
        self.current += 1
        self.max_seen = max(self.max_seen, self.current)
        concurrent = self.current
        path = Path(input.record_dir) / ctx.instance_id
        # Written before the work ends, so a reader never misses a peak.
        path.write_text(f"{self.max_seen}\n")
        try:
            await asyncio.sleep(input.ms / 1000)
        finally:
            self.current -= 1
        return Worked(instance_id=ctx.instance_id, concurrent=concurrent)


class ParentAgent(Agent):
    """Calls the `echo` skill once per text through `ctx.call`."""

    name = "parent"
    config = msgspec.structs.replace(FAST, capacity=1)

    @skill
    async def fan_out(self, input: FanOut, ctx: TaskContext) -> FannedIn:
        texts = []
        for text in input.texts:
            child = await ctx.call("echo", Text(text=text), Echoed, timeout_s=20)
            texts.append(child.text)
        return FannedIn(texts=texts)
