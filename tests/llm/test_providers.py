"""Each provider through its real SDK against the local wire server."""

from typing import Any

import pytest

from natsfleet.agents.llm import (
    AnthropicProvider,
    ChatMessage,
    Done,
    ErrorKind,
    LLMError,
    LLMRequest,
    ModelConfig,
    OpenAIProvider,
    TextDelta,
    Tier,
    ToolCall,
    ToolSpec,
    user,
)

WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather for a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)


def provider(kind: str, wire: Any) -> Any:
    if kind == "anthropic":
        return AnthropicProvider("anthropic", api_key="k", base_url=wire.url)
    return OpenAIProvider("openai", api_key="k", base_url=wire.url + "/v1")


def model(name: str, kind: str) -> ModelConfig:
    return ModelConfig(name=name, provider=kind, model=name, tier=Tier.SMALL)


KINDS = ["anthropic", "openai"]


@pytest.mark.parametrize("kind", KINDS)
async def test_complete_and_stream_text(kind: str, wire: Any) -> None:
    p = provider(kind, wire)
    try:
        wire.script("m", wire.ok("hello there world"), wire.ok("hello there world"))
        response = await p.complete(user("hi", system="be brief"), model("m", kind), timeout_s=5)
        assert response.text == "hello there world"
        assert response.finish_reason == "stop"
        assert (response.usage.input_tokens, response.usage.output_tokens) == (12, 7)
        events = [e async for e in p.stream(user("hi"), model("m", kind), timeout_s=5)]
        assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "hello there world"
        done = events[-1]
        assert isinstance(done, Done) and done.response.text == "hello there world"
        assert done.response.usage.output_tokens == 7
        sent = wire.requests[0].body
        if kind == "anthropic":
            assert sent["system"] == "be brief" and sent["messages"][0]["role"] == "user"
        else:
            assert sent["messages"][0] == {"role": "system", "content": "be brief"}
        assert wire.requests[1].stream
    finally:
        await p.aclose()


async def test_tool_calls_parse_the_same_from_both_providers(wire: Any) -> None:
    request = LLMRequest(messages=(ChatMessage(role="user", content="weather?"),), tools=(WEATHER,))
    expected = {"city": "Oslo", "units": ["c", "f"]}
    seen: list[tuple[str, dict[str, Any], str]] = []
    for kind in KINDS:
        p = provider(kind, wire)
        try:
            wire.script(
                kind,
                wire.tool_call("get_weather", expected),
                wire.tool_call("get_weather", expected),
            )
            full = await p.complete(request, model(kind, kind), timeout_s=5)
            events = [e async for e in p.stream(request, model(kind, kind), timeout_s=5)]
        finally:
            await p.aclose()
        streamed = events[-1]
        assert isinstance(streamed, Done)
        for response in (full, streamed.response):
            assert response.finish_reason == "tool_calls"
            (call,) = response.tool_calls
            seen.append((call.name, call.arguments, response.finish_reason))
    assert all(s == ("get_weather", expected, "tool_calls") for s in seen)
    body = wire.requests[0].body
    assert body["tools"][0]["input_schema"] == WEATHER.parameters
    assert wire.requests[2].body["tools"][0]["function"]["parameters"] == WEATHER.parameters


@pytest.mark.parametrize("kind", KINDS)
async def test_tool_results_round_trip(kind: str, wire: Any) -> None:
    call = ToolCall(id="c1", name="get_weather", arguments={"city": "Oslo"})
    request = LLMRequest(
        messages=(
            ChatMessage(role="user", content="weather?"),
            ChatMessage(role="assistant", content="", tool_calls=(call,)),
            ChatMessage(role="tool", content="4 C", tool_call_id="c1"),
        ),
        tools=(WEATHER,),
    )
    p = provider(kind, wire)
    try:
        await p.complete(request, model("m", kind), timeout_s=5)
    finally:
        await p.aclose()
    msgs = wire.requests[0].body["messages"]
    if kind == "anthropic":
        assert msgs[1]["content"][0] == {
            "type": "tool_use",
            "id": "c1",
            "name": "get_weather",
            "input": {"city": "Oslo"},
        }
        assert msgs[2] == {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "4 C"}],
        }
    else:
        assert msgs[1]["tool_calls"][0]["function"] == {
            "name": "get_weather",
            "arguments": '{"city":"Oslo"}',
        }
        assert msgs[2] == {"role": "tool", "tool_call_id": "c1", "content": "4 C"}


