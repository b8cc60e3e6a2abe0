"""The errors a `FleetClient` raises besides the bus's own (bus/errors.py)."""

from natsfleet.protocols import ErrorCode, NatsFleetError, TaskEvent


class TaskRejected(NatsFleetError):
    """The submission itself was refused (backpressure, unknown skill, ...)."""

    def __init__(self, code: ErrorCode, detail: str) -> None:
        self.code = code
        self.detail = detail
        self.retryable = code == ErrorCode.BACKPRESSURE
        super().__init__(f"{code.value}: {detail}")


class WaitTimeout(NatsFleetError):
    """The task did not end within the time the caller was willing to wait."""

    retryable = True

    def __init__(self, task_id: str, timeout_s: float) -> None:
        self.task_id = task_id
        self.timeout_s = timeout_s
        super().__init__(f"task {task_id} not finished after {timeout_s} s")


class TaskFailed(NatsFleetError):
    """`result()` of a task that ended failed, canceled or rejected."""

    def __init__(self, event: TaskEvent) -> None:
        self.event = event
        self.retryable = False
        why = event.error.detail if event.error else event.detail
        super().__init__(f"task {event.task_id} {event.state.value}: {why}")


class IdempotencyKeyMismatch(NatsFleetError):
    """The task an idempotency key points at was not submitted with that key.

    The key's IDEM entry was overwritten (by a user allowed to write that
    key's scope): the submit refuses the task instead of returning another
    submission's task. Not retryable: the entry stays until its TTL or until
    someone with the rights removes it.
    """

    retryable = False

    def __init__(self, key_hash: str, task_id: str, detail: str) -> None:
        self.key_hash = key_hash
        self.task_id = task_id
        self.detail = detail
        super().__init__(f"idempotency key {key_hash[:12]}... points at task {task_id!r}, {detail}")
