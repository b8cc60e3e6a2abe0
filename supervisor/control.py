"""The control API on `<prefix>.ctl.<verb>`, served by the active supervisor.

The body is decoded here, not by the bus, so that an unknown verb is reported
as `unknown_verb` whatever it carries; a body that is not the verb's request
type is `bad_request`, a task id nobody knows is `unknown_task`.
"""

import logging

import msgspec

from natsfleet.bus import Incoming
from natsfleet.protocols import (
    CONTROL_VERBS,
    Ack,
    AgentsReply,
    AgentsRequest,
    ApproveRequest,
    CancelRequest,
    Codec,
    ControlRequest,
    DlqRequest,
    ErrorCode,
    ErrorReply,
    ListRequest,
    Message,
    ProtocolError,
    StatusRequest,
    TaskStatusReply,
    WorkflowInfo,
    WorkflowsReply,
    WorkflowsRequest,
)
from natsfleet.supervisor import approvals
from natsfleet.supervisor.dlq import dlq_list, dlq_show_or_retry
from natsfleet.supervisor.engine import Engine
from natsfleet.supervisor.pending import pending_submit
from natsfleet.supervisor.store import Tracked
from natsfleet.supervisor.task_list import list_tasks
from natsfleet.supervisor.workflows.runner import WorkflowRunner

log = logging.getLogger(__name__)

RAW = Codec[msgspec.Raw](msgspec.Raw)
_REQUEST = Codec[ControlRequest](ControlRequest)
#: Instances per `agents` page at most (each carries its skills' schemas).
MAX_AGENTS = 500


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
                return self._agents(request)
            case DlqRequest():
                return await self._dlq(request)
            case WorkflowsRequest():
                return self._workflows()
            case ApproveRequest():
                decided = await approvals.approve(self.engine, request)
                if decided is not None:  # a task whose loop waits on a tool call
                    return decided
                if self.workflows is None:
                    return _error(ErrorCode.UNKNOWN_TASK, f"no step of {request.task_id} waits")
                return await self.workflows.approve(request)

    def _agents(self, request: AgentsRequest) -> AgentsReply:
        """One page of instances by id (a reply must fit one message)."""
        info = self.engine.registry.info(self.engine.attempts.load, request.agent)
        info.sort(key=lambda i: i.instance_id)
        after = request.after
        rest = [i for i in info if after is None or i.instance_id > after]
        page = rest[: max(1, min(request.limit, MAX_AGENTS))]
        more = len(rest) > len(page)
        return AgentsReply(
            agents=tuple(page),
            total=len(info),
            more=more,
            next_after=page[-1].instance_id if more else None,
        )

    def _workflows(self) -> WorkflowsReply:
        """The loaded workflows, for the gateways' tool lists."""
        if self.workflows is None:
            return WorkflowsReply()
        catalog = self.workflows.catalog
        found = []
        for name in catalog.names():
            defn = catalog.get(name)
            if defn is None:  # pragma: no cover - names() lists only loaded ones
                continue
            found.append(
                WorkflowInfo(
                    name=defn.name,
                    description=defn.description,
                    required_input=defn.required_input,
                    skills=tuple(defn.skills()),
                    deadline_s=defn.deadline_s,
                    budget_usd=defn.budget_usd,
                )
            )
        return WorkflowsReply(workflows=tuple(found))

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
        # Only a running attempt is in the table: an ended one shows no progress.
        attempt = self.engine.attempts.get(record.token)
        progress = attempt.progress if attempt is not None else None
        return TaskStatusReply(task=record, workflow=workflow, progress=progress)

    async def _list(self, request: ListRequest) -> Message:
        if request.before_seq is not None and request.before_seq < 1:
            return _error(ErrorCode.BAD_REQUEST, "before_seq is a stream sequence (>= 1)")
        return await list_tasks(self.engine.store, request)

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
        if request.before_seq is not None and request.before_seq < 1:
            return _error(ErrorCode.BAD_REQUEST, "before_seq is a stream sequence (>= 1)")
        return await dlq_list(self.engine, request)