CASES = [
    ("anthropic", "fail429", ErrorKind.RATE_LIMIT),
    ("anthropic", "fail500", ErrorKind.SERVER),
    ("anthropic", "fail529", ErrorKind.OVERLOADED),
    ("anthropic", "fail401", ErrorKind.AUTH),
    ("anthropic", "fail402", ErrorKind.QUOTA),
    ("anthropic", "context", ErrorKind.CONTEXT_LENGTH),
    ("openai", "fail429", ErrorKind.RATE_LIMIT),
    ("openai", "fail500", ErrorKind.SERVER),
    ("openai", "fail503", ErrorKind.SERVER),
    ("openai", "fail401", ErrorKind.AUTH),
    ("openai", "quota", ErrorKind.QUOTA),
    ("openai", "context", ErrorKind.CONTEXT_LENGTH),
]


def step_for(name: str, wire: Any) -> Any:
    if name == "context":
        return wire.context_length()
    if name == "quota":
        return wire.fail(429, etype="insufficient_quota", code="insufficient_quota")
    return wire.fail(int(name[4:]), retry_after_ms=250)


@pytest.mark.parametrize(("kind", "case", "expected"), CASES)
async def test_errors_are_normalised(kind: str, case: str, expected: ErrorKind, wire: Any) -> None:
    p = provider(kind, wire)
    try:
        wire.script("m", step_for(case, wire), step_for(case, wire))
        with pytest.raises(LLMError) as caught:
            await p.complete(user("hi"), model("m", kind), timeout_s=5)
        assert caught.value.kind is expected
        assert caught.value.deployment == "m"
        if case.startswith("fail"):
            assert caught.value.retry_after_s == pytest.approx(0.25)
        with pytest.raises(LLMError) as streamed:
            _ = [e async for e in p.stream(user("hi"), model("m", kind), timeout_s=5)]
        assert streamed.value.kind is expected
    finally:
        await p.aclose()


@pytest.mark.parametrize("kind", KINDS)
async def test_mid_stream_errors_are_normalised(kind: str, wire: Any) -> None:
    p = provider(kind, wire)
    texts: list[str] = []
    try:
        wire.script("m", wire.midstream(chunks=2), wire.early_error())
        with pytest.raises(LLMError) as caught:
            async for event in p.stream(user("hi"), model("m", kind), timeout_s=5):
                if isinstance(event, TextDelta):
                    texts.append(event.text)
        # Anthropic: overloaded_error inside a 200 stream; OpenAI: a plain APIError body.
        assert caught.value.kind is (
            ErrorKind.OVERLOADED if kind == "anthropic" else ErrorKind.SERVER
        )
        assert caught.value.retryable
        assert texts
        with pytest.raises(LLMError) as early:
            _ = [e async for e in p.stream(user("hi"), model("m", kind), timeout_s=5)]
        assert early.value.kind in (ErrorKind.OVERLOADED, ErrorKind.SERVER)
    finally:
        await p.aclose()


@pytest.mark.parametrize("kind", KINDS)
async def test_slow_response_times_out(kind: str, wire: Any) -> None:
    p = provider(kind, wire)
    try:
        wire.script("m", wire.slow(1.0))
        with pytest.raises(LLMError) as caught:
            await p.complete(user("hi"), model("m", kind), timeout_s=0.05)
        assert caught.value.kind is ErrorKind.TIMEOUT
    finally:
        await p.aclose()
