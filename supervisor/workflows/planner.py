"""Pure planning: a run's state plus news (a task ended, a decision) -> the next state.

No I/O and no clock: the runner feeds in task records and approvals, calls
`advance()`, persists the resulting run and then submits the `launches`.
Re-running the planner on the same state yields the same launches (same
task ids), which is what makes a restarted supervisor safe. What differs by
step kind (how a step starts, which tasks it wants, what its output is) is
asked of the kind (`kinds.py`).
"""

from dataclasses import dataclass
from typing import Any

import msgspec
from msgspec import structs

from natsfleet.protocols import ErrorInfo, TaskRecord, TaskState, is_terminal, null_raw, to_raw
from natsfleet.supervisor.workflows.errors import WorkflowError
from natsfleet.supervisor.workflows.kinds import kind_of
from natsfleet.supervisor.workflows.model import LoopDef, SkillStep, Step
from natsfleet.supervisor.workflows.refs import Scope, parse_ref, render, resolve
from natsfleet.supervisor.workflows.state import (
    DONE_PHASES,
    Approval,
    ItemRun,
    StepPhase,
    StepRun,
    WorkflowRun,
    step_key,
    step_task_id,
)
from natsfleet.supervisor.workflows.validate import Graph


@dataclass(frozen=True, slots=True)
class Launch:
    """A step task to submit."""

    step: SkillStep
    item: ItemRun
    input: msgspec.Raw


def _decode(raw: msgspec.Raw) -> Any:
    return msgspec.json.decode(raw)


