"""Typed LLM errors: every provider's failures become one of these.

The router decides what to do from `kind` alone (see `FALLBACK_KINDS`), so a
new provider only has to classify its errors, never to know the rules.
"""

from enum import StrEnum

from natsfleet.protocols import NatsFleetError


class ErrorKind(StrEnum):
    RATE_LIMIT = "rate_limit"
    OVERLOADED = "overloaded"
    SERVER = "server"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    # The provider's own spend limit or credit balance (402, insufficient_quota).
    QUOTA = "quota"
    CONTEXT_LENGTH = "context_length"
    AUTH = "auth"
    BAD_REQUEST = "bad_request"
    BUDGET = "budget"
    STREAM_INTERRUPTED = "stream_interrupted"
    UNAVAILABLE = "unavailable"
    # A fleet-wide rate limit had no slot within the call's time (agents/llm/ratelimit.py).
    THROTTLED = "throttled"


#: Kinds that move the call to the next deployment in the chain.
FALLBACK_KINDS = frozenset(
    {
        ErrorKind.RATE_LIMIT,
        ErrorKind.OVERLOADED,
        ErrorKind.SERVER,
        ErrorKind.TIMEOUT,
        ErrorKind.CONNECTION,
        ErrorKind.QUOTA,
    }
)

#: Kinds that put a deployment on cooldown at once, not after repeated failures.
IMMEDIATE_COOLDOWN_KINDS = frozenset({ErrorKind.QUOTA, ErrorKind.AUTH})


class LLMError(NatsFleetError):
    """A failed LLM call, classified. `retryable` is for the task as a whole."""

    kind: ErrorKind = ErrorKind.SERVER

    def __init__(
        self,
        detail: str,
        *,
        kind: ErrorKind | None = None,
        retryable: bool | None = None,
        deployment: str = "",
        status_code: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        if kind is not None:
            self.kind = kind
        self.detail = detail
        self.deployment = deployment
        self.status_code = status_code
        self.retry_after_s = retry_after_s
        self.retryable = self.kind in FALLBACK_KINDS if retryable is None else retryable
        where = f" [{deployment}]" if deployment else ""
        super().__init__(f"{self.kind.value}{where}: {detail}")


class RateLimited(LLMError):
    kind = ErrorKind.RATE_LIMIT


class Overloaded(LLMError):
    kind = ErrorKind.OVERLOADED


class ProviderServerError(LLMError):
    kind = ErrorKind.SERVER


class LLMTimeout(LLMError):
    kind = ErrorKind.TIMEOUT


class ConnectionFailed(LLMError):
    kind = ErrorKind.CONNECTION


class QuotaExceeded(LLMError):
    kind = ErrorKind.QUOTA


class ContextLengthExceeded(LLMError):
    kind = ErrorKind.CONTEXT_LENGTH


class AuthFailed(LLMError):
    kind = ErrorKind.AUTH


class BadRequest(LLMError):
    kind = ErrorKind.BAD_REQUEST


_BY_KIND: dict[ErrorKind, type[LLMError]] = {
    cls.kind: cls
    for cls in (
        RateLimited,
        Overloaded,
        ProviderServerError,
        LLMTimeout,
        ConnectionFailed,
        QuotaExceeded,
        ContextLengthExceeded,
        AuthFailed,
        BadRequest,
    )
}


def make_error(
    kind: ErrorKind,
    detail: str,
    *,
    deployment: str = "",
    status_code: int | None = None,
    retry_after_s: float | None = None,
) -> LLMError:
    """The typed error for `kind` (used by the providers' classifiers)."""
    cls = _BY_KIND.get(kind, LLMError)
    return cls(
        detail,
        kind=kind,
        deployment=deployment,
        status_code=status_code,
        retry_after_s=retry_after_s,
    )


class BudgetExceeded(LLMError):
    """A task's or workflow's budget would be, or was, exceeded. Never retryable."""

    kind = ErrorKind.BUDGET

    def __init__(
        self, *, scope: str, spent_usd: float, limit_usd: float, estimate_usd: float = 0.0
    ) -> None:
        self.scope = scope
        self.spent_usd = spent_usd
        self.limit_usd = limit_usd
        self.estimate_usd = estimate_usd
        if estimate_usd:
            detail = (
                f"{scope} budget ${limit_usd:.6f}: spent ${spent_usd:.6f}, "
                f"next call estimated at ${estimate_usd:.6f}"
            )
        else:
            detail = f"{scope} budget ${limit_usd:.6f} exceeded: spent ${spent_usd:.6f}"
        super().__init__(detail, retryable=False)


class StreamInterrupted(LLMError):
    """A stream failed after its first chunk was delivered, so it could not fall back.

    `partial_text` is what the caller already received; `cause` is the
    normalised provider error.
    """

    kind = ErrorKind.STREAM_INTERRUPTED

    def __init__(self, cause: LLMError, *, partial_text: str) -> None:
        self.cause = cause
        self.partial_text = partial_text
        super().__init__(
            f"after {len(partial_text)} chars: {cause}",
            retryable=cause.retryable,
            deployment=cause.deployment,
            status_code=cause.status_code,
        )


class NoDeploymentAvailable(LLMError):
    """Every deployment in the chain failed or was cooling down; `errors` says why."""

    kind = ErrorKind.UNAVAILABLE

    def __init__(self, errors: tuple[LLMError, ...], *, detail: str = "") -> None:
        self.errors = errors
        reasons = "; ".join(str(e) for e in errors) or detail or "no deployment configured"
        super().__init__(reasons, retryable=True)
