"""OpenAI chat completions through `AsyncOpenAI`, against any compatible `base_url`.

Ollama, vLLM and llama.cpp's server speak this API, so one provider covers them.
"""

from collections.abc import AsyncGenerator
from typing import Any

import msgspec

from natsfleet.agents.llm.config import ModelConfig
from natsfleet.agents.llm.errors import ErrorKind, LLMError, make_error
from natsfleet.agents.llm.providers.base import (
    StreamAssembler,
    body_error_fields,
    classify,
    parse_arguments,
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
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def _message(msg: ChatMessage) -> dict[str, Any]:
    if msg.role == "tool":
        return {"role": "tool", "tool_call_id": msg.tool_call_id, "content": msg.content}
    if msg.role == "assistant" and msg.tool_calls:
        return {
            "role": "assistant",
            "content": msg.content or None,
            "tool_calls": [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {
                        "name": c.name,
                        "arguments": msgspec.json.encode(c.arguments).decode(),
                    },
                }
                for c in msg.tool_calls
            ],
        }
    return {"role": msg.role, "content": msg.content}


def request_params(request: LLMRequest, model: ModelConfig) -> dict[str, Any]:
    """The `chat.completions.create` keyword arguments for a neutral request."""
    messages = [{"role": "system", "content": request.system}] if request.system else []
    messages += [_message(m) for m in request.messages]
    # `max_tokens` rather than `max_completion_tokens`: every compatible server knows it.
    params: dict[str, Any] = {
        "model": model.model,
        "messages": messages,
        "max_tokens": min(request.max_tokens, model.max_output_tokens),
    }
    if request.temperature is not None:
        params["temperature"] = request.temperature
    if request.top_p is not None:
        params["top_p"] = request.top_p
    if request.stop:
        params["stop"] = list(request.stop)
    if request.tools:
        params["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                },
            }
            for t in request.tools
        ]
    return params


def _usage(raw: Any) -> TokenUsage:
    if raw is None:
        return TokenUsage()
    prompt = getattr(raw, "prompt_tokens", None) or 0
    cached = getattr(getattr(raw, "prompt_tokens_details", None), "cached_tokens", None) or 0
    reasoning = (
        getattr(getattr(raw, "completion_tokens_details", None), "reasoning_tokens", None) or 0
    )
    # OpenAI counts cached tokens inside prompt_tokens; ours keeps them apart.
    return TokenUsage(
        input_tokens=max(0, prompt - cached),
        output_tokens=getattr(raw, "completion_tokens", None) or 0,
        cache_read_tokens=cached,
        reasoning_tokens=reasoning,
    )


def normalise(exc: BaseException, deployment: str) -> LLMError:
    """Map an SDK exception to ours; a mid-stream error is a plain `APIError` with a body."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return make_error(ErrorKind.TIMEOUT, "request timed out", deployment=deployment)
    if isinstance(exc, openai.APIConnectionError):
        return make_error(ErrorKind.CONNECTION, "connection failed", deployment=deployment)
    if isinstance(exc, openai.APIStatusError):
        etype, code, message = body_error_fields(exc.body)
        return make_error(
            classify(exc.status_code, etype, code, message),
            message or f"HTTP {exc.status_code}",
            deployment=deployment,
            status_code=exc.status_code,
            retry_after_s=retry_after_s(exc.response.headers),
        )
    if isinstance(exc, openai.APIError):
        etype, code, message = body_error_fields(exc.body)
        kind = classify(None, etype, code, message or exc.message)
        return make_error(kind, message or exc.message, deployment=deployment)
    return make_error(ErrorKind.SERVER, f"{type(exc).__name__}: {exc}", deployment=deployment)


class OpenAIProvider:
    """Chat completions, non-streaming and SSE streaming, with tool calls. SDK retries off."""

    offline = False

    def __init__(
        self, name: str, *, api_key: str | None, base_url: str | None, timeout_s: float = 120.0
    ) -> None:
        import openai

        self.name = name
        # Local servers need no key, but the SDK insists on one.
        self._client: Any = openai.AsyncOpenAI(
            api_key=api_key or "unset", base_url=base_url, max_retries=0, timeout=timeout_s
        )

    async def complete(
        self, request: LLMRequest, model: ModelConfig, *, timeout_s: float
    ) -> LLMResponse:
        import openai

        try:
            resp = await self._client.chat.completions.create(
                **request_params(request, model), timeout=timeout_s
            )
        except openai.OpenAIError as exc:
            raise normalise(exc, model.name) from exc
        if not resp.choices:
            raise make_error(ErrorKind.SERVER, "response without choices", deployment=model.name)
        choice = resp.choices[0]
        calls = tuple(
            ToolCall(
                id=c.id,
                name=c.function.name,
                arguments=parse_arguments(c.function.arguments or ""),
            )
            for c in choice.message.tool_calls or ()
            if getattr(c, "function", None) is not None
        )
        return LLMResponse(
            text=choice.message.content or "",
            tool_calls=calls,
            finish_reason=_FINISH.get(choice.finish_reason or "", "other"),
            usage=_usage(resp.usage),
            provider=self.name,
            model=resp.model or model.model,
        )

    async def stream(
        self, request: LLMRequest, model: ModelConfig, *, timeout_s: float
    ) -> AsyncGenerator[StreamEvent, None]:
        import openai

        acc = StreamAssembler(provider=self.name, model=model.model)
        params = request_params(request, model)
        try:
            chunks = await self._client.chat.completions.create(
                **params, stream=True, stream_options={"include_usage": True}, timeout=timeout_s
            )
            async with chunks:
                async for chunk in chunks:
                    for out in _translate(chunk, acc):
                        acc.add(out)
                        yield out
        except openai.OpenAIError as exc:
            raise normalise(exc, model.name) from exc
        yield UsageDelta(usage=acc.usage)
        yield acc.done()

    async def aclose(self) -> None:
        await self._client.close()


def _translate(chunk: Any, acc: StreamAssembler) -> list[StreamEvent]:
    out: list[StreamEvent] = []
    if getattr(chunk, "usage", None) is not None:
        acc.usage = _usage(chunk.usage)
    if chunk.model:
        acc.model = chunk.model
    for choice in chunk.choices or ():
        delta = choice.delta
        if delta is not None and delta.content:
            out.append(TextDelta(text=delta.content))
        for call in (delta.tool_calls if delta is not None else None) or ():
            fn = call.function
            out.append(
                ToolCallDelta(
                    index=call.index,
                    id=call.id or "",
                    name=(fn.name if fn else None) or "",
                    arguments_json=(fn.arguments if fn else None) or "",
                )
            )
        if choice.finish_reason:
            acc.finish_reason = _FINISH.get(choice.finish_reason, "other")
    return out
