"""Pure functions from one task record to the next (no I/O, no clock).

Every change of a task's durable state is one of these; the store writes the
result by compare-and-set. `attempts` counts an attempt from the moment it is
assigned, so a supervisor crash between Assign and Accept cannot lose the
count; an Assign that is rejected or unanswered gives the attempt back.
"""

from msgspec import structs

from natsfleet.bus.payloads import bounded_error
from natsfleet.protocols import (
    AttemptRecord,
    ErrorInfo,
    Result,
    RetryPolicy,
    Submit,
    TaskRecord,
    TaskState,
    Timeouts,
    Usage,
)

#: States in which a task holds an attempt on some instance.
RUNNING_STATES = frozenset({TaskState.ASSIGNED, TaskState.WORKING})
#: Attempts a record keeps (the latest): with `maximum_attempts = 0` (no
#: limit) or many hand-backs, an unbounded history would outgrow one KV value.
MAX_HISTORY = 100
#: States in which a task waits for an instance.
WAITING_STATES = frozenset({TaskState.SUBMITTED, TaskState.QUEUED, TaskState.RETRYING})


def _deadline(now_ms: int, seconds: float | None) -> int | None:
    return None if seconds is None else now_ms + int(seconds * 1000)


def new_record(submit: Submit, defaults: Timeouts, retry: RetryPolicy, now_ms: int) -> TaskRecord:
    timeouts = submit.timeouts.merged_over(defaults)
    created = submit.submitted_ms or now_ms
    return TaskRecord(
        task_id=submit.task_id,
        skill=submit.skill,
        workflow=submit.workflow,
        state=TaskState.QUEUED,
        input=submit.input,
        input_ref=submit.input_ref,
        priority=submit.priority,
        timeouts=timeouts,
        retry=submit.retry or retry,
        queue=submit.queue,
        idempotency_key=submit.idempotency_key,
        parent_id=submit.parent_id,
        workflow_id=submit.workflow_id,
        budget_usd=submit.budget_usd,
        session_id=submit.session_id,
        tenant=submit.tenant,
        created_ms=created,
        updated_ms=now_ms,
        schedule_deadline_ms=_deadline(now_ms, timeouts.schedule_to_start_s),
        close_deadline_ms=_deadline(created, timeouts.schedule_to_close_s),
    )


def rejected(record: TaskRecord, error: ErrorInfo, now_ms: int) -> TaskRecord:
    return structs.replace(record, state=TaskState.REJECTED, error=error, updated_ms=now_ms)


def assigned(
    record: TaskRecord,
    *,
    token: str,
    instance_id: str,
    agent: str,
    now_ms: int,
    assign_timeout_s: float,
) -> TaskRecord:
    # The persisted attempt deadline is an upper bound (Assign sent + answer
    # time + start_to_close); the exact one, from Accept, is kept in memory.
    s2c = record.timeouts.start_to_close_s
    attempt_deadline = None if s2c is None else now_ms + int((s2c + assign_timeout_s) * 1000)
    attempt = AttemptRecord(
        attempt=record.attempts + 1, token=token, instance_id=instance_id, started_ms=now_ms
    )
    return structs.replace(
        record,
        state=TaskState.ASSIGNED,
        attempts=record.attempts + 1,
        token=token,
        instance_id=instance_id,
        agent=agent,
        history=(*record.history, attempt)[-MAX_HISTORY:],
        attempt_deadline_ms=attempt_deadline,
        not_before_ms=None,
        updated_ms=now_ms,
    )


def unassigned(record: TaskRecord, now_ms: int) -> TaskRecord:
    """The Assign was rejected or not answered: it never became an attempt."""
    return structs.replace(
        record,
        state=TaskState.QUEUED,
        attempts=max(0, record.attempts - 1),
        token=None,
        instance_id=None,
        agent=None,
        history=record.history[:-1],
        attempt_deadline_ms=None,
        updated_ms=now_ms,
    )


def _close_attempt(
    record: TaskRecord, outcome: str, error: ErrorInfo | None, now_ms: int
) -> tuple[AttemptRecord, ...]:
    if (
        not record.history
        or record.history[-1].token != record.token
        or record.history[-1].ended_ms is not None
    ):
        return record.history
    last = structs.replace(record.history[-1], ended_ms=now_ms, outcome=outcome, error=error)
    return (*record.history[:-1], last)


def completed(record: TaskRecord, result: Result, now_ms: int) -> TaskRecord:
    return structs.replace(
        record,
        state=TaskState.COMPLETED,
        history=_close_attempt(record, "completed", None, now_ms),
        output=result.output,
        output_ref=result.output_ref,
        usage=record.usage + result.usage,
        attempt_deadline_ms=None,
        updated_ms=now_ms,
    )


def attempt_ended(
    record: TaskRecord,
    *,
    outcome: str,
    error: ErrorInfo | None,
    usage: Usage,
    now_ms: int,
    counts: bool = True,
) -> TaskRecord:
    """Close the current attempt; the caller then picks retrying/queued/failed."""
    return structs.replace(
        record,
        attempts=record.attempts if counts else max(0, record.attempts - 1),
        history=_close_attempt(record, outcome, error, now_ms),
        error=error if error is not None else record.error,
        usage=record.usage + usage,
        attempt_deadline_ms=None,
        updated_ms=now_ms,
    )


def requeued(record: TaskRecord, now_ms: int, *, not_before_ms: int | None = None) -> TaskRecord:
    """Wait for the next attempt: at once (QUEUED) or after a backoff (RETRYING)."""
    s2s = record.timeouts.schedule_to_start_s
    start_from = not_before_ms or now_ms
    return structs.replace(
        record,
        state=TaskState.QUEUED if not_before_ms is None else TaskState.RETRYING,
        token=None,
        instance_id=None,
        agent=None,
        not_before_ms=not_before_ms,
        schedule_deadline_ms=_deadline(start_from, s2s),
        attempt_deadline_ms=None,
        updated_ms=now_ms,
    )


def failed(record: TaskRecord, error: ErrorInfo, now_ms: int) -> TaskRecord:
    return structs.replace(
        record,
        state=TaskState.FAILED,
        error=error,
        history=_close_attempt(record, "failed", error, now_ms)
        if record.state in RUNNING_STATES
        else record.history,
        attempt_deadline_ms=None,
        not_before_ms=None,
        updated_ms=now_ms,
    )


def canceled(record: TaskRecord, reason: str, now_ms: int) -> TaskRecord:
    error = bounded_error("canceled", reason, retryable=False)  # a client's text
    return structs.replace(
        record,
        state=TaskState.CANCELED,
        error=error,
        history=_close_attempt(record, "canceled", error, now_ms)
        if record.state in RUNNING_STATES
        else record.history,
        attempt_deadline_ms=None,
        not_before_ms=None,
        updated_ms=now_ms,
    )


def adopted(record: TaskRecord, epoch: int, now_ms: int) -> TaskRecord:
    """Rewritten unchanged by a new leader: a deposed writer's CAS now fails."""
    return structs.replace(record, epoch=epoch, updated_ms=now_ms)
