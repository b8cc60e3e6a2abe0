"""Workflow definitions: frozen msgspec Structs, decoded from TOML or built in Python.

A definition is data only; `validate.check()` decides whether it can run and
`Graph` holds what validation derived (dependencies, loop membership).
Templates (`TaskStep.input`, `WorkflowDef.output`) are JSON-like values whose
strings may hold `${...}` references (see `refs.py`).

A step is one of a tagged union of kinds (`kind = "task" | "fan_out" |
"approval"`); each kind's checks and planning live in `kinds.py`. This is the
format-2 shape of a definition; `format1.py` reads the older one.
"""

from typing import Any, ClassVar, Literal

import msgspec

from natsfleet.protocols import RetryPolicy, Timeouts

#: A loop may not be declared with more rounds than this.
MAX_ROUNDS = 100


class Until(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A loop's exit condition: `ref`'s value equals `equals` (or, without
    `equals`, is truthy). No expressions are evaluated."""

    ref: str
    equals: Any = None


class StepBase(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="kind"
):
    """What every step kind has: a name and extra ordering."""

    #: A step of this kind may be a loop's member.
    may_loop: ClassVar[bool] = False

    name: str = ""
    # Extra ordering; references to `steps.<name>` already imply it.
    after: tuple[str, ...] = ()

    def kind_name(self) -> str:
        """The `kind` tag: "task", "fan_out", "approval"."""
        return str(self.__struct_config__.tag)

    def templates(self) -> dict[str, Any]:
        """Templates rendered in the step's own scope: a label (for messages) -> template."""
        return {}

    def branch(self) -> str | None:
        """A step this one may run instead of the steps that depend on it."""
        return None


class SkillStep(StepBase, frozen=True, kw_only=True):
    """The fields of a step that runs a skill as ordinary tasks."""

    skill: str
    input: Any = msgspec.field(default_factory=dict)
    timeouts: Timeouts | None = None
    retry: RetryPolicy | None = None
    priority: int = 0

    def templates(self) -> dict[str, Any]:
        return {"": self.input}


class TaskStep(SkillStep, frozen=True, tag="task"):
    """One task per round (one in all outside a loop)."""

    may_loop: ClassVar[bool] = True


class FanOutStep(SkillStep, frozen=True, kw_only=True, tag="fan_out"):
    """One task per element of the referenced list; `concurrency` at once."""

    for_each: str
    concurrency: int | None = None


class ApprovalStep(StepBase, frozen=True, kw_only=True, tag="approval"):
    """A person's decision: waits in `input_required` for `natsfleet approve`."""

    prompt: str = ""
    # On refusal: "fail" the run, or run the named step (and skip the approved path).
    on_reject: str = "fail"

    def templates(self) -> dict[str, Any]:
        return {" prompt": self.prompt}

    def branch(self) -> str | None:
        """The step a refusal runs (`on_reject`), if any."""
        return None if self.on_reject == "fail" else self.on_reject


#: Every step kind (the `kind` field tells them apart in TOML format 2 and in KV).
Step = TaskStep | FanOutStep | ApprovalStep


class LoopDef(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Steps run again, in rounds, until `until` holds or `max_rounds` ran."""

    name: str = ""
    steps: tuple[str, ...]
    max_rounds: int | None = None
    until: Until | None = None
    on_exhausted: Literal["fail", "continue"] = "fail"


class WorkflowDef(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A named DAG of steps with optional loops, output mapping, deadline and budget."""

    name: str
    description: str = ""
    steps: tuple[Step, ...]
    loops: tuple[LoopDef, ...] = ()
    # A template for the run's output; None: the last completed step's output.
    output: Any = None
    deadline_s: float | None = None
    budget_usd: float | None = None
    # Top-level keys the run's input must have (checked at submit).
    required_input: tuple[str, ...] = ()

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    def skills(self) -> dict[str, str]:
        """skill -> the first step that uses it."""
        found: dict[str, str] = {}
        for step in self.steps:
            if isinstance(step, SkillStep):
                found.setdefault(step.skill, step.name)
        return found
