"""Workflow definitions: frozen msgspec Structs, decoded from TOML or built in Python.

A definition is data only; `validate.check()` decides whether it can run and
`Graph` holds what validation derived (dependencies, loop membership).
Templates (`StepDef.input`, `WorkflowDef.output`) are JSON-like values whose
strings may hold `${...}` references (see `refs.py`).
"""

from typing import Any, Literal

import msgspec

from natsfleet.protocols import RetryPolicy, Timeouts

#: A loop may not be declared with more rounds than this.
MAX_ROUNDS = 100


class Until(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A loop's exit condition: `ref`'s value equals `equals` (or, without
    `equals`, is truthy). No expressions are evaluated."""

    ref: str
    equals: Any = None


class StepDef(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One step: a skill run as an ordinary task, or (`approval`) a person's decision."""

    name: str = ""
    skill: str | None = None
    input: Any = msgspec.field(default_factory=dict)
    # Extra ordering; references to `steps.<name>` already imply it.
    after: tuple[str, ...] = ()
    # Fan-out: one task per element of the referenced list; `concurrency` at once.
    for_each: str | None = None
    concurrency: int | None = None
    # A human step: waits in `input_required` for `natsfleet approve`.
    approval: bool = False
    prompt: str = ""
    # On refusal: "fail" the run, or run the named step (and skip the approved path).
    on_reject: str = "fail"
    timeouts: Timeouts | None = None
    retry: RetryPolicy | None = None
    priority: int = 0


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
    steps: tuple[StepDef, ...]
    loops: tuple[LoopDef, ...] = ()
    # A template for the run's output; None: the last completed step's output.
    output: Any = None
    deadline_s: float | None = None
    budget_usd: float | None = None
    # Top-level keys the run's input must have (checked at submit).
    required_input: tuple[str, ...] = ()

    def step(self, name: str) -> StepDef:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    def skills(self) -> dict[str, str]:
        """skill -> the first step that uses it."""
        found: dict[str, str] = {}
        for step in self.steps:
            if step.skill is not None:
                found.setdefault(step.skill, step.name)
        return found
