"""Anthropic Messages API through `AsyncAnthropic` (imported lazily: it costs ~1 s)."""

from collections.abc import AsyncGenerator
from typing import Any

from natsfleet.agents.llm.config import ModelConfig
from natsfleet.agents.llm.errors import ErrorKind, LLMError, make_error
from natsfleet.agents.llm.providers.base import (
    StreamAssembler,
    body_error_fields,
    classify,
    retry_after_s,
)
from natsfleet.agents.llm.types import (
    ChatMessage,
    FinishReason,
    LLMRequest,
    LLMResponse,
    StreamEvent,
    TextDelta,
    TokenUsage,
    ToolCall,
    ToolCallDelta,
    UsageDelta,
)

_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def _messages(messages: tuple[ChatMessage, ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for msg in messages:
        if msg.role == "tool":
            block = {"type": "tool_result", "tool_use_id": msg.tool_call_id, "content": msg.content}
            # Consecutive tool results travel in one user turn, as the API requires.
            if out and out[-1]["role"] == "user" and isinstance(out[-1]["content"], list):
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
        elif msg.role == "assistant" and msg.tool_calls:
            blocks: list[dict[str, Any]] = []
            if msg.content:
                blocks.append({"type": "text", "text": msg.content})
            blocks += [
                {"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}
                for c in msg.tool_calls
            ]
            out.append({"role": "assistant", "content": blocks})
        else:
            out.append({"role": msg.role, "content": msg.content})
    return out


def request_params(request: LLMRequest, model: ModelConfig) -> dict[str, Any]:
    """The `messages.create` keyword arguments for a neutral request.

    The Messages API of this SDK generation takes no sampling parameters, so
    `temperature`/`top_p` only steer our cache policy here.
    """
    params: dict[str, Any] = {
        "model": model.model,
        "max_tokens": min(request.max_tokens, model.max_output_tokens),
        "messages": _messages(request.messages),
    }
    if request.system:
        params["system"] = request.system
    if request.tools:
        params["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in request.tools
        ]
    if request.stop:
        params["stop_sequences"] = list(request.stop)
    return params


def _usage(raw: Any) -> TokenUsage:
    if raw is None:
        return TokenUsage()
    details = getattr(raw, "output_tokens_details", None)
    return TokenUsage(
        input_tokens=getattr(raw, "input_tokens", None) or 0,
        output_tokens=getattr(raw, "output_tokens", None) or 0,
        cache_read_tokens=getattr(raw, "cache_read_input_tokens", None) or 0,
        cache_write_tokens=getattr(raw, "cache_creation_input_tokens", None) or 0,
        reasoning_tokens=getattr(details, "thinking_tokens", None) or 0,
    )


def normalise(exc: BaseException, deployment: str) -> LLMError:
    """Map an SDK exception (status errors, errors inside a 200 stream, transport) to ours."""
    import anthropic

    if isinstance(exc, anthropic.APITimeoutError):
        return make_error(ErrorKind.TIMEOUT, "request timed out", deployment=deployment)
    if isinstance(exc, anthropic.APIConnectionError):
        return make_error(ErrorKind.CONNECTION, "connection failed", deployment=deployment)
    if isinstance(exc, anthropic.APIStatusError):
        etype, code, message = body_error_fields(exc.body)
        # An `error` event inside a 200 stream arrives with status 200: only the body counts.
        status = exc.status_code if exc.status_code >= 400 else None
        kind = classify(status, etype, code, message)
        return make_error(
            kind,
            message or etype or f"HTTP {exc.status_code}",
            deployment=deployment,
            status_code=exc.status_code,
            retry_after_s=retry_after_s(exc.response.headers),
        )
    if isinstance(exc, anthropic.APIError):
        etype, code, message = body_error_fields(exc.body)
        kind = classify(None, etype, code, message or exc.message)
        return make_error(kind, message or exc.message, deployment=deployment)
    return make_error(ErrorKind.SERVER, f"{type(exc).__name__}: {exc}", deployment=deployment)


class AnthropicProvider:
    """Messages API, non-streaming and SSE streaming, with tool use. SDK retries off."""

    offline = False

    def __init__(
        self, name: str, *, api_key: str | None, base_url: str | None, timeout_s: float = 120.0
    ) -> None:
        import anthropic

        self.name = name
        # The router owns retries; the SDK's own would hide errors and eat the deadline.
        # The SDK's own call span is off: the router's `chat <model>` span is the
        # one span per call, the same for every provider.
        self._client: Any = anthropic.AsyncAnthropic(
            api_key=api_key or "unset",
            base_url=base_url,
            max_retries=0,
            timeout=timeout_s,
            open_telemetry=False,
        )

    async def complete(
        self, request: LLMRequest, model: ModelConfig, *, timeout_s: float
    ) -> LLMResponse:
        import anthropic

        try:
            msg = await self._client.messages.create(
                **request_params(request, model), timeout=timeout_s
            )
        except anthropic.AnthropicError as exc:
            raise normalise(exc, model.name) from exc
        text: list[str] = []
        calls: list[ToolCall] = []
        for block in msg.content:
            if block.type == "text":
                text.append(block.text)
            elif block.type == "tool_use":
                calls.append(ToolCall(id=block.id, name=block.name, arguments=dict(block.input)))
        return LLMResponse(
            text="".join(text),
            tool_calls=tuple(calls),
            finish_reason=_FINISH.get(msg.stop_reason or "", "other"),
            usage=_usage(msg.usage),
            provider=self.name,
            model=msg.model or model.model,
        )

    async def stream(
        self, request: LLMRequest, model: ModelConfig, *, timeout_s: float
    ) -> AsyncGenerator[StreamEvent, None]:
        import anthropic

        acc = StreamAssembler(provider=self.name, model=model.model)
        tool_index: dict[int, int] = {}
        try:
            events = await self._client.messages.create(
                **request_params(request, model), stream=True, timeout=timeout_s
            )
            async with events:
                async for event in events:
                    for out in _translate(event, acc, tool_index):
                        acc.add(out)
                        yield out
        except anthropic.AnthropicError as exc:
            raise normalise(exc, model.name) from exc
        yield UsageDelta(usage=acc.usage)
        yield acc.done()

    async def aclose(self) -> None:
        await self._client.close()


def _translate(
    event: Any, acc: StreamAssembler, tool_index: dict[int, int]
) -> tuple[StreamEvent, ...]:
    kind = event.type
    if kind == "message_start":
        acc.usage = _usage(event.message.usage)
        acc.model = event.message.model or acc.model
    elif kind == "content_block_start" and event.content_block.type == "tool_use":
        index = tool_index.setdefault(event.index, len(tool_index))
        block = event.content_block
        return (ToolCallDelta(index=index, id=block.id, name=block.name),)
    elif kind == "content_block_delta":
        delta = event.delta
        if delta.type == "text_delta":
            return (TextDelta(text=delta.text),)
        if delta.type == "input_json_delta" and event.index in tool_index:
            return (
                ToolCallDelta(index=tool_index[event.index], arguments_json=delta.partial_json),
            )
    elif kind == "message_delta":
        acc.finish_reason = _FINISH.get(event.delta.stop_reason or "", "other")
        usage = event.usage
        # message_delta usage is cumulative; input counts arrive in message_start.
        acc.usage = TokenUsage(
            input_tokens=getattr(usage, "input_tokens", None) or acc.usage.input_tokens,
            output_tokens=usage.output_tokens or acc.usage.output_tokens,
            cache_read_tokens=getattr(usage, "cache_read_input_tokens", None)
            or acc.usage.cache_read_tokens,
            cache_write_tokens=getattr(usage, "cache_creation_input_tokens", None)
            or acc.usage.cache_write_tokens,
            reasoning_tokens=acc.usage.reasoning_tokens,
        )
    return ()
