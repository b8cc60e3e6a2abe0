"""Each step kind's own rules: what it checks at load time and how it is planned.

`kind_of(step)` is the one place that tells kinds apart (a `match` over the
`Step` union); the validator and the planner ask the object it returns and
never test a step's fields themselves. A new kind is a Struct in `model.py`
plus a class here and its case in `kind_of`.

Planning a step: when its dependencies are done, `start` moves it out of
`pending` (to `running`, or `input_required` for a decision). A running step
wants the tasks `wanted` names; each task's input is rendered with
`task_scope` added to the run's scope; when every wanted task completed,
`output` makes the step's output from theirs. A person's decision goes to
`decide`; `skips` says whether a finished step skips one that depends on it.
"""

from typing import Any, Generic, TypeVar, assert_never

import msgspec
from msgspec import structs

from natsfleet.protocols import is_name, to_raw
from natsfleet.protocols.limits import PRIORITY_MAX, PRIORITY_MIN
from natsfleet.supervisor.workflows.errors import WorkflowError
from natsfleet.supervisor.workflows.model import (
    ApprovalStep,
    FanOutStep,
    SkillStep,
    Step,
    StepBase,
    TaskStep,
)
from natsfleet.supervisor.workflows.refs import (
    Ref,
    Scope,
    parse_ref,
    refs_in,
    refs_problems,
    render,
    resolve,
)
from natsfleet.supervisor.workflows.state import Approval, StepPhase, StepRun

S = TypeVar("S", bound=StepBase)


class _Kind(Generic[S]):
    """Defaults: a kind without tasks, decisions or branches has nothing to add."""

    def __init__(self, step: S) -> None:
        self.step = step

    # -- load time ---------------------------------------------------------------------

    def refs(self) -> list[Ref]:
        """Every reference the step reads (its dependencies); ValueError if malformed."""
        return [ref for template in self.step.templates().values() for ref in refs_in(template)]

    def scope_roots(self) -> frozenset[str]:
        """References its templates may use besides `round` (in a loop)."""
        return frozenset()

    def problems(self, known: set[str]) -> list[str]:
        """What is wrong with the kind's own fields, given the workflow's step names."""
        return []

    # -- planning ----------------------------------------------------------------------

    def start(self, run: StepRun, round_: int, scope: Scope) -> StepRun:
        raise NotImplementedError

    def wanted(self, run: StepRun) -> list[int]:
        """The task indices (`n`) the step needs completed."""
        return []

    def max_running(self, wanted: int) -> int:
        """How many of its tasks may run at once."""
        return wanted

    def task_scope(self, run: StepRun, n: int, in_loop: bool) -> dict[str, Any]:
        return {}

    def output(self, outputs: list[Any]) -> Any:
        raise WorkflowError(f"step {self.step.name!r} runs no tasks")

    def decide(self, run: StepRun, approval: Approval, approval_id: str) -> StepRun:
        raise WorkflowError(f"step {self.step.name!r} takes no decision")

    def refused(self, approval: Approval) -> str | None:
        """Why this decision fails the run, or None."""
        return None

    def skips(self, run: StepRun, dependent: str) -> str | None:
        """Why `dependent` is skipped because of this (completed) step, or None."""
        return None


def _skill_problems(step: SkillStep) -> list[str]:
    # What the step's submits will carry must pass the edge rule (protocols/limits.py).
    problems = []
    if not is_name(step.skill):
        problems.append(f"step {step.name!r}: skill {step.skill!r} is not a valid skill name")
    if not PRIORITY_MIN <= step.priority <= PRIORITY_MAX:
        problems.append(f"step {step.name!r}: priority must be {PRIORITY_MIN} to {PRIORITY_MAX}")
    return problems


class TaskKind(_Kind[TaskStep]):
    """One task (per loop round); its output is the task's output."""

    def problems(self, known: set[str]) -> list[str]:
        return _skill_problems(self.step)

    def start(self, run: StepRun, round_: int, scope: Scope) -> StepRun:
        return structs.replace(run, phase=StepPhase.RUNNING, round=round_, detail="", total=1)

    def wanted(self, run: StepRun) -> list[int]:
        return [run.round]

    def task_scope(self, run: StepRun, n: int, in_loop: bool) -> dict[str, Any]:
        return {"round": n} if in_loop else {}

    def output(self, outputs: list[Any]) -> Any:
        return outputs[0]


