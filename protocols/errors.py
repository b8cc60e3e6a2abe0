"""Error codes, dead-letter reasons and the in-process error hierarchy.

Codes and reasons are closed lists: every `ErrorReply.code` and every DLQ
subject suffix is one of these values, so operators can alert on them.
"""

from enum import StrEnum


class ErrorCode(StrEnum):
    """`ErrorReply.code`: why a request was refused."""

    BAD_REQUEST = "bad_request"
    UNKNOWN_VERB = "unknown_verb"
    UNKNOWN_TASK = "unknown_task"
    UNKNOWN_SKILL = "unknown_skill"
    UNKNOWN_TYPE = "unknown_type"
    UNSUPPORTED_VERSION = "unsupported_version"
    TOO_LARGE = "too_large"
    NOT_LEADER = "not_leader"
    BACKPRESSURE = "backpressure"
    PERMISSION = "permission"
    CONFLICT = "conflict"
    TIMEOUT = "timeout"
    INTERNAL = "internal"


#: Codes a caller may retry as they are.
RETRYABLE_CODES = frozenset(
    {ErrorCode.NOT_LEADER, ErrorCode.BACKPRESSURE, ErrorCode.TIMEOUT, ErrorCode.INTERNAL}
)


class DlqReason(StrEnum):
    """Why a message or task was dead-lettered; the last token of `<prefix>.dlq.<reason>`."""

    DECODE_ERROR = "decode_error"
    UNKNOWN_TYPE = "unknown_type"
    UNSUPPORTED_VERSION = "unsupported_version"
    TOO_LARGE = "too_large"
    BLOB_MISSING = "blob_missing"
    BAD_INPUT = "bad_input"
    UNKNOWN_SKILL = "unknown_skill"
    MAX_ATTEMPTS = "max_attempts"
    NON_RETRYABLE = "non_retryable"
    UNSCHEDULABLE = "unschedulable"
    DEADLINE = "deadline"
    STALE = "stale"
    WRONG_INSTANCE = "wrong_instance"
    HANDLER_ERROR = "handler_error"


class NatsFleetError(Exception):
    """Root of every error natsfleet raises on purpose."""

    retryable: bool = False


class ProtocolError(NatsFleetError):
    """A message could not be decoded or is not one this process understands."""

    def __init__(self, reason: DlqReason, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.value}: {detail}")


class RemoteError(NatsFleetError):
    """A peer answered a request with an `ErrorReply`."""

    def __init__(self, code: ErrorCode, detail: str, retryable: bool) -> None:
        self.code = code
        self.detail = detail
        self.retryable = retryable
        super().__init__(f"{code.value}: {detail}")
