"""Typed errors of the supervisor."""

from natsfleet.protocols import NatsFleetError


class SupervisorError(NatsFleetError):
    """A supervisor operation failed."""

    def __init__(self, detail: str, *, retryable: bool = False) -> None:
        self.detail = detail
        self.retryable = retryable
        super().__init__(detail)


class NotLeader(SupervisorError):
    """This supervisor does not hold (or may no longer hold) its partition's lease.

    Raised before any write, so a deposed supervisor changes nothing; the
    caller stops acting and the message it was handling is redelivered to the
    active supervisor.
    """

    def __init__(self, partition: int, detail: str = "lease not held") -> None:
        self.partition = partition
        super().__init__(f"partition {partition}: {detail}", retryable=True)


class RevisionConflict(SupervisorError):
    """A task record changed under us although we hold the lease (a bug or a split brain)."""

    def __init__(self, task_id: str, expected: int) -> None:
        self.task_id = task_id
        self.expected = expected
        super().__init__(f"task {task_id}: revision {expected} is no longer the latest")


class Backpressure(SupervisorError):
    """Too many tasks wait already: the submission stays in TASKS (redelivered
    later), so TASKS fills up and clients get `backpressure` at its maximum."""

    def __init__(self, waiting: int) -> None:
        self.waiting = waiting
        super().__init__(f"{waiting} tasks wait for an instance; admission paused", retryable=True)
