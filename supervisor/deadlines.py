"""Task deadlines as one concept: the table of timeout kinds and the one place that arms them.

Each timeout kind is a row of `TIMEOUTS`: the `Timeouts` field that sets it,
the `TaskRecord` field that holds its persisted deadline, the states in which
it is armed, whether it belongs to one attempt (fenced by the token), and what
firing does. `Deadlines.arm(record)` arms a record's deadlines from the table;
the task store calls it after every record it writes (`TaskStore(on_write=)`),
so admission, the dispatcher, retries, recovery and the workflow runner all
arm the same way without arming anything themselves, and a record written in
a final state has its timers forgotten. A timer stays a hint: its handler
checks, under the task's lock, that it still applies.

The heartbeat timeout is a row too, with no record field: its deadline moves
with every heartbeat of the holding instance, so the sweep (`Engine.sweep`)
checks it instead of the heap.

The end of a retry's backoff (`TaskRecord.not_before_ms`) is not a timeout:
it is a wake-up (`WakeUp.RETRY`) that puts the task back in the queue. It
shares the heap and is armed by the same `arm`, but it is not in the table.

Adding a fifth timeout: docs/architecture.md, "Adding a fifth timeout".
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from natsfleet.protocols import DlqReason, ErrorInfo, TaskRecord, TaskState, is_terminal
from natsfleet.supervisor import transitions as tr
from natsfleet.supervisor.attempts import Attempt, AttemptTable
from natsfleet.supervisor.queue import ReadyQueue
from natsfleet.supervisor.store import TaskStore, Tracked
from natsfleet.supervisor.timers import Timer, Timers


class TimerKind(StrEnum):
    """The timeout kinds, by the `Timeouts` field that sets each (without `_s`)."""

    SCHEDULE = "schedule_to_start"
    ATTEMPT = "start_to_close"
    CLOSE = "schedule_to_close"
    HEARTBEAT = "heartbeat_timeout"


class WakeUp(StrEnum):
    """Timers that are not timeouts."""

    RETRY = "retry"  # a backoff is over: the task goes back in the queue


class TimeoutActions(Protocol):
    """What a firing timer may do: the term's engine as the deadlines see it."""

    store: TaskStore
    attempts: AttemptTable
    queue: ReadyQueue

    def enqueue(self, record: TaskRecord) -> None: ...

    async def attempt_lost(self, token: str, why: str, *, timed_out: bool = False) -> None: ...

    async def cancel_on_instance(self, record: TaskRecord, reason: str) -> None: ...

    async def fail(
        self, tracked: Tracked, record: TaskRecord, error: ErrorInfo, reason: DlqReason
    ) -> None: ...


