"""A run's durable state in KV WORKFLOWS (run id -> WorkflowRun), changed by CAS.

The definition is copied into the run when it starts, so a run finishes as it
began even if the workflow files change or a supervisor with other files
takes over. Step outputs are kept here too: the run does not depend on its
step tasks' records outliving their retention. `decode_run` also reads a run
the format-1 code wrote (its definition's steps without `kind`).
"""

import hashlib
from enum import StrEnum

import msgspec
from msgspec import structs

from natsfleet.protocols import (
    ID_MAX_CHARS,
    Codec,
    ErrorInfo,
    ProtocolError,
    RetryPolicy,
    TaskState,
    Timeouts,
    Usage,
    null_raw,
)
from natsfleet.supervisor.workflows.errors import WorkflowDefinitionError
from natsfleet.supervisor.workflows.format1 import WorkflowDefV1, upgrade
from natsfleet.supervisor.workflows.model import WorkflowDef


class StepPhase(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    INPUT_REQUIRED = "input_required"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"


#: Phases after which a step needs nothing more (in this round).
DONE_PHASES = frozenset({StepPhase.COMPLETED, StepPhase.SKIPPED})


class ItemRun(msgspec.Struct, frozen=True, kw_only=True):
    """One task of a step: `n` is the fan-out index, or the loop round, or 0."""

    n: int
    task_id: str
    key: str
    state: TaskState = TaskState.QUEUED
    attempts: int = 0
    cost_usd: float = 0.0
    # The ended task's whole usage (calls and tokens too); cost_usd stays for old runs.
    usage: Usage = Usage()
    output: msgspec.Raw = msgspec.field(default_factory=null_raw)
    error: ErrorInfo | None = None


class Approval(msgspec.Struct, frozen=True, kw_only=True):
    approved: bool
    input: msgspec.Raw = msgspec.field(default_factory=null_raw)
    note: str = ""
    at_ms: int = 0


class StepRun(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    phase: StepPhase = StepPhase.PENDING
    # The loop round the step is in (0 outside loops).
    round: int = 0
    items: tuple[ItemRun, ...] = ()
    # Fan-out: the list, fixed when the step starts (stable across restarts).
    elements: msgspec.Raw = msgspec.field(default_factory=null_raw)
    total: int = 1
    # The latest completed output (a list for a fan-out step).
    output: msgspec.Raw = msgspec.field(default_factory=null_raw)
    has_output: bool = False
    approval: Approval | None = None
    detail: str = ""


class LoopRun(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    round: int = 1
    done: bool = False


class WorkflowRun(msgspec.Struct, frozen=True, kw_only=True):
    run_id: str
    workflow: str
    definition: WorkflowDef
    input: msgspec.Raw
    state: TaskState = TaskState.WORKING
    steps: dict[str, StepRun]
    loops: dict[str, LoopRun] = msgspec.field(default_factory=dict)
    spent_usd: float = 0.0
    # Every ended step task's usage added up (its cost is `spent_usd`'s).
    usage: Usage = Usage()
    budget_usd: float | None = None
    deadline_ms: int | None = None
    # Per-task timeouts and retry policy the run's submitter asked for its steps.
    step_timeouts: Timeouts = Timeouts()
    retry: RetryPolicy | None = None
    priority: int = 0
    # The submitter's tenant, which every step task carries.
    tenant: str | None = None
    output: msgspec.Raw = msgspec.field(default_factory=null_raw)
    error: ErrorInfo | None = None
    created_ms: int = 0
    updated_ms: int = 0
    # Lease epoch of the supervisor that wrote this revision (fencing).
    epoch: int = 0


class _RunV1(WorkflowRun, frozen=True, kw_only=True):
    """A run as the format-1 code wrote it: only its definition's shape differs."""

    definition: WorkflowDefV1


_RUN = Codec[WorkflowRun](WorkflowRun)
_RUN_V1 = Codec[_RunV1](_RunV1)


def decode_run(data: bytes | bytearray | memoryview) -> WorkflowRun:
    """A run from KV WORKFLOWS, written by this code or by the format-1 code.

    ProtocolError (this format's reason) if it is neither.
    """
    try:
        return _RUN.decode(data)
    except ProtocolError as current:
        try:
            old = _RUN_V1.decode(data)
            definition = upgrade(old.definition)
        except (ProtocolError, WorkflowDefinitionError):
            raise current from None
    fields = structs.asdict(old)
    fields["definition"] = definition
    return WorkflowRun(**fields)


def new_run(
    *,
    run_id: str,
    definition: WorkflowDef,
    input: msgspec.Raw,
    budget_usd: float | None,
    deadline_ms: int | None,
    step_timeouts: Timeouts,
    retry: RetryPolicy | None,
    priority: int,
    now_ms: int,
    tenant: str | None = None,
) -> WorkflowRun:
    return WorkflowRun(
        run_id=run_id,
        workflow=definition.name,
        definition=definition,
        input=input,
        steps={s.name: StepRun(name=s.name) for s in definition.steps},
        loops={loop.name: LoopRun(name=loop.name) for loop in definition.loops},
        budget_usd=budget_usd,
        deadline_ms=deadline_ms,
        step_timeouts=step_timeouts,
        retry=retry,
        priority=priority,
        tenant=tenant,
        created_ms=now_ms,
        updated_ms=now_ms,
    )


def step_task_id(run_id: str, step: str, n: int) -> str:
    """Deterministic: a restarted supervisor re-plans the very same task.

    `<run>-<step>-<n>`, or, when that is longer than an id may be
    (protocols/limits.py), its first characters and a digest of the whole.
    """
    plain = f"{run_id}-{step}-{n}"
    if len(plain) <= ID_MAX_CHARS:
        return plain
    digest = hashlib.sha256(plain.encode()).hexdigest()[:32]
    return f"{plain[: ID_MAX_CHARS - len(digest) - 1]}-{digest}"


def step_key(run_id: str, step: str, n: int) -> str:
    """The step task's idempotency key, `<run id>/<step>/<index or round>`."""
    return f"{run_id}/{step}/{n}"
