"""Tasks whose agent loop waits for a person to approve a tool call.

An attempt that ends with a `Failure` of kind `awaiting_approval` does not
count as an attempt: the task is *parked* in `input_required` with the pending
call (`TaskRecord.pending_call`), no token, no instance, no slot and no timer
but its schedule-to-close (armed since admission; `recovery` re-arms only
that one for a parked task). `natsfleet approve TASK` (or `--reject`) records
the decision (`TaskRecord.approval`) and queues the task again; the next
Assign carries the decision to the agent (protocols/approval.py,
docs/tools.md "Approval").

Workflow runs have their own approval steps (supervisor/workflows); a task
with a pending call is answered here, anything else goes to them.
"""

import logging
from typing import TYPE_CHECKING

from msgspec import structs

from natsfleet.protocols import (
    APPROVAL_NOTE_MAX_CHARS,
    Ack,
    ApproveRequest,
    ErrorCode,
    ErrorReply,
    Failure,
    PendingToolCall,
    TaskRecord,
    TaskState,
    ToolApproval,
)
from natsfleet.supervisor import transitions as tr
from natsfleet.supervisor.store import Tracked, event_for, now_ms

if TYPE_CHECKING:
    from natsfleet.supervisor.engine import Engine

log = logging.getLogger(__name__)

OUTCOME = "awaiting_approval"
_SHOWN_ARGUMENTS_CHARS = 200


def describe(pending: PendingToolCall) -> str:
    """One line for events and logs: the tool and (the start of) its arguments."""
    arguments = pending.arguments
    if len(arguments) > _SHOWN_ARGUMENTS_CHARS:
        arguments = arguments[:_SHOWN_ARGUMENTS_CHARS] + "..."
    return f"approve tool {pending.tool} {arguments}"


def parked(record: TaskRecord, pending: PendingToolCall, now: int) -> TaskRecord:
    """The attempt is over (closed by `tr.attempt_ended`); the task waits for a person."""
    return structs.replace(
        record,
        state=TaskState.INPUT_REQUIRED,
        token=None,
        instance_id=None,
        agent=None,
        pending_call=pending,
        error=None,  # nothing failed: the line `watch` shows is the pending call
        schedule_deadline_ms=None,
        attempt_deadline_ms=None,
        not_before_ms=None,
        updated_ms=now,
    )


def decided(record: TaskRecord, approval: ToolApproval, now: int) -> TaskRecord:
    """Queued again, carrying the decision for the next attempt."""
    return structs.replace(
        tr.requeued(record, now), pending_call=None, approval=approval, updated_ms=now
    )


async def park(engine: "Engine", tracked: Tracked, failure: Failure) -> None:
    """End the attempt (not counted) and park the task (hold `tracked.lock`)."""
    pending = failure.pending_call
    assert pending is not None
    now = now_ms()
    token = tracked.record.token
    ended = tr.attempt_ended(
        tracked.record, outcome=OUTCOME, error=None, usage=failure.usage, now_ms=now, counts=False
    )
    new = parked(ended, pending, now)
    await engine.store.write(tracked, new)
    engine.spans.end(token, OUTCOME)
    if engine.metrics is not None:
        engine.metrics.attempt_ended(new, OUTCOME, reassigned=False)
    engine.release(token)
    engine.queue.remove(new.task_id)
    log.info("task %s waits for a person: %s", new.task_id, describe(pending))
    await engine.store.emit(event_for(new, detail=describe(pending)))


async def approve(engine: "Engine", request: ApproveRequest) -> Ack | ErrorReply | None:
    """Decide on the task's pending call; None when the id is not such a task."""
    tracked = await engine.find(request.task_id)
    if tracked is None:
        return None
    record = tracked.record
    if record.pending_call is None:
        if record.approval is None or record.workflow is not None:
            return None  # not a task of ours: a workflow run's, or unknown
        verdict = "approved" if record.approval.approved else "refused"
        return Ack(
            task_id=record.task_id, state=record.state, detail=f"already {verdict} (nothing waits)"
        )
    async with tracked.lock:
        record = tracked.record
        pending = record.pending_call
        if record.state != TaskState.INPUT_REQUIRED or pending is None:
            detail = f"task {record.task_id} waits for no approval ({record.state.value})"
            return ErrorReply(code=ErrorCode.CONFLICT, detail=detail)
        now = now_ms()
        approval = ToolApproval(
            key=pending.key,
            approved=request.approved,
            note=request.note[:APPROVAL_NOTE_MAX_CHARS],
            at_ms=now,
        )
        new = decided(record, approval, now)
        await engine.store.write(tracked, new)
        verdict = "approved" if request.approved else "refused"
        detail = f"tool {pending.tool} {verdict}" + (f": {request.note}" if request.note else "")
        await engine.store.emit(event_for(new, detail=detail[:500]))
        engine.enqueue(new)  # (the store's write armed its schedule-to-start)
    return Ack(task_id=new.task_id, state=new.state, detail=detail[:500])
