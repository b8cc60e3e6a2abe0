"""LLM calls make one GenAI `chat <model>` span each, with no prompt text."""

from typing import Any

from natsfleet.agents.llm import user

PROMPT = "the secret plan is 42 parsnips"


def m(name: str, provider: str = "openai", tier: str = "small", **extra: Any) -> dict[str, Any]:
    return {"name": name, "provider": provider, "model": name, "tier": tier, **extra}


async def test_each_provider_call_is_one_genai_span(
    make_router: Any, wire: Any, spans: Any
) -> None:
    router = make_router(
        [m("claude-x", "anthropic"), m("gpt-y", "openai")],
        routing={"fallbacks": {"claude-x": ["gpt-y"]}},
    )
    wire.script("claude-x", wire.fail(529))
    response = await router.complete(user(PROMPT))
    assert response.deployment == "gpt-y"
    chats = [s for s in spans.get_finished_spans() if s.name.startswith("chat ")]
    assert [s.name for s in chats] == ["chat claude-x", "chat gpt-y"]
    failed, ok = (dict(s.attributes or {}) for s in chats)
    assert failed["gen_ai.provider.name"] == "anthropic"
    assert failed["error.type"] == "overloaded"
    assert ok["gen_ai.operation.name"] == "chat"
    assert ok["gen_ai.provider.name"] == "openai"
    assert ok["gen_ai.request.model"] == "gpt-y" and ok["gen_ai.response.model"]
    assert ok["gen_ai.usage.input_tokens"] > 0 and ok["gen_ai.usage.output_tokens"] > 0
    assert ok["gen_ai.response.finish_reasons"] == ("stop",)
    assert ok["natsfleet.llm.attempt"] == 2 and ok["natsfleet.llm.tier"] == "small"
    for span in spans.get_finished_spans():  # nothing the user wrote is recorded
        assert PROMPT not in repr(dict(span.attributes or {}))
        assert all(PROMPT not in repr(e.attributes) for e in span.events)


async def test_streams_and_cache_hits_have_spans(make_router: Any, wire: Any, spans: Any) -> None:
    from natsfleet.agents.llm import Done

    class Memory:
        def __init__(self) -> None:
            self.data: dict[str, bytes] = {}

        async def get(self, key: str) -> bytes | None:
            return self.data.get(key)

        async def put(self, key: str, value: bytes) -> None:
            self.data[key] = value

    router = make_router([m("gpt-y", "openai")], cache=Memory())
    events = [e async for e in router.stream(user("stream me"))]
    assert isinstance(events[-1], Done)
    await router.complete(user("stream me"))  # served from the cache
    chats = [s for s in spans.get_finished_spans() if s.name.startswith("chat ")]
    assert len(chats) == 2
    streamed, hit = (dict(s.attributes or {}) for s in chats)
    assert streamed["gen_ai.usage.output_tokens"] > 0 and not streamed["natsfleet.llm.cache_hit"]
    assert hit["natsfleet.llm.cache_hit"] is True and hit["natsfleet.llm.cost_usd"] == 0.0
