"""Messages between agent instances and the supervisor (DESIGN.md sections 4 and 7)."""

from enum import StrEnum
from typing import Any

import msgspec

from natsfleet.protocols.base import ErrorReply, Message, PayloadRef, Usage


class SkillSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One skill an agent offers, with the JSON Schemas of its input and output."""

    name: str
    version: str = "1"
    description: str = ""
    input_schema: dict[str, Any] = msgspec.field(default_factory=dict)
    output_schema: dict[str, Any] = msgspec.field(default_factory=dict)


class Hello(Message, frozen=True, kw_only=True, tag="agent.hello"):
    """An instance comes up (and repeats it when the supervisor asks)."""

    instance_id: str
    agent: str
    agent_version: str = "0"
    incarnation: str
    skills: tuple[SkillSpec, ...]
    capacity: int
    host: str = ""
    pid: int = 0
    heartbeat_interval_s: float
    started_ms: int = 0
    # Takes `AssignBatch` on its assign inbox (older instances get one Assign
    # per request).
    assign_batch: bool = False


class InFlight(msgspec.Struct, frozen=True, kw_only=True):
    """A task an instance is running, as its heartbeat reports it."""

    task_id: str
    token: str
    progress: float | None = None
    note: str = ""


class Heartbeat(Message, frozen=True, kw_only=True, tag="agent.hb"):
    """Periodic liveness with current load; `in_flight` lists every held attempt."""

    instance_id: str
    agent: str
    incarnation: str
    seq: int
    load: int
    capacity: int
    in_flight: tuple[InFlight, ...] = ()
    # Tokens whose outcome was published (and acked by the stream) recently:
    # a token in neither list has been lost by this instance.
    recent: tuple[str, ...] = ()
    draining: bool = False


class Bye(Message, frozen=True, kw_only=True, tag="agent.bye"):
    """An instance leaves on purpose (drained)."""

    instance_id: str
    agent: str
    incarnation: str
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

    task_id: str
    token: str
    attempt: int
    skill: str
    input: msgspec.Raw
    remaining_ms: int | None = None
    start_to_close_ms: int | None = None
    parent_id: str | None = None
    workflow_id: str | None = None
    budget_usd: float | None = None
    # The input is in BLOBS (then `input` is null).
    input_ref: PayloadRef | None = None


class Cancel(Message, frozen=True, kw_only=True, tag="task.cancel"):
    """Stop the attempt holding `token` (a stale or unknown token is ignored)."""

    task_id: str
    token: str
    reason: str = ""


#: What arrives on `agent.<type>.<inst>.{assign,cancel}`.
class AssignBatch(Message, frozen=True, kw_only=True, tag="task.assign_batch"):
    """Several Assigns for one instance in one request (DESIGN.md section 8).

    Sent only to instances whose Hello says `assign_batch`, when more than one
    Assign for them is ready in the same event-loop turn. Each Assign is
    handled as if it came alone; the `AssignBatchReply` answers them in order.
    """

    assigns: tuple[Assign, ...]


AgentInbox = Assign | Cancel | AssignBatch


class Accept(Message, frozen=True, kw_only=True, tag="task.accept"):
    task_id: str
    token: str
    instance_id: str


class RejectCode(StrEnum):
    AT_CAPACITY = "at_capacity"
    UNKNOWN_SKILL = "unknown_skill"
    BAD_INPUT = "bad_input"
    DRAINING = "draining"
    DUPLICATE = "duplicate"


class Reject(Message, frozen=True, kw_only=True, tag="task.reject"):
    task_id: str
    token: str
    instance_id: str
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


class Result(Message, frozen=True, kw_only=True, tag="task.result"):
    """The successful end of one attempt; `Nats-Msg-Id` is `<task_id>:<token>`."""

    task_id: str
    token: str
    attempt: int
    instance_id: str
    agent: str
    output: msgspec.Raw
    duration_ms: float = 0.0
    usage: Usage = Usage()
    # The output is in BLOBS (then `output` is null).
    output_ref: PayloadRef | None = None


class Failure(Message, frozen=True, kw_only=True, tag="task.failure"):
    """The unsuccessful end of one attempt. Never a traceback: type and message only."""

    task_id: str
    token: str
    attempt: int
    instance_id: str
    agent: str
    kind: FailureKind = FailureKind.ERROR
    error_type: str
    detail: str = ""
    retryable: bool = True
    duration_ms: float = 0.0
    usage: Usage = Usage()


#: One attempt's end.
AttemptOutcome = Result | Failure


class OutcomeBatch(Message, frozen=True, kw_only=True, tag="task.outcome_batch"):
    """Several outcomes of one instance in one RESULTS message (DESIGN.md section 8).

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


class OutputChunk(Message, frozen=True, kw_only=True, tag="task.output"):
    """Partial output of a running attempt, for watchers (batched, not per token)."""

    task_id: str
    token: str
    seq: int
    text: str
    final: bool = False


#: What arrives on `out.<type>.<inst>.<task>`.
TaskOutput = Progress | OutputChunk
