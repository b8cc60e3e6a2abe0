"""Task states (A2A's names) and which of them are final."""

from enum import StrEnum


class TaskState(StrEnum):
    SUBMITTED = "submitted"
    QUEUED = "queued"
    ASSIGNED = "assigned"
    WORKING = "working"
    RETRYING = "retrying"
    INPUT_REQUIRED = "input_required"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"
    REJECTED = "rejected"


TERMINAL_STATES = frozenset(
    {TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELED, TaskState.REJECTED}
)


def is_terminal(state: TaskState) -> bool:
    return state in TERMINAL_STATES
