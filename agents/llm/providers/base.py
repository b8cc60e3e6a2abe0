"""The provider interface and what every provider shares: classification and assembly."""

import email.utils
import time
from collections.abc import AsyncGenerator, Mapping
from typing import Protocol

import msgspec

from natsfleet.agents.llm.config import ModelConfig
from natsfleet.agents.llm.errors import ErrorKind
from natsfleet.agents.llm.types import (
    Done,
    FinishReason,
    LLMRequest,
    LLMResponse,
    StreamEvent,
    TextDelta,
    TokenUsage,
    ToolCall,
    ToolCallDelta,
)


class Provider(Protocol):
    """One API endpoint. Raises only `LLMError`s; never retries (the router does).

    `stream` yields text/tool-call/usage deltas and ends with `Done`.
    """

    name: str
    offline: bool

    async def complete(
        self, request: LLMRequest, model: ModelConfig, *, timeout_s: float
    ) -> LLMResponse: ...

    def stream(
        self, request: LLMRequest, model: ModelConfig, *, timeout_s: float
    ) -> AsyncGenerator[StreamEvent, None]: ...

    async def aclose(self) -> None: ...


_CONTEXT_MARKERS = (
    "context_length_exceeded",
    "prompt is too long",
    "maximum context length",
    "context window",
    "too many tokens",
)
_TYPE_KINDS = {
    "rate_limit_error": ErrorKind.RATE_LIMIT,
    "rate_limit_exceeded": ErrorKind.RATE_LIMIT,
    "overloaded_error": ErrorKind.OVERLOADED,
    "api_error": ErrorKind.SERVER,
    "server_error": ErrorKind.SERVER,
    "timeout_error": ErrorKind.TIMEOUT,
    "authentication_error": ErrorKind.AUTH,
    "permission_error": ErrorKind.AUTH,
    "invalid_api_key": ErrorKind.AUTH,
    "billing_error": ErrorKind.QUOTA,
    "insufficient_quota": ErrorKind.QUOTA,
    "invalid_request_error": ErrorKind.BAD_REQUEST,
    "not_found_error": ErrorKind.BAD_REQUEST,
    "request_too_large": ErrorKind.BAD_REQUEST,
}
_STATUS_KINDS = {
    401: ErrorKind.AUTH,
    402: ErrorKind.QUOTA,
    403: ErrorKind.AUTH,
    408: ErrorKind.TIMEOUT,
    429: ErrorKind.RATE_LIMIT,
    504: ErrorKind.TIMEOUT,
    529: ErrorKind.OVERLOADED,
}


def classify(status: int | None, error_type: str, code: str, message: str) -> ErrorKind:
    """One rule set for every provider: body markers first, then the type, then the status.

    The body wins because errors inside a 200 stream carry only a body.
    """
    lowered = f"{code} {message}".lower()
    if any(marker in lowered for marker in _CONTEXT_MARKERS):
        return ErrorKind.CONTEXT_LENGTH
    for token in (code, error_type):
        if token in _TYPE_KINDS:
            return _TYPE_KINDS[token]
    if status is not None:
        if status in _STATUS_KINDS:
            return _STATUS_KINDS[status]
        if status >= 500:
            return ErrorKind.SERVER
        if 400 <= status < 500:
            return ErrorKind.BAD_REQUEST
    return ErrorKind.SERVER


def retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (delta-seconds or an HTTP date)."""
    if not headers:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def body_error_fields(body: object) -> tuple[str, str, str]:
    """(type, code, message) from either provider's error body shape."""
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return (
                str(inner.get("type") or ""),
                str(inner.get("code") or ""),
                str(inner.get("message") or ""),
            )
    return "", "", "" if body is None else str(body)[:500]


def parse_arguments(text: str) -> dict[str, object]:
    """Tool-call arguments as a dict; unparseable JSON is kept under `_raw`."""
    if not text.strip():
        return {}
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return {"_raw": text}
    return value if isinstance(value, dict) else {"_value": value}


class StreamAssembler:
    """Builds the final response from the deltas a provider stream yields."""

    def __init__(self, *, provider: str, model: str) -> None:
        self.provider = provider
        self.model = model
        self._text: list[str] = []
        self._calls: dict[int, list[str]] = {}
        self._ids: dict[int, str] = {}
        self._names: dict[int, str] = {}
        self.usage = TokenUsage()
        self.finish_reason: FinishReason = "stop"

    def add(self, event: StreamEvent) -> None:
        match event:
            case TextDelta(text=text):
                self._text.append(text)
            case ToolCallDelta(index=index, id=id_, name=name, arguments_json=args):
                self._calls.setdefault(index, []).append(args)
                if id_:
                    self._ids[index] = id_
                if name:
                    self._names[index] = name
            case _:
                pass

    @property
    def text(self) -> str:
        return "".join(self._text)

    def done(self) -> Done:
        calls = tuple(
            ToolCall(
                id=self._ids.get(i, f"call_{i}"),
                name=self._names.get(i, ""),
                arguments=parse_arguments("".join(self._calls[i])),
            )
            for i in sorted(self._calls)
        )
        finish = self.finish_reason
        if calls and finish == "stop":
            finish = "tool_calls"
        return Done(
            response=LLMResponse(
                text=self.text,
                tool_calls=calls,
                finish_reason=finish,
                usage=self.usage,
                provider=self.provider,
                model=self.model,
            )
        )
