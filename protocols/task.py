"""Submission, the persisted task record and task events (docs/protocol.md, "Task states")."""

import msgspec

from natsfleet.protocols.approval import PendingToolCall, ToolApproval
from natsfleet.protocols.base import ErrorInfo, Message, PayloadRef, Usage, null_raw
from natsfleet.protocols.errors import DlqReason
from natsfleet.protocols.limits import EpochMs, Id, Key, Label, Name, Priority, Usd
from natsfleet.protocols.policy import RetryPolicy, Timeouts
from natsfleet.protocols.states import TaskState


class Submit(Message, frozen=True, kw_only=True, tag="task.submit"):
    """A new task (a skill) or workflow run; the client makes `task_id`."""

    task_id: Id
    skill: Name | None = None
    workflow: Id | None = None
    input: msgspec.Raw
    idempotency_key: Key | None = None
    priority: Priority = 0
    timeouts: Timeouts = Timeouts()
    retry: RetryPolicy | None = None
    # Wait for an agent offering the skill instead of rejecting at once.
    queue: bool = False
    parent_id: Id | None = None
    workflow_id: Id | None = None
    budget_usd: Usd | None = None
    submitted_ms: EpochMs = 0
    # The conversation this task continues (docs/tools.md, "Sessions").
    session_id: Id | None = None
    # Who the task is for: the LLM governor's per-tenant rate limits and daily
    # budgets apply to its model calls and those of its sub-tasks (docs/llm.md).
    tenant: Id | None = None
    client: Label = ""
    # The input is in BLOBS (then `input` is null).
    input_ref: PayloadRef | None = None


class AttemptRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One `Assign` that was accepted, and how it ended."""

    attempt: int
    token: str
    instance_id: str
    started_ms: int
    ended_ms: int | None = None
    outcome: str | None = None  # "completed", a FailureKind, "timeout", "lost", "stale"
    error: ErrorInfo | None = None


class TaskRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A task's durable state in KV STATE, changed only by compare-and-set.

    Absolute deadlines (epoch ms, the supervisor's clock) live here only.
    """

    task_id: str
    skill: str | None = None
    workflow: str | None = None
    state: TaskState
    input: msgspec.Raw
    priority: int = 0
    timeouts: Timeouts = Timeouts()
    retry: RetryPolicy = RetryPolicy()
    queue: bool = False
    idempotency_key: str | None = None
    parent_id: str | None = None
    workflow_id: str | None = None
    budget_usd: float | None = None
    # Attempts that count against `retry.maximum_attempts`.
    attempts: int = 0
    token: str | None = None
    instance_id: str | None = None
    agent: str | None = None
    history: tuple[AttemptRecord, ...] = ()
    created_ms: int = 0
    updated_ms: int = 0
    schedule_deadline_ms: int | None = None
    close_deadline_ms: int | None = None
    attempt_deadline_ms: int | None = None
    not_before_ms: int | None = None
    output: msgspec.Raw = msgspec.field(default_factory=null_raw)
    error: ErrorInfo | None = None
    usage: Usage = Usage()
    # W3C traceparent of the submit, so every attempt joins the task's trace.
    traceparent: str | None = None
    # Lease epoch of the supervisor that wrote this revision (fencing).
    epoch: int = 0
    # Why a failed task was dead-lettered (the DLQ subject's reason).
    dead_letter: DlqReason | None = None
    # Payloads kept in BLOBS (the field itself is then null).
    input_ref: PayloadRef | None = None
    output_ref: PayloadRef | None = None
    # `input_required`: the tool call the task's loop waits on (protocols/approval.py).
    pending_call: PendingToolCall | None = None
    # The latest decision on such a call; every later Assign carries it.
    approval: ToolApproval | None = None
    # The conversation this task continues (docs/tools.md, "Sessions").
    session_id: str | None = None
    # Who the task is for (`Submit.tenant`).
    tenant: str | None = None


class TaskEvent(Message, frozen=True, kw_only=True, tag="task.event"):
    """A state change of a task, on `events.<task>` (stream EVENTS)."""

    task_id: str
    state: TaskState
    at_ms: int
    attempt: int = 0
    instance_id: str | None = None
    token: str | None = None
    detail: str = ""
    error: ErrorInfo | None = None
    output: msgspec.Raw = msgspec.field(default_factory=null_raw)
    skill: str | None = None
    # sha256 (hex) of the task's idempotency key, None without one: a client
    # handed this task for a key checks it (protocols/idempotency.py).
    key_hash: str | None = None
    # The output is in BLOBS (then `output` is null; FleetClient.wait reads it).
    output_ref: PayloadRef | None = None
