"""The control API on `ctl.<verb>`: requests and their replies."""

import msgspec

from natsfleet.protocols.agent import InFlight, SkillSpec
from natsfleet.protocols.base import ErrorReply, Message, Usage, null_raw
from natsfleet.protocols.dlq import DeadLetter
from natsfleet.protocols.states import TaskState
from natsfleet.protocols.task import TaskRecord
from natsfleet.protocols.workflow import WorkflowStatus


class StatusRequest(Message, frozen=True, kw_only=True, tag="ctl.status"):
    task_id: str


class ListRequest(Message, frozen=True, kw_only=True, tag="ctl.list"):
    state: TaskState | None = None
    limit: int = 100
    # The next page: `next_before_seq` of the previous reply (KV STATE sequence).
    before_seq: int | None = None  # a stream sequence, >= 1


class CancelRequest(Message, frozen=True, kw_only=True, tag="ctl.cancel"):
    task_id: str
    reason: str = ""


class ApproveRequest(Message, frozen=True, kw_only=True, tag="ctl.approve"):
    """Resume (or refuse) a workflow step waiting in `input_required`."""

    task_id: str
    approved: bool = True
    input: msgspec.Raw = msgspec.field(default_factory=null_raw)
    note: str = ""


class AgentsRequest(Message, frozen=True, kw_only=True, tag="ctl.agents"):
    agent: str | None = None
    # A page: at most `limit` instances (by instance id), those after `after`.
    limit: int = 500
    after: str | None = None


class DlqRequest(Message, frozen=True, kw_only=True, tag="ctl.dlq"):
    action: str = "list"  # "list" | "show" | "retry"
    seq: int | None = None
    limit: int = 100
    # `list`: entries older than this sequence (the previous reply's `next_before_seq`).
    before_seq: int | None = None  # a stream sequence, >= 1


class WorkflowsRequest(Message, frozen=True, kw_only=True, tag="ctl.workflows"):
    """The workflows the active supervisor has loaded (the gateways list them as tools)."""


#: Every control request; the verb is the subject's last token.
ControlRequest = (
    StatusRequest
    | ListRequest
    | CancelRequest
    | ApproveRequest
    | AgentsRequest
    | DlqRequest
    | WorkflowsRequest
)

#: verb -> request type, for building subjects and routing.
CONTROL_VERBS: dict[str, type[ControlRequest]] = {
    "status": StatusRequest,
    "list": ListRequest,
    "cancel": CancelRequest,
    "approve": ApproveRequest,
    "agents": AgentsRequest,
    "dlq": DlqRequest,
    "workflows": WorkflowsRequest,
}


class TaskStatusReply(Message, frozen=True, kw_only=True, tag="ctl.task"):
    task: TaskRecord
    # Set for a workflow run: its steps and their tasks.
    workflow: WorkflowStatus | None = None
    # A running task's latest `ctx.progress`, as its instance's heartbeats report it.
    progress: InFlight | None = None


class TaskSummary(msgspec.Struct, frozen=True, kw_only=True):
    task_id: str
    skill: str | None
    workflow: str | None = None
    state: TaskState
    attempts: int
    instance_id: str | None = None
    created_ms: int
    updated_ms: int
    usage: Usage = Usage()


class TaskListReply(Message, frozen=True, kw_only=True, tag="ctl.tasks"):
    tasks: tuple[TaskSummary, ...]
    # Paging: tasks kept in STATE, and the cursor of the next (older) page.
    total: int = 0
    more: bool = False
    next_before_seq: int | None = None


class AgentInfo(msgspec.Struct, frozen=True, kw_only=True):
    instance_id: str
    agent: str
    incarnation: str
    skills: tuple[SkillSpec, ...]
    capacity: int
    load: int
    last_seen_ms: int
    alive: bool = True
    draining: bool = False
    host: str = ""
    pid: int = 0


class AgentsReply(Message, frozen=True, kw_only=True, tag="ctl.agents_reply"):
    agents: tuple[AgentInfo, ...]
    # Paging: instances known in all, and the `after` of the next page.
    total: int = 0
    more: bool = False
    next_after: str | None = None


class DlqEntrySummary(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    reason: str
    subject: str
    at_ms: int
    task_id: str | None = None
    error: str = ""


class DlqReply(Message, frozen=True, kw_only=True, tag="ctl.dlq_reply"):
    entries: tuple[DlqEntrySummary, ...] = ()
    detail: str = ""
    # `list` paging: entries in the DLQ, and the cursor of the next (older) page.
    total: int = 0
    more: bool = False
    next_before_seq: int | None = None
    # `show`: the whole entry (payload, headers, attempts).
    entry: DeadLetter | None = None
    # `retry`: the id of the new task that re-runs the dead-lettered input.
    task_id: str | None = None


class Ack(Message, frozen=True, kw_only=True, tag="ctl.ack"):
    """A control action was done (or was already done: actions are idempotent)."""

    task_id: str | None = None
    state: TaskState | None = None
    detail: str = ""


class WorkflowInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One loaded workflow, as `ctl.workflows` lists it."""

    name: str
    description: str = ""
    # Top-level keys its input must have (checked at submit).
    required_input: tuple[str, ...] = ()
    # The skills its steps use.
    skills: tuple[str, ...] = ()
    deadline_s: float | None = None
    budget_usd: float | None = None


class WorkflowsReply(Message, frozen=True, kw_only=True, tag="ctl.workflows_reply"):
    workflows: tuple[WorkflowInfo, ...] = ()


ControlReply = (
    TaskStatusReply | TaskListReply | AgentsReply | DlqReply | WorkflowsReply | Ack | ErrorReply
)