class FanOutKind(_Kind[FanOutStep]):
    """One task per element of a list fixed at start; its output is their outputs' list."""

    def refs(self) -> list[Ref]:
        return [*super().refs(), *refs_in(self.step.for_each)]

    def scope_roots(self) -> frozenset[str]:
        return frozenset({"item", "index"})

    def problems(self, known: set[str]) -> list[str]:
        where = f"step {self.step.name!r}"
        problems = _skill_problems(self.step)
        stripped = self.step.for_each.strip()
        if not (stripped.startswith("${") and stripped.endswith("}") and stripped.count("${") == 1):
            problems.append(f"{where}: for_each must be one reference, like ${{steps.x.output}}")
        else:
            problems += refs_problems(f"{where} for_each", stripped, known, set())
        if self.step.concurrency is not None and self.step.concurrency < 1:
            problems.append(f"{where}: concurrency must be >= 1, on a for_each step")
        return problems

    def start(self, run: StepRun, round_: int, scope: Scope) -> StepRun:
        started = structs.replace(run, phase=StepPhase.RUNNING, round=round_, detail="")
        elements = resolve(parse_ref(self.step.for_each.strip()[2:-1]), scope)
        if not isinstance(elements, list):
            raise WorkflowError(f"for_each {self.step.for_each} is not a list")
        return structs.replace(started, elements=to_raw(elements), total=len(elements))

    def wanted(self, run: StepRun) -> list[int]:
        return list(range(run.total))

    def max_running(self, wanted: int) -> int:
        return self.step.concurrency or wanted

    def task_scope(self, run: StepRun, n: int, in_loop: bool) -> dict[str, Any]:
        return {"item": msgspec.json.decode(run.elements)[n], "index": n}

    def output(self, outputs: list[Any]) -> Any:
        return outputs


class ApprovalKind(_Kind[ApprovalStep]):
    """Waits for a person; approved or (with a branch) refused, it completes with the decision."""

    def problems(self, known: set[str]) -> list[str]:
        branch = self.step.branch()
        if branch is not None and (branch not in known or branch == self.step.name):
            return [f"step {self.step.name!r}: on_reject names undefined step {branch!r}"]
        return []

    def start(self, run: StepRun, round_: int, scope: Scope) -> StepRun:
        prompt = render(self.step.prompt, scope)
        return structs.replace(run, phase=StepPhase.INPUT_REQUIRED, detail=str(prompt))

    def refused(self, approval: Approval) -> str | None:
        if approval.approved or self.step.branch() is not None:
            return None
        note = f": {approval.note}" if approval.note else ""
        return f"approval refused at step {self.step.name!r}{note}"

    def decide(self, run: StepRun, approval: Approval, approval_id: str) -> StepRun:
        if self.refused(approval) is not None:
            return structs.replace(run, phase=StepPhase.FAILED, approval=approval, detail="refused")
        output = {
            "approved": approval.approved,
            "input": msgspec.json.decode(approval.input),
            "note": approval.note,
            "approval_id": approval_id,
        }
        return structs.replace(
            run, phase=StepPhase.COMPLETED, approval=approval, output=to_raw(output),
            has_output=True, detail="approved" if approval.approved else "refused",
        )  # fmt: skip

    def skips(self, run: StepRun, dependent: str) -> str | None:
        decided = run.approval
        if decided is None:
            return None
        branch = self.step.on_reject == dependent
        if decided.approved != branch:
            return None
        return f"approval {self.step.name!r} was {'given' if decided.approved else 'refused'}"


StepKind = TaskKind | FanOutKind | ApprovalKind


def kind_of(step: Step) -> StepKind:
    """The rules of the step's kind (the one `match` over step kinds)."""
    match step:
        case TaskStep():
            return TaskKind(step)
        case FanOutStep():
            return FanOutKind(step)
        case ApprovalStep():
            return ApprovalKind(step)
        case _:
            assert_never(step)
