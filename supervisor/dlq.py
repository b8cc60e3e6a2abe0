"""`ctl.dlq` show and retry: read one DLQ entry, or run its task again.

Retry submits the dead-lettered work as a *new* task (a fresh id, so the
failed record and its history stay as they were): for a failed task, its
record's skill, input, priority, timeouts, retry policy and parent; for a
submission that never became a task (e.g. `decode_error` on the submit
subject, if it still decodes now), the submission itself. The reply names
the new task id. Anything else (a bad heartbeat, a stale result) has nothing
to re-run and is answered `bad_request`.
"""

import logging
import time

import msgspec
from nats.js import errors as js_errors

from natsfleet.protocols import (
    Codec,
    DeadLetter,
    DlqReply,
    DlqRequest,
    ErrorCode,
    ErrorReply,
    Message,
    ProtocolError,
    Stream,
    Submit,
    new_task_id,
)
from natsfleet.supervisor.engine import Engine

log = logging.getLogger(__name__)

_DEAD_LETTER = Codec[DeadLetter](DeadLetter)
_SUBMIT = Codec[Submit](Submit)


def _error(code: ErrorCode, detail: str) -> ErrorReply:
    return ErrorReply(code=code, detail=detail, retryable=False)


async def dlq_show_or_retry(engine: Engine, request: DlqRequest) -> Message:
    if request.seq is None:
        return _error(ErrorCode.BAD_REQUEST, f"dlq {request.action} needs seq")
    bus = engine.bus
    try:
        msg = await bus.js.get_msg(bus.subjects.stream(Stream.DLQ), request.seq)
        letter = _DEAD_LETTER.decode(msg.data or b"")
    except js_errors.NotFoundError:
        return _error(ErrorCode.BAD_REQUEST, f"no DLQ entry {request.seq}")
    except ProtocolError as exc:
        return _error(ErrorCode.BAD_REQUEST, f"DLQ entry {request.seq} unreadable: {exc}")
    if request.action == "show":
        return DlqReply(entry=letter)
    submit = await _resubmission(engine, letter)
    if submit is None:
        return _error(ErrorCode.BAD_REQUEST, f"DLQ entry {request.seq} holds no task to re-run")
    await bus.publish_js(bus.subjects.submit(), submit, msg_id=submit.task_id)
    log.info("dlq %s: %s re-run as %s", request.seq, letter.task_id, submit.task_id)
    return DlqReply(task_id=submit.task_id, detail=f"re-run of {letter.task_id or 'a submit'}")


async def _resubmission(engine: Engine, letter: DeadLetter) -> Submit | None:
    now = int(time.time() * 1000)
    task_id = new_task_id()
    if letter.task_id is not None:
        tracked = await engine.store.fetch(letter.task_id)
        if tracked is not None and tracked.record.skill is not None:
            record = tracked.record
            return Submit(
                task_id=task_id,
                skill=record.skill,
                input=record.input,
                input_ref=record.input_ref,
                priority=record.priority,
                timeouts=record.timeouts,
                retry=record.retry,
                queue=True,
                parent_id=record.parent_id,
                budget_usd=record.budget_usd,
                submitted_ms=now,
                client=f"dlq-retry:{letter.task_id}",
            )
    if letter.subject == engine.bus.subjects.submit():
        try:
            original = _SUBMIT.decode(letter.payload)
        except ProtocolError:
            return None
        return msgspec.structs.replace(original, task_id=task_id, submitted_ms=now)
    return None
