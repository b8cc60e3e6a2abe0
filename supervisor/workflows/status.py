"""The control API's view of a run (`WorkflowStatus`) and its one-line summary."""

from msgspec import structs

from natsfleet.protocols import StepStatus, StepTaskStatus, TaskState, Usage, WorkflowStatus
from natsfleet.supervisor.store import TaskStore
from natsfleet.supervisor.workflows.model import SkillStep
from natsfleet.supervisor.workflows.state import StepPhase, WorkflowRun


def workflow_status(run: WorkflowRun, store: TaskStore) -> WorkflowStatus:
    """The run's steps with their tasks; attempts and states live from the task records."""
    steps = []
    for step_def in run.definition.steps:
        step = run.steps[step_def.name]
        skill = step_def.skill if isinstance(step_def, SkillStep) else None
        tasks = []
        for item in step.items:
            tracked = store.get(item.task_id)
            record = tracked.shown() if tracked is not None else None
            # A run from before `ItemRun.usage` has only the cost.
            usage = item.usage if item.usage != Usage() else Usage(cost_usd=item.cost_usd)
            usage = record.usage if record is not None else usage
            tasks.append(
                StepTaskStatus(
                    task_id=item.task_id, key=item.key, n=item.n,
                    state=record.state if record is not None else item.state,
                    attempts=record.attempts if record is not None else item.attempts,
                    cost_usd=usage.cost_usd, usage=usage,
                )
            )  # fmt: skip
        steps.append(
            StepStatus(
                name=step.name, skill=skill, phase=step.phase.value, round=step.round,
                tasks=tuple(tasks), cost_usd=sum(t.cost_usd for t in tasks),
                usage=sum((t.usage for t in tasks), Usage()), detail=step.detail,
            )
        )  # fmt: skip
    return WorkflowStatus(
        run_id=run.run_id,
        workflow=run.workflow,
        state=run.state,
        steps=tuple(steps),
        spent_usd=run.spent_usd,
        usage=structs.replace(run.usage, cost_usd=run.spent_usd),
        budget_usd=run.budget_usd,
        deadline_ms=run.deadline_ms,
        waiting=waiting(run),
    )


def waiting(run: WorkflowRun) -> tuple[str, ...]:
    return tuple(n for n, s in run.steps.items() if s.phase == StepPhase.INPUT_REQUIRED)


def summary(run: WorkflowRun) -> str:
    """`research completed; write running (round 2)`: what a TaskEvent's detail says."""
    if run.state == TaskState.FAILED and run.error is not None:
        return run.error.detail
    parts = []
    for name, step in run.steps.items():
        if step.phase == StepPhase.PENDING:
            continue
        rnd = f" (round {step.round})" if step.round else ""
        count = f" {sum(1 for i in step.items if i.state == TaskState.COMPLETED)}/{step.total}"
        parts.append(f"{name} {step.phase.value}{rnd}{count if step.total > 1 else ''}")
    return "; ".join(parts)
