"""Messages between agent instances and the supervisor.

The contract they carry: docs/architecture.md, "Agent <-> supervisor contract".
"""

from enum import StrEnum
from typing import Any

import msgspec

from natsfleet.protocols.approval import PendingToolCall, ToolApproval
from natsfleet.protocols.base import ErrorReply, Message, PayloadRef, Usage
from natsfleet.protocols.limits import Count, Id, Label, Millis, Name, Seconds, Seq, Usd


class SkillSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One skill an agent offers, with the JSON Schemas of its input and output."""

    name: Name
    version: Label = "1"
    description: str = ""
    input_schema: dict[str, Any] = msgspec.field(default_factory=dict)
    output_schema: dict[str, Any] = msgspec.field(default_factory=dict)


class Hello(Message, frozen=True, kw_only=True, tag="agent.hello"):
    """An instance comes up (and repeats it when the supervisor asks)."""

    instance_id: Id
    agent: Id
    agent_version: Label = "0"
    incarnation: Id
    skills: tuple[SkillSpec, ...]
    capacity: Count
    host: Label = ""
    pid: int = 0
    heartbeat_interval_s: Seconds
    started_ms: int = 0
    # Takes `AssignBatch` on its assign inbox (older instances get one Assign
    # per request).
    assign_batch: bool = False


class InFlight(msgspec.Struct, frozen=True, kw_only=True):
    """A task an instance is running, as its heartbeat reports it."""

    task_id: Id
    token: Id
    progress: float | None = None
    note: str = ""


class Heartbeat(Message, frozen=True, kw_only=True, tag="agent.hb"):
    """Periodic liveness with current load; `in_flight` lists every held attempt."""

    instance_id: Id
    agent: Id
    incarnation: Id
    seq: Seq
    load: Count
    capacity: Count
    in_flight: tuple[InFlight, ...] = ()
    # Tokens whose outcome was published (and acked by the stream) recently:
    # a token in neither list has been lost by this instance.
    recent: tuple[Id, ...] = ()
    draining: bool = False


class Bye(Message, frozen=True, kw_only=True, tag="agent.bye"):
    """An instance leaves on purpose (drained)."""

    instance_id: Id
    agent: Id
    incarnation: Id
    reason: str = ""


#: What arrives on `agent.<type>.<inst>.{hello,hb,bye}`.
AgentAnnouncement = Hello | Heartbeat | Bye


class Rollcall(Message, frozen=True, kw_only=True, tag="agent.rollcall"):
    """Supervisor -> every instance (`agent.rollcall`): send your `Hello` again.

    A supervisor that starts, or hears a heartbeat from an instance it does not
    know, asks; so the registry never depends on having seen the first hello.
    """

    supervisor_id: str = ""


class Assign(Message, frozen=True, kw_only=True, tag="task.assign"):
    """One attempt of a task, offered to one instance by request.

    Durations are relative (`*_ms` from receipt) so agents' clocks do not matter.
    """

    task_id: Id
    token: Id
    attempt: Count
    skill: Name
    input: msgspec.Raw
    remaining_ms: int | None = None  # negative once the deadline has passed
    start_to_close_ms: Millis | None = None
    parent_id: Id | None = None
    workflow_id: Id | None = None
    budget_usd: Usd | None = None
    # The input is in BLOBS (then `input` is null).
    input_ref: PayloadRef | None = None
    # The latest decision on a tool call the task's loop paused for
    # (protocols/approval.py); the attempt applies it to that call only.
    approval: ToolApproval | None = None
    # The conversation this task continues: its loops read and extend it.
    session_id: Id | None = None
    # Who the task is for: the governor's per-tenant limits (`Submit.tenant`).
    tenant: Id | None = None


class Cancel(Message, frozen=True, kw_only=True, tag="task.cancel"):
    """Stop the attempt holding `token` (a stale or unknown token is ignored)."""

    task_id: Id
    token: Id
    reason: str = ""


#: What arrives on `agent.<type>.<inst>.{assign,cancel}`.
class AssignBatch(Message, frozen=True, kw_only=True, tag="task.assign_batch"):
    """Several Assigns for one instance in one request (docs/architecture.md, "Hot path").

    Sent only to instances whose Hello says `assign_batch`, when more than one
    Assign for them is ready in the same event-loop turn. Each Assign is
    handled as if it came alone; the `AssignBatchReply` answers them in order.
    """

    assigns: tuple[Assign, ...]


AgentInbox = Assign | Cancel | AssignBatch


class Accept(Message, frozen=True, kw_only=True, tag="task.accept"):
    task_id: Id
    token: Id
    instance_id: Id


class RejectCode(StrEnum):
    AT_CAPACITY = "at_capacity"
    UNKNOWN_SKILL = "unknown_skill"
    BAD_INPUT = "bad_input"
    DRAINING = "draining"
    DUPLICATE = "duplicate"


class Reject(Message, frozen=True, kw_only=True, tag="task.reject"):
    task_id: Id
    token: Id
    instance_id: Id
    code: RejectCode
    detail: str = ""


#: The answer to an `Assign` request.
AssignReply = Accept | Reject | ErrorReply


class AssignBatchReply(Message, frozen=True, kw_only=True, tag="task.assign_batch_reply"):
    """The answers to an `AssignBatch`, one per Assign, in the same order."""

    replies: tuple[Accept | Reject, ...]


AssignBatchAnswer = AssignBatchReply | ErrorReply


class FailureKind(StrEnum):
    """Why an attempt ended without a result."""

    ERROR = "error"  # the skill raised
    CANCELED = "canceled"  # a Cancel reached it
    HANDED_BACK = "handed_back"  # graceful shutdown; does not count as an attempt
    TIMEOUT = "timeout"  # the agent's own deadline check fired
    BAD_INPUT = "bad_input"  # the input did not decode as the skill's type
    # A loop's tool call needs a person's approval: `pending_call` names it; the
    # task waits in `input_required` (protocols/approval.py). Not an attempt.
    AWAITING_APPROVAL = "awaiting_approval"


class Result(Message, frozen=True, kw_only=True, tag="task.result"):
    """The successful end of one attempt; `Nats-Msg-Id` is `<task_id>:<token>`."""

    task_id: Id
    token: Id
    attempt: Count
    instance_id: Id
    agent: Id
    output: msgspec.Raw
    duration_ms: float = 0.0
    usage: Usage = Usage()
    # The output is in BLOBS (then `output` is null).
    output_ref: PayloadRef | None = None


class Failure(Message, frozen=True, kw_only=True, tag="task.failure"):
    """The unsuccessful end of one attempt. Never a traceback: type and message only."""

    task_id: Id
    token: Id
    attempt: Count
    instance_id: Id
    agent: Id
    kind: FailureKind = FailureKind.ERROR
    error_type: Label
    detail: str = ""
    retryable: bool = True
    duration_ms: float = 0.0
    usage: Usage = Usage()
    # kind `awaiting_approval`: the tool call the loop waits on.
    pending_call: PendingToolCall | None = None


#: One attempt's end.
AttemptOutcome = Result | Failure


class OutcomeBatch(Message, frozen=True, kw_only=True, tag="task.outcome_batch"):
    """Several outcomes of one instance in one RESULTS message (docs/architecture.md, "Hot path").

    An instance's outbox sends one when more than one outcome is ready at
    once; each is handled exactly as if it had come alone (fenced by its
    token). `Nats-Msg-Id` is `batch:<first task_id>:<first token>:<count>`.
    """

    outcomes: tuple[Result | Failure, ...]


#: What arrives on `result.<type>.<inst>` (through the RESULTS stream).
ResultsMessage = Result | Failure | OutcomeBatch


class Progress(Message, frozen=True, kw_only=True, tag="task.progress"):
    task_id: str
    token: str
    seq: int
    fraction: float | None = None
    note: str = ""
    # The attempt that reported it (1, 2, ...); 0 from an agent older than the field.
    attempt: int = 0


class OutputChunk(Message, frozen=True, kw_only=True, tag="task.output"):
    """Partial output of a running attempt, for watchers (batched, not per token)."""

    task_id: str
    token: str
    seq: int
    text: str
    final: bool = False
    # The attempt that produced it: a reassigned task's stream goes on with the
    # next attempt's output, and this tells where it starts.
    attempt: int = 0


#: What arrives on `out.<type>.<inst>.<task>`.
TaskOutput = Progress | OutputChunk