Fire = Callable[[TimeoutActions, Tracked, Timer], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Timeout:
    """One timeout kind (a row of `TIMEOUTS`)."""

    kind: TimerKind
    #: The `Timeouts` field that sets it (per task, over the fleet default).
    setting: str
    #: The `TaskRecord` field holding its persisted deadline (epoch ms); None:
    #: not persisted, not in the heap (checked by the sweep).
    field: str | None
    #: The record states in which it is armed.
    armed_in: frozenset[TaskState]
    #: It belongs to one attempt: its timer carries the token, and only that
    #: attempt's end is asked for.
    per_attempt: bool
    #: What firing does (the task is unfinished; the handler takes its lock).
    fire: Fire | None

    def deadline_ms(self, record: TaskRecord, attempt: Attempt | None) -> int | None:
        # The exact deadline of an accepted attempt is in memory only; the
        # record holds an upper bound that survives a restart.
        if self.per_attempt and attempt is not None and attempt.deadline_ms is not None:
            return attempt.deadline_ms
        if self.field is None:
            return None
        at_ms: int | None = getattr(record, self.field)
        return at_ms


async def _unschedulable(engine: TimeoutActions, tracked: Tracked, timer: Timer) -> None:
    async with tracked.lock:
        record = tracked.record
        deadline = record.schedule_deadline_ms
        if record.state not in tr.WAITING_STATES or deadline is None or deadline > timer.at_ms:
            return
        if record.state == TaskState.RETRYING and tracked.task_id not in engine.queue:
            return  # still backing off; the deadline counts from the retry
        error = ErrorInfo(
            error_type="unschedulable",
            detail=f"no instance took it within {record.timeouts.schedule_to_start_s} s",
            retryable=False,
        )
        await engine.fail(tracked, record, error, DlqReason.UNSCHEDULABLE)


async def _attempt_timed_out(engine: TimeoutActions, tracked: Tracked, timer: Timer) -> None:
    attempt = engine.attempts.get(timer.token)
    # An Accept after this timer was armed moved the attempt's deadline (later).
    if attempt is not None and (attempt.deadline_ms or 0) <= timer.at_ms:
        await engine.attempt_lost(attempt.token, "start_to_close timeout", timed_out=True)


async def _past_deadline(engine: TimeoutActions, tracked: Tracked, timer: Timer) -> None:
    async with tracked.lock:
        record = tracked.record
        if is_terminal(record.state):
            return
        await engine.cancel_on_instance(record, "schedule_to_close deadline")
        error = ErrorInfo(
            error_type="deadline",
            detail=f"not done within {record.timeouts.schedule_to_close_s} s",
            retryable=False,
        )
        await engine.fail(tracked, record, error, DlqReason.DEADLINE)


_UNFINISHED = frozenset(s for s in TaskState if not is_terminal(s))

#: The timeout kinds. docs/supervisor.md, "Timeouts", says what each means.
TIMEOUTS: tuple[Timeout, ...] = (
    Timeout(
        kind=TimerKind.SCHEDULE, setting="schedule_to_start_s", field="schedule_deadline_ms",
        armed_in=tr.WAITING_STATES, per_attempt=False, fire=_unschedulable,
    ),
    Timeout(
        kind=TimerKind.ATTEMPT, setting="start_to_close_s", field="attempt_deadline_ms",
        armed_in=tr.RUNNING_STATES, per_attempt=True, fire=_attempt_timed_out,
    ),
    Timeout(
        kind=TimerKind.CLOSE, setting="schedule_to_close_s", field="close_deadline_ms",
        armed_in=_UNFINISHED, per_attempt=False, fire=_past_deadline,
    ),
    # Silence of the holding instance: `Engine.sweep` loses the attempt.
    Timeout(
        kind=TimerKind.HEARTBEAT, setting="heartbeat_timeout_s", field=None,
        armed_in=tr.RUNNING_STATES, per_attempt=True, fire=None,
    ),
)  # fmt: skip

_BY_KIND: dict[str, Timeout] = {row.kind: row for row in TIMEOUTS}
# Per state, the rows armed in the heap (looked up on every write).
_ARMED: dict[TaskState, tuple[Timeout, ...]] = {
    state: tuple(row for row in TIMEOUTS if state in row.armed_in and row.field is not None)
    for state in TaskState
}


class Deadlines:
    """The deadlines of one term's tasks: armed from `TIMEOUTS`, fired in order."""

    def __init__(self) -> None:
        self.timers = Timers()

    def __len__(self) -> int:
        """Timers armed (each finished task's are forgotten)."""
        return len(self.timers)

    def arm(self, record: TaskRecord, attempt: Attempt | None = None) -> None:
        """Arm what `record`, as just written, has due; forget a finished task's timers.

        `attempt`: the running attempt, once its exact deadline is known (Accept).
        Idempotent: a deadline armed already is not armed twice.
        """
        task_id = record.task_id
        if is_terminal(record.state):
            self.timers.forget(task_id)
            return
        for row in _ARMED[record.state]:
            token = record.token if row.per_attempt else None
            self.timers.add(row.deadline_ms(record, attempt), row.kind, task_id, token)
        if record.state == TaskState.RETRYING:
            self.timers.add(record.not_before_ms, WakeUp.RETRY, task_id)

    def again(self, timer: Timer, at_ms: int) -> None:
        """Arm `timer` once more, at `at_ms` (its firing failed)."""
        self.timers.add(at_ms, timer.kind, timer.task_id, timer.token)

    async def run(self, fire: Callable[[Timer], None]) -> None:
        """Call `fire` for each due timer, in time order, until cancelled."""
        await self.timers.run(fire)


async def fire_timer(engine: TimeoutActions, timer: Timer) -> None:
    """What a due timer does to its task, if the task is still unfinished."""
    tracked = engine.store.get(timer.task_id)
    if tracked is None or is_terminal(tracked.record.state):
        return
    if timer.kind == WakeUp.RETRY:
        if tracked.record.state == TaskState.RETRYING:
            engine.enqueue(tracked.record)
        return
    row = _BY_KIND[timer.kind]
    if row.fire is not None:
        await row.fire(engine, tracked, timer)
