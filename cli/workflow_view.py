"""How a workflow run's steps are shown (`natsfleet status RUN`)."""

from datetime import UTC, datetime

from rich.console import Console
from rich.table import Column, Table

from natsfleet.protocols import WorkflowStatus


def print_workflow(status: WorkflowStatus, console: Console) -> None:
    """One row per step task (fan-out items, loop rounds), plus waiting approvals."""
    budget = f" of ${status.budget_usd:.4f}" if status.budget_usd is not None else ""
    deadline = ""
    if status.deadline_ms is not None:
        at = datetime.fromtimestamp(status.deadline_ms / 1000, UTC)
        deadline = f", deadline {at:%Y-%m-%d %H:%M:%S} UTC"
    title = (
        f"workflow {status.workflow}: {status.state.value}, "
        f"spent ${status.spent_usd:.4f}{budget} in {status.usage.calls} calls{deadline}"
    )
    # Ids fold onto more lines on a narrow terminal, never cut.
    table = Table(
        "step", "state", Column("task", overflow="fold"), "attempts", "calls", "tokens", "cost",
        title=title,
    )  # fmt: skip
    for step in status.steps:
        label = f"{step.name} ({step.skill})" if step.skill else f"{step.name} (approval)"
        if not step.tasks:
            table.add_row(label, step.phase, "", "", "", "", "", end_section=False)
        for i, task in enumerate(step.tasks):
            which = f"#{task.n} " if len(step.tasks) > 1 else ""
            table.add_row(
                label if i == 0 else "",
                f"{which}{task.state.value}",
                task.task_id,
                str(task.attempts),
                str(task.usage.calls),
                str(task.usage.input_tokens + task.usage.output_tokens),
                f"${task.cost_usd:.4f}",
            )
        if step.detail and step.phase in ("input_required", "skipped", "failed"):
            table.add_row("", f"[dim]{step.detail}[/dim]", "", "", "", "", "")
    console.print(table)
    for name in status.waiting:
        console.print(
            f"waiting for approval at step [bold]{name}[/bold]: "
            f"natsfleet approve {status.run_id} [--input JSON] [--reject]",
            highlight=False,
        )
