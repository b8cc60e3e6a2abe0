"""Deterministic agents for the workflow tests (`tests.workflow_agents:StepsAgent`).

Every skill's output is a function of its input, so runs are reproducible:
`split` makes a list, `work` records how many of its tasks run at once
(files under `dir`), `merge` fans in, `draft`/`review` play writer and editor
(the editor approves from round `approve_at`), `effect` records each
execution and one deduplicated side effect per task.
"""

import asyncio
import contextlib
from pathlib import Path

import msgspec

from natsfleet.agents import Agent, TaskContext, skill
from tests.fleet_agents import FAST


class Split(msgspec.Struct, frozen=True, kw_only=True):
    n: int


class Items(msgspec.Struct, frozen=True, kw_only=True):
    items: list[int]


class WorkIn(msgspec.Struct, frozen=True, kw_only=True):
    i: int
    ms: int
    dir: str


class WorkOut(msgspec.Struct, frozen=True, kw_only=True):
    i: int
    squared: int


class MergeIn(msgspec.Struct, frozen=True, kw_only=True):
    results: list[WorkOut]


class Merged(msgspec.Struct, frozen=True, kw_only=True):
    count: int
    squares: list[int]


class DraftIn(msgspec.Struct, frozen=True, kw_only=True):
    brief: str
    round: int
    notes: str | None = None


class Draft(msgspec.Struct, frozen=True, kw_only=True):
    draft: str
    round: int
    notes_seen: str | None = None


class ReviewIn(msgspec.Struct, frozen=True, kw_only=True):
    draft: str
    round: int
    approve_at: int


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    verdict: str
    notes: str
    draft: str
    round: int


class EffectIn(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    dir: str
    ms: int = 0
    extra: dict[str, str] | None = None


class EffectOut(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    instance_id: str
    extra: dict[str, str] | None = None


def _record_concurrency(root: Path, task_id: str) -> int:
    running = root / "running"
    running.mkdir(parents=True, exist_ok=True)
    (running / task_id).touch()
    now = len(list(running.iterdir()))
    (root / f"seen-{task_id}").write_text(str(now))
    return now


class StepsAgent(Agent):
    """Every skill the workflow tests need, in one agent type."""

    name = "wf"
    config = FAST

    @skill
    async def split(self, input: Split, ctx: TaskContext) -> Items:
        return Items(items=list(range(1, input.n + 1)))

    @skill
    async def work(self, input: WorkIn, ctx: TaskContext) -> WorkOut:
        root = Path(input.dir)
        _record_concurrency(root, ctx.task_id)
        try:
            await asyncio.sleep(input.ms / 1000)
        finally:
            with contextlib.suppress(FileNotFoundError):
                (root / "running" / ctx.task_id).unlink()
        return WorkOut(i=input.i, squared=input.i * input.i)

    @skill
    async def merge(self, input: MergeIn, ctx: TaskContext) -> Merged:
        return Merged(count=len(input.results), squares=[r.squared for r in input.results])

    @skill
    async def draft(self, input: DraftIn, ctx: TaskContext) -> Draft:
        text = f"{input.brief} (draft {input.round})"
        return Draft(draft=text, round=input.round, notes_seen=input.notes)

    @skill
    async def review(self, input: ReviewIn, ctx: TaskContext) -> Verdict:
        if input.round >= input.approve_at:
            return Verdict(verdict="approve", notes="", draft=input.draft, round=input.round)
        notes = f"tighten round {input.round}"
        return Verdict(verdict="revise", notes=notes, draft=input.draft, round=input.round)

    @skill
    async def effect(self, input: EffectIn, ctx: TaskContext) -> EffectOut:
        root = Path(input.dir)
        with (root / "raw.log").open("a") as raw:
            raw.write(f"{ctx.task_id} {ctx.instance_id}\n")
        await asyncio.sleep(input.ms / 1000)
        done = root / "effects" / ctx.task_id
        done.parent.mkdir(exist_ok=True)
        with contextlib.suppress(FileExistsError), done.open("x") as f:
            f.write(ctx.instance_id)
        return EffectOut(name=input.name, instance_id=ctx.instance_id, extra=input.extra)