class Planner:
    """One planning pass over a run; `result()` gives the new run and its launches."""

    def __init__(self, run: WorkflowRun, graph: Graph) -> None:
        self.run = run
        self.graph = graph
        self.defn = run.definition
        self.steps = dict(run.steps)
        self.loops = dict(run.loops)
        self.spent_usd = run.spent_usd
        self.usage = run.usage
        self.launches: list[Launch] = []
        self.error: ErrorInfo | None = run.error
        self.state = run.state
        self.output = run.output

    # -- news -----------------------------------------------------------------------

    def task_ended(self, record: TaskRecord) -> bool:
        """Take a step task's terminal record into the run; False if not ours or old news."""
        for name, step in self.steps.items():
            for i, item in enumerate(step.items):
                if item.task_id == record.task_id and not is_terminal(item.state):
                    self._item_ended(name, step, i, record)
                    return True
        return False

    def _item_ended(self, name: str, step: StepRun, i: int, record: TaskRecord) -> None:
        item = structs.replace(
            step.items[i], state=record.state, attempts=record.attempts,
            cost_usd=record.usage.cost_usd, usage=record.usage, output=record.output,
            error=record.error,
        )  # fmt: skip
        self.steps[name] = structs.replace(
            step, items=(*step.items[:i], item, *step.items[i + 1 :])
        )
        self.spent_usd += item.cost_usd
        self.usage = self.usage + record.usage
        budget = self.run.budget_usd
        if is_terminal(self.state):
            return  # a task canceled because the run ended: only its cost counts
        if record.state != TaskState.COMPLETED:
            why = f"{record.error.error_type}: {record.error.detail}" if record.error else ""
            self.fail("step_failed", f"step {name!r} task {record.task_id} {record.state}: {why}")
        elif record.output_ref is not None:
            # A run keeps step outputs in its state (one KV value): inline only.
            self.fail(
                "too_large",
                f"step {name!r} task {record.task_id}: its output of "
                f"{record.output_ref.size_bytes} bytes is over the inline threshold",
            )
        elif budget is not None and self.spent_usd > budget:
            self.fail(
                "budget",
                f"budget exceeded: spent ${self.spent_usd:.4f} of ${budget:.4f} "
                f"(step {name!r} task {record.task_id} cost ${item.cost_usd:.4f})",
            )

    def decide(self, name: str, approval: Approval) -> None:
        """A person's decision on an approval step waiting in input_required."""
        kind = kind_of(self.defn.step(name))
        approval_id = step_key(self.run.run_id, name, 0)
        self.steps[name] = kind.decide(self.steps[name], approval, approval_id)
        refused = kind.refused(approval)
        if refused is not None:
            self.fail("rejected", refused)

    def fail(self, error_type: str, detail: str) -> None:
        if self.state != TaskState.FAILED:  # the first reason is the one reported
            self.error = ErrorInfo(error_type=error_type, detail=detail, retryable=False)
        self.state = TaskState.FAILED

    def end(self, state: TaskState, error: ErrorInfo | None) -> None:
        """The run's record ended outside the planner (canceled, deadline)."""
        self.state = state
        self.error = error

    # -- advancing -------------------------------------------------------------------

    def advance(self) -> None:
        """Start, progress and finish whatever can be, until nothing changes."""
        changed = True
        while changed and not is_terminal(self.state):
            changed = False
            for step_def in self.defn.steps:
                changed |= self._step(step_def)
            for loop in self.defn.loops:
                changed |= self._loop(loop)
        if not is_terminal(self.state):
            self._finish_or_wait()

    def _step(self, step_def: Step) -> bool:
        if is_terminal(self.state):
            return False
        step = self.steps[step_def.name]
        if step.phase == StepPhase.PENDING:
            return self._try_start(step_def, step)
        if step.phase == StepPhase.RUNNING:
            return self._progress(step_def, step)
        return False

    def scope(self, **extra: Any) -> Scope:
        outputs = {n: _decode(s.output) for n, s in self.steps.items() if s.has_output}
        return Scope(
            run_id=self.run.run_id, input=_decode(self.run.input), outputs=outputs, **extra
        )

    def _gate(self, step_def: Step) -> str | None:
        """None: not yet; "" : go; any other text: skip, because of it."""
        own_loop = self.graph.loop_of.get(step_def.name)
        for dep in sorted(self.graph.deps[step_def.name]):
            dep_step = self.steps[dep]
            if dep_step.phase == StepPhase.SKIPPED:
                return f"step {dep!r} was skipped"
            if dep_step.phase != StepPhase.COMPLETED:
                return None
            dep_loop = self.graph.loop_of.get(dep)
            if dep_loop is not None and dep_loop != own_loop and not self.loops[dep_loop].done:
                return None
            skipped = kind_of(self.defn.step(dep)).skips(dep_step, step_def.name)
            if skipped is not None:
                return skipped
        return ""

    def _try_start(self, step_def: Step, step: StepRun) -> bool:
        gate = self._gate(step_def)
        if gate is None:
            return False
        name = step_def.name
        if gate:
            self.steps[name] = structs.replace(step, phase=StepPhase.SKIPPED, detail=gate)
            return True
        loop = self.graph.loop_of.get(name)
        round_ = self.loops[loop].round if loop is not None else 0
        try:
            step = kind_of(step_def).start(step, round_, self.scope())
        except WorkflowError as exc:
            self.fail("bad_reference", f"step {name!r}: {exc}")
            return True
        self.steps[name] = step
        if step.phase == StepPhase.RUNNING:
            self._progress(step_def, step)
        return True

    def _progress(self, step_def: Step, step: StepRun) -> bool:
        kind = kind_of(step_def)
        wanted = kind.wanted(step)
        items = {i.n: i for i in step.items if i.n in wanted}
        if len(items) == len(wanted) and all(
            i.state == TaskState.COMPLETED for i in items.values()
        ):
            output = kind.output([_decode(items[n].output) for n in wanted])
            self.steps[step_def.name] = structs.replace(
                step, phase=StepPhase.COMPLETED, output=to_raw(output), has_output=True
            )
            return True
        running = sum(1 for i in items.values() if not is_terminal(i.state))
        limit = kind.max_running(len(wanted))
        new = [n for n in wanted if n not in items][: max(0, limit - running)]
        for n in new:
            if not self.launch(step_def, n):
                return True
        return bool(new)

    def launch(self, step_def: Step, n: int) -> bool:
        """Plan task `n` of a step; False if its input could not be built (run failed)."""
        name = step_def.name
        if not isinstance(step_def, SkillStep):
            raise WorkflowError(f"step {name!r} ({step_def.kind_name()}) runs no tasks")
        step = self.steps[name]
        extra = kind_of(step_def).task_scope(step, n, name in self.graph.loop_of)
        try:
            value = render(step_def.input, self.scope(**extra))
        except WorkflowError as exc:
            self.fail("bad_reference", f"step {name!r}: {exc}")
            return False
        run_id = self.run.run_id
        item = ItemRun(n=n, task_id=step_task_id(run_id, name, n), key=step_key(run_id, name, n))
        self.steps[name] = structs.replace(step, items=(*step.items, item))
        self.launches.append(Launch(step=step_def, item=item, input=to_raw(value)))
        return True

    def _loop(self, loop: LoopDef) -> bool:
        state = self.loops[loop.name]
        body = [self.steps[name] for name in loop.steps]
        if state.done or is_terminal(self.state) or not all(s.phase in DONE_PHASES for s in body):
            return False
        if any(s.phase == StepPhase.SKIPPED for s in body):
            self.loops[loop.name] = structs.replace(state, done=True)
            return True
        assert loop.until is not None and loop.max_rounds is not None
        until = loop.until
        try:
            value = resolve(parse_ref(until.ref.strip()[2:-1]), self.scope())
        except WorkflowError as exc:
            self.fail("bad_reference", f"loop {loop.name!r} until: {exc}")
            return True
        if (value == until.equals) if until.equals is not None else bool(value):
            self.loops[loop.name] = structs.replace(state, done=True)
        elif state.round < loop.max_rounds:
            nxt = state.round + 1
            self.loops[loop.name] = structs.replace(state, round=nxt)
            for name in loop.steps:
                self.steps[name] = structs.replace(self.steps[name], phase=StepPhase.PENDING)
        elif loop.on_exhausted == "continue":
            self.loops[loop.name] = structs.replace(state, done=True)
        else:
            want = f" == {until.equals!r}" if until.equals is not None else ""
            self.fail(
                "loop_exhausted",
                f"loop {loop.name!r} ran {loop.max_rounds} rounds without {until.ref}{want} "
                f"(last value: {value!r})",
            )
        return True

    def _finish_or_wait(self) -> None:
        phases = [s.phase for s in self.steps.values()]
        if all(p in DONE_PHASES for p in phases) and all(lp.done for lp in self.loops.values()):
            try:
                self.output = self._output()
            except WorkflowError as exc:
                self.fail("bad_reference", f"output: {exc}")
                return
            self.state = TaskState.COMPLETED
        elif StepPhase.INPUT_REQUIRED in phases:
            self.state = TaskState.INPUT_REQUIRED
        else:
            self.state = TaskState.WORKING

    def _output(self) -> msgspec.Raw:
        if self.defn.output is not None:
            return to_raw(render(self.defn.output, self.scope()))
        for step_def in reversed(self.defn.steps):
            step = self.steps[step_def.name]
            if step.phase == StepPhase.COMPLETED and step.has_output:
                return step.output
        return null_raw()

    def result(self, now_ms: int) -> WorkflowRun:
        if is_terminal(self.state) and self.state != TaskState.COMPLETED:
            # Steps still going when the run ended show that they were stopped.
            stopped = (StepPhase.RUNNING, StepPhase.INPUT_REQUIRED)
            for name, step in self.steps.items():
                if step.phase in stopped:
                    detail = f"stopped: run {self.state.value}"
                    self.steps[name] = structs.replace(step, phase=StepPhase.FAILED, detail=detail)
        return structs.replace(
            self.run, steps=self.steps, loops=self.loops, spent_usd=self.spent_usd,
            usage=self.usage, state=self.state, error=self.error, output=self.output,
            updated_ms=now_ms,
        )  # fmt: skip

    def open_tasks(self) -> list[str]:
        """Task ids of step tasks not yet ended (to cancel when the run ends)."""
        return [i.task_id for s in self.steps.values() for i in s.items if not is_terminal(i.state)]
