"""Neutral request, response and stream-event types shared by every provider.

Nothing here knows a provider's wire format: providers translate to and from
these Structs, so the router, cache, ledger and agents see one shape.
"""

from enum import StrEnum
from typing import Any, Literal

import msgspec

Role = Literal["user", "assistant", "tool"]


class Tier(StrEnum):
    """How strong a model a request needs; chosen by complexity or set explicitly."""

    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"

    @property
    def rank(self) -> int:
        return _TIER_RANK[self]


_TIER_RANK = {Tier.SMALL: 0, Tier.MEDIUM: 1, Tier.LARGE: 2}


class ToolSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A tool the model may call; `parameters` is a JSON Schema object."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = msgspec.field(default_factory=lambda: {"type": "object"})
    # The name of what it returns (a fleet skill's output type), when known:
    # the offline step-by-step policy chains tools by it (offline_plan.py).
    returns: str = ""


class ToolCall(msgspec.Struct, frozen=True, kw_only=True):
    """A tool call the model made, with its arguments already parsed from JSON."""

    id: str
    name: str
    arguments: dict[str, Any] = msgspec.field(default_factory=dict)


class ChatMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One turn. `tool` turns answer the call named by `tool_call_id`."""

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


class LLMRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What an agent asks for. `model` pins a configured model; else `tier`; else scored.

    `cache=None` applies the policy (use the cache only when sampling is
    deterministic, i.e. temperature unset or 0); True/False force it.
    """

    messages: tuple[ChatMessage, ...]
    system: str = ""
    tools: tuple[ToolSpec, ...] = ()
    max_tokens: int = 1024
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    tier: Tier | None = None
    model: str | None = None
    cache: bool | None = None
    # False: at most one tool call per answer (`ctx.loop(max_parallel_tools=1)`);
    # the offline provider then plans step by step (offline_plan.py).
    parallel_tool_calls: bool = True


def user(
    text: str,
    *,
    system: str = "",
    tier: Tier | None = None,
    model: str | None = None,
    max_tokens: int = 1024,
    temperature: float | None = None,
) -> LLMRequest:
    """Shorthand for a one-turn request: `user("Summarise ...", tier=Tier.SMALL)`."""
    return LLMRequest(
        messages=(ChatMessage(role="user", content=text),),
        system=system,
        tier=tier,
        model=model,
        max_tokens=max_tokens,
        temperature=temperature,
    )


class TokenUsage(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Tokens of one call. `input_tokens` excludes cache reads and writes (billed apart)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0


FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error", "other"]


class LLMResponse(msgspec.Struct, frozen=True, kw_only=True):
    """A complete answer, with where it came from, what it cost and how long it took."""

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: FinishReason = "stop"
    usage: TokenUsage = TokenUsage()
    provider: str = ""
    model: str = ""
    # The configured model name (the deployment), not the provider's model id.
    deployment: str = ""
    latency_ms: float = 0.0
    first_chunk_ms: float | None = None
    cost_usd: float = 0.0
    cached: bool = False
    offline: bool = False


class TextDelta(msgspec.Struct, frozen=True, kw_only=True, tag="text"):
    text: str


class ToolCallDelta(msgspec.Struct, frozen=True, kw_only=True, tag="tool_call"):
    """A fragment of a tool call's JSON arguments; `index` orders calls in the response."""

    index: int
    id: str = ""
    name: str = ""
    arguments_json: str = ""


class UsageDelta(msgspec.Struct, frozen=True, kw_only=True, tag="usage"):
    usage: TokenUsage


class Done(msgspec.Struct, frozen=True, kw_only=True, tag="done"):
    """The last event of a stream that completed; carries the assembled response."""

    response: LLMResponse


class StreamFailed(msgspec.Struct, frozen=True, kw_only=True, tag="error"):
    """The last event of a lane that failed (used by `compare`, which must not raise)."""

    error_type: str
    detail: str
    retryable: bool


StreamEvent = TextDelta | ToolCallDelta | UsageDelta | Done | StreamFailed
