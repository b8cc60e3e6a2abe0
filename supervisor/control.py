"""The control API on `<prefix>.ctl.<verb>`, served by the active supervisor.

The body is decoded here, not by the bus, so that an unknown verb is reported
as `unknown_verb` whatever it carries; a body that is not the verb's request
type is `bad_request`, a task id nobody knows is `unknown_task`.
"""

import contextlib
import logging

import msgspec
from nats.js import JetStreamContext
from nats.js import errors as js_errors

from natsfleet.bus import Incoming
from natsfleet.bus.kvread import recent_values
from natsfleet.protocols import (
    CONTROL_VERBS,
    Ack,
    AgentsReply,
    AgentsRequest,
    ApproveRequest,
    CancelRequest,
    Codec,
    ControlRequest,
    DeadLetter,
    DlqEntrySummary,
    DlqReply,
    DlqRequest,
    ErrorCode,
    ErrorReply,
    ListRequest,
    Message,
    ProtocolError,
    StatusRequest,
    Stream,
    TaskListReply,
    TaskRecord,
    TaskStatusReply,
    TaskSummary,
    is_terminal,
)
from natsfleet.supervisor.dlq import dlq_show_or_retry
from natsfleet.supervisor.engine import Engine
from natsfleet.supervisor.pending import pending_submit
from natsfleet.supervisor.store import Tracked
from natsfleet.supervisor.workflows.runner import WorkflowRunner

log = logging.getLogger(__name__)

RAW = Codec[msgspec.Raw](msgspec.Raw)
_REQUEST = Codec[ControlRequest](ControlRequest)
_DEAD_LETTER = Codec[DeadLetter](DeadLetter)
_RECORD = msgspec.json.Decoder(TaskRecord)
MAX_LIST = 10_000
#: At most this many of the newest STATE entries are read to list finished tasks.
MAX_SCAN = 20_000


def _error(code: ErrorCode, detail: str) -> ErrorReply:
    return ErrorReply(code=code, detail=detail, retryable=False)


class Control:
    def __init__(self, engine: Engine, workflows: WorkflowRunner | None = None) -> None:
        self.engine = engine
        self.workflows = workflows

    async def handle(self, body: msgspec.Raw, incoming: Incoming) -> Message:
        verb = incoming.subject.rsplit(".", 1)[-1]
        expected = CONTROL_VERBS.get(verb)
        if expected is None:
            return _error(ErrorCode.UNKNOWN_VERB, f"no control verb {verb!r}")
        try:
            request = _REQUEST.decode(body)
        except ProtocolError as exc:
            return _error(ErrorCode.BAD_REQUEST, exc.detail)
        if not isinstance(request, expected):
            return _error(ErrorCode.BAD_REQUEST, f"{verb} expects {expected.__name__}")
        match request:
            case StatusRequest():
                return await self._status(request)
            case ListRequest():
                return await self._list(request)
            case CancelRequest():
                return await self._cancel(request)
            case AgentsRequest():
                info = self.engine.registry.info(self.engine.attempts.load, request.agent)
                return AgentsReply(agents=tuple(info))
            case DlqRequest():
                return await self._dlq(request)
            case ApproveRequest():
                if self.workflows is None:
                    return _error(ErrorCode.UNKNOWN_TASK, f"no step of {request.task_id} waits")
                return await self.workflows.approve(request)

    async def _tracked(self, task_id: str) -> Tracked | ErrorReply:
        tracked = await self.engine.find(task_id)
        if tracked is None:
            return _error(ErrorCode.UNKNOWN_TASK, f"no task {task_id!r}")
        return tracked

    async def _status(self, request: StatusRequest) -> Message:
        tracked = await self._tracked(request.task_id)
        if isinstance(tracked, ErrorReply):
            return tracked
        workflow = self.workflows.status(request.task_id) if self.workflows else None
        record = tracked.shown()
        attempt = None if is_terminal(record.state) else self.engine.attempts.get(record.token)
        progress = attempt.progress if attempt is not None else None
        return TaskStatusReply(task=record, workflow=workflow, progress=progress)

    async def _list(self, request: ListRequest) -> Message:
        """Live tasks from memory; finished ones from the newest writes in KV STATE."""
        limit = max(0, min(request.limit, MAX_LIST))
        rows = {t.task_id: t.shown() for t in self.engine.store}
        if request.state is None or is_terminal(request.state):
            store = self.engine.store
            scan = min(MAX_SCAN, max(4 * limit, 256))
            for key, value in await recent_values(store.bus.js, store.kv, scan):
                if key not in rows:
                    with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
                        rows[key] = _RECORD.decode(value)
        found = list(rows.values())
        if request.state is not None:
            found = [r for r in found if r.state == request.state]
        found.sort(key=lambda r: r.created_ms, reverse=True)
        return TaskListReply(
            tasks=tuple(
                TaskSummary(
                    task_id=r.task_id,
                    skill=r.skill,
                    workflow=r.workflow,
                    state=r.state,
                    attempts=r.attempts,
                    instance_id=r.instance_id,
                    created_ms=r.created_ms,
                    updated_ms=r.updated_ms,
                    usage=r.usage,
                )
                for r in found[:limit]
            )
        )

    async def _cancel(self, request: CancelRequest) -> Message:
        tracked = await self._tracked(request.task_id)
        if isinstance(tracked, ErrorReply):
            # Submitted but not read from TASKS yet: cancel it before it starts.
            submit = await pending_submit(self.engine.bus, request.task_id)
            if submit is None or submit.skill is None:
                return tracked
            pending = await self.engine.cancel_pending(submit, request.reason)
            if pending is not None:
                return Ack(task_id=pending.task_id, state=pending.state, detail=request.reason)
            tracked = await self._tracked(request.task_id)  # admitted meanwhile
            if isinstance(tracked, ErrorReply):
                return tracked
        record = await self.engine.cancel(tracked, request.reason)
        return Ack(task_id=record.task_id, state=record.state, detail=request.reason)

    async def _dlq(self, request: DlqRequest) -> Message:
        if request.action in ("show", "retry"):
            return await dlq_show_or_retry(self.engine, request)
        if request.action != "list":
            return _error(ErrorCode.BAD_REQUEST, f"dlq action {request.action!r} is not served")
        bus = self.engine.bus
        stream = bus.subjects.stream(Stream.DLQ)
        info = await bus.js.stream_info(stream)
        last = info.state.last_seq
        first = max(info.state.first_seq, last - max(0, min(request.limit, 1000)) + 1)
        entries: list[DlqEntrySummary] = []
        for seq in range(last, first - 1, -1) if last else ():
            entry = await _dlq_entry(bus.js, stream, seq)
            if entry is not None:
                entries.append(entry)
        return DlqReply(entries=tuple(entries))


async def _dlq_entry(js: JetStreamContext, stream: str, seq: int) -> DlqEntrySummary | None:
    try:
        msg = await js.get_msg(stream, seq)
        letter = _DEAD_LETTER.decode(msg.data or b"")
    except (js_errors.NotFoundError, ProtocolError):
        return None
    return DlqEntrySummary(
        seq=seq,
        reason=letter.reason.value,
        subject=letter.subject,
        at_ms=letter.at_ms,
        task_id=letter.task_id,
        error=letter.error,
    )
