"""Workflows in Python: a small typed builder over the same definition Structs.

```python
wf = Workflow("content", deadline_s=600)
research = wf.step("research", skill="research", input={"question": ref("input.question")})
with wf.loop("revise", max_rounds=3, until=research_done):  # see docs/workflows.md
    write = wf.step("write", skill="write", input={"findings": research.output()})
    edit = wf.step("edit", skill="edit", input={"draft": write.output("draft")})
definition = wf.definition()  # validated WorkflowDef
```
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from natsfleet.protocols import RetryPolicy, Timeouts
from natsfleet.supervisor.workflows.errors import WorkflowDefinitionError
from natsfleet.supervisor.workflows.model import (
    ApprovalStep,
    FanOutStep,
    LoopDef,
    Step,
    TaskStep,
    Until,
    WorkflowDef,
)
from natsfleet.supervisor.workflows.validate import check


def ref(path: str, *, optional: bool = False) -> str:
    """`ref("input.question")` -> `"${input.question}"`."""
    return f"${{{path}{'?' if optional else ''}}}"


@dataclass(frozen=True, slots=True)
class StepHandle:
    """A declared step; `output("a", "b")` is a reference to its output's `a.b`."""

    name: str

    def output(self, *path: str | int, optional: bool = False) -> str:
        tail = "".join(f".{p}" for p in path)
        return ref(f"steps.{self.name}.output{tail}", optional=optional)


class Workflow:
    """Collects steps and loops; `definition()` validates and returns the WorkflowDef."""

    def __init__(
        self,
        name: str,
        *,
        description: str = "",
        deadline_s: float | None = None,
        budget_usd: float | None = None,
        required_input: tuple[str, ...] = (),
        output: Any = None,
    ) -> None:
        self.name = name
        self.options: dict[str, Any] = dict(
            description=description, deadline_s=deadline_s, budget_usd=budget_usd,
            required_input=required_input, output=output,
        )  # fmt: skip
        self._steps: list[Step] = []
        self._loops: list[LoopDef] = []
        self._open_loop: list[str] | None = None

    def step(
        self,
        name: str,
        *,
        skill: str,
        input: Any = None,
        after: tuple[StepHandle, ...] = (),
        for_each: str | None = None,
        concurrency: int | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
    ) -> StepHandle:
        """A step that runs `skill` as a task (one per element with `for_each`)."""
        common: dict[str, Any] = dict(
            name=name, skill=skill, input={} if input is None else input,
            after=tuple(h.name for h in after), timeouts=timeouts, retry=retry,
        )  # fmt: skip
        if for_each is not None:
            return self._add(FanOutStep(**common, for_each=for_each, concurrency=concurrency))
        if concurrency is not None:
            raise WorkflowDefinitionError(
                self.name, [f"step {name!r}: concurrency must be >= 1, on a for_each step"]
            )
        return self._add(TaskStep(**common))

    def approval(
        self,
        name: str,
        *,
        prompt: str = "",
        after: tuple[StepHandle, ...] = (),
        on_reject: StepHandle | Literal["fail"] = "fail",
    ) -> StepHandle:
        """A step that waits for `natsfleet approve` (or `--reject`)."""
        reject = on_reject if isinstance(on_reject, str) else on_reject.name
        return self._add(
            ApprovalStep(
                name=name, prompt=prompt, after=tuple(h.name for h in after), on_reject=reject
            )
        )

    @contextmanager
    def loop(
        self,
        name: str,
        *,
        max_rounds: int,
        until: Until,
        on_exhausted: Literal["fail", "continue"] = "fail",
    ) -> Iterator[None]:
        """Steps declared inside the block form the loop's body, in order."""
        self._open_loop = []
        try:
            yield
            body = tuple(self._open_loop)
        finally:
            self._open_loop = None
        self._loops.append(
            LoopDef(
                name=name, steps=body, max_rounds=max_rounds, until=until,
                on_exhausted=on_exhausted,
            )
        )  # fmt: skip

    def _add(self, step: Step) -> StepHandle:
        self._steps.append(step)
        if self._open_loop is not None:
            self._open_loop.append(step.name)
        return StepHandle(step.name)

    def definition(self) -> WorkflowDef:
        """The validated definition (raises WorkflowDefinitionError)."""
        defn = WorkflowDef(
            name=self.name, steps=tuple(self._steps), loops=tuple(self._loops), **self.options
        )
        check(defn, source="python")
        return defn
