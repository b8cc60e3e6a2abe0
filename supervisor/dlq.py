"""`ctl.dlq`: list a page of entries, read one, or run its task again.

List pages newest first by stream sequence: `before_seq` (the previous
reply's `next_before_seq`) starts the page below that sequence, at most
`MAX_PAGE` entries are read with one bounded fetch (`bus.streamread`), and
the reply says how many entries the DLQ holds and whether older ones remain.
Each summary's error is cut to `ERROR_CHARS` so a page always fits one
message; `show` has the whole entry.

Retry submits the dead-lettered work as a *new* task (a fresh id, so the
failed record and its history stay as they were): for a failed task, its
record's skill, input, priority, timeouts, retry policy and parent; for a
submission that never became a task (e.g. `decode_error` on the submit
subject, if it still decodes now), the submission itself. The reply names
the new task id. Anything else (a bad heartbeat, a refused outcome: `stale`
or `wrong_instance`, whose task went on without it) has nothing to re-run
and is answered `bad_request`.
"""

import logging
import time

import msgspec
from nats.aio.msg import Msg
from nats.js import errors as js_errors

from natsfleet.bus.streamread import read_from
from natsfleet.protocols import (
    Codec,
    DeadLetter,
    DlqEntrySummary,
    DlqReason,
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
#: Entries per `list` page at most (whatever `limit` asks for).
MAX_PAGE = 1000
#: A summary's error text is cut to this many characters.
ERROR_CHARS = 500


def _error(code: ErrorCode, detail: str) -> ErrorReply:
    return ErrorReply(code=code, detail=detail, retryable=False)


async def dlq_list(engine: Engine, request: DlqRequest) -> Message:
    bus = engine.bus
    stream = bus.subjects.stream(Stream.DLQ)
    state = (await bus.js.stream_info(stream)).state
    limit = max(1, min(request.limit, MAX_PAGE))
    top = state.last_seq
    if request.before_seq is not None:
        top = min(top, request.before_seq - 1)
    low = max(state.first_seq, top - limit + 1)
    found: list[Msg] = []
    if state.messages and top >= low:
        found = await read_from(bus.js, stream, bus.subjects.all_dlq(), low, top - low + 1)
    entries = [e for msg in reversed(found) if (e := _summary(msg, top)) is not None]
    more = state.messages > 0 and low > state.first_seq
    return DlqReply(
        entries=tuple(entries),
        total=state.messages,
        more=more,
        next_before_seq=low if more else None,
    )


def _summary(msg: Msg, top: int) -> DlqEntrySummary | None:
    seq = msg.metadata.sequence.stream
    if seq > top:  # deleted entries in the range: the fetch ran past the page
        return None
    try:
        letter = _DEAD_LETTER.decode(msg.data or b"")
    except ProtocolError as exc:  # listed anyway: an operator should see it is there
        return DlqEntrySummary(
            seq=seq, reason="unreadable", subject=msg.subject, at_ms=0, error=exc.detail
        )
    error = letter.error if len(letter.error) <= ERROR_CHARS else letter.error[:ERROR_CHARS] + "…"
    return DlqEntrySummary(
        seq=seq,
        reason=letter.reason.value,
        subject=letter.subject,
        at_ms=letter.at_ms,
        task_id=letter.task_id,
        error=error,
    )


async def dlq_show_or_retry(engine: Engine, request: DlqRequest) -> Message:
    if request.seq is None:
        return _error(ErrorCode.BAD_REQUEST, f"dlq {request.action} needs seq")
    if not 1 <= request.seq < 2**63:  # a stream sequence is a positive int64
        return _error(ErrorCode.BAD_REQUEST, f"no DLQ entry {request.seq}")
    bus = engine.bus
    try:
        msg = await bus.js.get_msg(bus.subjects.stream(Stream.DLQ), request.seq)
        letter = _DEAD_LETTER.decode(msg.data or b"")
    except (js_errors.NotFoundError, js_errors.BadRequestError):
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


#: Entries of a refused outcome: they name a task, but it was never the task
#: that failed (and a forged outcome must not make an operator re-run it).
_REFUSED_OUTCOMES = (DlqReason.STALE, DlqReason.WRONG_INSTANCE)


async def _resubmission(engine: Engine, letter: DeadLetter) -> Submit | None:
    if letter.reason in _REFUSED_OUTCOMES:
        return None
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
                session_id=record.session_id,
                tenant=record.tenant,
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
