"""What the control API shows of a workflow run: its steps and their tasks."""

import msgspec

from natsfleet.protocols.base import Usage
from natsfleet.protocols.states import TaskState


class StepTaskStatus(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One ordinary task a step submitted (a fan-out item or a loop round)."""

    task_id: str
    key: str
    n: int = 0
    state: TaskState
    attempts: int = 0
    cost_usd: float = 0.0
    # Calls and tokens as well as cost (`cost_usd` is `usage.cost_usd`).
    usage: Usage = Usage()


class StepStatus(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A step of a run: `pending`, `running`, `input_required`, `completed`,
    `failed` or `skipped`."""

    name: str
    skill: str | None = None
    phase: str
    round: int = 0
    tasks: tuple[StepTaskStatus, ...] = ()
    cost_usd: float = 0.0
    # Its tasks' usage added up.
    usage: Usage = Usage()
    # Approval steps: what the person is asked; any step: why it ended so.
    detail: str = ""


class WorkflowStatus(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A workflow run as `ctl.status` shows it (`TaskStatusReply.workflow`)."""

    run_id: str
    workflow: str
    state: TaskState
    steps: tuple[StepStatus, ...] = ()
    spent_usd: float = 0.0
    # Every step task's usage added up: calls, tokens and cost.
    usage: Usage = Usage()
    budget_usd: float | None = None
    deadline_ms: int | None = None
    # Steps waiting for `ctl.approve`.
    waiting: tuple[str, ...] = ()
