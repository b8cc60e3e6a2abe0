"""Format 1 of a workflow definition: one step Struct whose fields imply its kind.

Workflow files without `format = 2` and runs that the format-1 code wrote to KV
WORKFLOWS (a run in flight across an upgrade) hold steps in this shape: a
`skill` makes a task, with `for_each` a fan-out, `approval = true` a person's
decision. `upgrade()` turns such a definition into the format-2 one
(`model.py`), refusing combinations that name no single kind. This module is
frozen: a new step kind exists in format 2 only.
"""

from typing import Any

import msgspec
from msgspec import structs

from natsfleet.protocols import RetryPolicy, Timeouts
from natsfleet.supervisor.workflows.errors import WorkflowDefinitionError
from natsfleet.supervisor.workflows.model import (
    ApprovalStep,
    FanOutStep,
    Step,
    TaskStep,
    WorkflowDef,
)

#: The step kinds format 1 can express (a newer kind needs `format = 2`).
KINDS = (TaskStep, FanOutStep, ApprovalStep)


class StepV1(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One step as format 1 wrote it (the former `StepDef`, field for field)."""

    name: str = ""
    skill: str | None = None
    input: Any = msgspec.field(default_factory=dict)
    after: tuple[str, ...] = ()
    for_each: str | None = None
    concurrency: int | None = None
    approval: bool = False
    prompt: str = ""
    on_reject: str = "fail"
    timeouts: Timeouts | None = None
    retry: RetryPolicy | None = None
    priority: int = 0


class WorkflowDefV1(WorkflowDef, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A format-1 definition: the same top-level fields, format-1 steps."""

    # The one field that differs between the formats.
    steps: tuple[StepV1, ...]  # type: ignore[assignment]


def _approval(step: StepV1, where: str) -> tuple[Step | None, list[str]]:
    problems = []
    if step.for_each is not None:
        problems.append(f"{where}: an approval step cannot fan out")
    # These configure a step's tasks; an approval runs none, so format 1 ignored
    # them at run time but still read references in `input`: refuse, not drop.
    for field, default in (("input", {}), ("timeouts", None), ("retry", None), ("priority", 0)):
        if getattr(step, field) != default:
            problems.append(f"{where}: {field} has no meaning on an approval step")
    if step.concurrency is not None:
        problems.append(f"{where}: concurrency must be >= 1, on a for_each step")
    if problems:
        return None, problems
    upgraded = ApprovalStep(
        name=step.name, after=step.after, prompt=step.prompt, on_reject=step.on_reject
    )
    return upgraded, []


def _task(step: StepV1, skill: str, where: str) -> tuple[Step | None, list[str]]:
    problems = []
    if step.on_reject != "fail":
        problems.append(f"{where}: on_reject belongs to approval steps")
    if step.prompt:
        problems.append(f"{where}: prompt belongs to approval steps")
    if step.concurrency is not None and step.for_each is None:
        problems.append(f"{where}: concurrency must be >= 1, on a for_each step")
    if problems:
        return None, problems
    common: dict[str, Any] = dict(
        name=step.name, after=step.after, skill=skill, input=step.input,
        timeouts=step.timeouts, retry=step.retry, priority=step.priority,
    )  # fmt: skip
    if step.for_each is None:
        return TaskStep(**common), []
    return FanOutStep(**common, for_each=step.for_each, concurrency=step.concurrency), []


def upgrade_step(step: StepV1) -> tuple[Step | None, list[str]]:
    """The step's format-2 kind, or the problems that leave it none."""
    where = f"step {step.name!r}"
    if step.approval == (step.skill is not None):
        return None, [f"{where}: give either skill = ... or approval = true"]
    if step.skill is None:
        return _approval(step, where)
    return _task(step, step.skill, where)


def upgrade(defn: WorkflowDefV1, *, source: str = "") -> WorkflowDef:
    """The format-2 definition; WorkflowDefinitionError lists every step without a kind."""
    steps: list[Step] = []
    problems: list[str] = []
    for step in defn.steps:
        upgraded, found = upgrade_step(step)
        problems += found
        if upgraded is not None:
            steps.append(upgraded)
    if problems:
        raise WorkflowDefinitionError(defn.name, problems, source=source)
    fields = structs.asdict(defn)
    fields["steps"] = tuple(steps)
    return WorkflowDef(**fields)
