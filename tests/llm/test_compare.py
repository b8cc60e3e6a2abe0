"""`compare`: parallel streams with per-model latency, tokens and cost."""

from typing import Any

from natsfleet.agents.llm import StreamEvent, StreamFailed, TextDelta, compare, user


def m(name: str, provider: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "provider": provider, "model": name, "tier": "small", **extra}


async def test_compare_streams_every_model_in_parallel(make_router: Any, wire: Any) -> None:
    router = make_router(
        [
            m("claude", "anthropic", input_usd_per_mtok=3, output_usd_per_mtok=15),
            m("gpt", "openai", input_usd_per_mtok=1, output_usd_per_mtok=4),
            m("broken", "openai"),
        ]
    )
    wire.script("claude", wire.slow(0.05, "slow but sure"))
    wire.script("broken", wire.fail(500), wire.fail(500))  # the router retries once
    seen: list[tuple[str, str]] = []

    async def sink(model: str, event: StreamEvent) -> None:
        seen.append((model, type(event).__name__))

    results = await compare(router, user("Say hi"), ["claude", "gpt", "broken"], sink=sink)
    claude, gpt, broken = results
    assert (claude.model, claude.text, claude.ok) == ("claude", "slow but sure", True)
    assert gpt.text == "reply from gpt" and gpt.response is not None
    assert gpt.response.usage.output_tokens == 7
    assert gpt.response.cost_usd == (12 * 1 + 7 * 4) / 1e6
    assert claude.latency_ms >= 50 > gpt.latency_ms
    assert claude.first_chunk_ms is not None and gpt.first_chunk_ms is not None
    assert not broken.ok and isinstance(broken.error, StreamFailed)
    assert wire.count("broken") == 2  # retried once, never sent to another lane's model
    # gpt finished while claude was still waiting: the lanes really ran at once.
    order = [name for name, kind in seen if kind == "Done"]
    assert order == ["gpt", "claude"]
    assert ("broken", "StreamFailed") in seen
    assert all(r.model for r in results)
    assert any(kind == TextDelta.__name__ for _, kind in seen)
