"""Errors a skill raises on purpose, errors of the runtime, and how any
exception becomes a wire `Failure` (type and message, never a traceback)."""

from natsfleet.protocols import NatsFleetError, PendingToolCall
from natsfleet.protocols.limits import LABEL_MAX_CHARS
from natsfleet.telemetry.redact import redact

# A Failure's detail travels in messages, logs and DLQ entries: keep it short.
MAX_DETAIL_CHARS = 2_000


class AgentError(NatsFleetError):
    """Root of the errors of `natsfleet.agents`."""


class SkillError(AgentError):
    """Raised by a skill to end its attempt with a typed, reported failure.

    Args:
        message: What went wrong, for people; it travels in `Failure.detail`.
        retryable: Whether another attempt could succeed (the default), or the
            task should fail now.
        error_type: The `Failure.error_type`; defaults to the class name, so
            subclasses name themselves (and `RetryPolicy.non_retryable_errors`
            can list them).
    """

    def __init__(self, message: str, *, retryable: bool = True, error_type: str | None = None):
        self.message = message
        self.retryable = retryable
        self.error_type = error_type or type(self).__name__
        super().__init__(message)


class SubtaskFailed(SkillError):
    """A sub-task started with `ctx.call` ended failed, canceled or rejected.

    Not retryable by default: a retried parent gets the same child (its key is
    `<parent id>/<call index>`), so it would fail the same way.
    """

    def __init__(self, task_id: str, skill: str, state: str, detail: str) -> None:
        self.task_id = task_id
        self.skill = skill
        self.state = state
        super().__init__(f"sub-task {task_id} ({skill}) {state}: {detail}", retryable=False)


class AwaitingApproval(AgentError):
    """A skill's loop reached a tool call that needs a person's approval.

    The attempt ends with a `Failure` of kind `awaiting_approval` carrying
    `pending_call`; the task waits in `input_required` (docs/tools.md,
    "Approval"). Not a failure of the task: the next attempt resumes it.
    """

    def __init__(self, pending_call: PendingToolCall) -> None:
        self.pending_call = pending_call
        super().__init__(f"tool {pending_call.tool} awaits approval ({pending_call.key})")


class AgentDefinitionError(AgentError):
    """An agent class or one of its skills is declared wrongly."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(detail)


class AgentNotFound(AgentError):
    """`natsfleet agent run SPEC` could not resolve SPEC to an agent class."""

    def __init__(self, spec: str, detail: str) -> None:
        self.spec = spec
        self.detail = detail
        super().__init__(f"agent {spec!r}: {detail}")


def describe_exception(exc: BaseException) -> tuple[str, str, bool]:
    """`(error_type, detail, retryable)` for a Failure.

    A `SkillError` says all three itself; any other natsfleet error keeps its
    own `retryable`; anything else is retryable (an unexpected crash may well
    be transient). Only the type and message leave the process, with
    secrets redacted.
    """
    if isinstance(exc, SkillError):
        error_type, retryable = exc.error_type, exc.retryable
        detail = exc.message
    else:
        error_type = type(exc).__name__
        retryable = exc.retryable if isinstance(exc, NatsFleetError) else True
        detail = str(exc)
    # The detail travels in Failures, task events, logs and DLQ entries.
    detail = redact(detail)
    if len(detail) > MAX_DETAIL_CHARS:
        detail = detail[:MAX_DETAIL_CHARS] + "..."
    # A label on the wire (protocols/limits.py): longer, the whole Failure
    # would be refused and the attempt's outcome lost.
    return error_type[:LABEL_MAX_CHARS], detail, retryable
