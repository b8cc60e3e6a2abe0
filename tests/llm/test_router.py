"""Routing, fallback rules, Retry-After, cooldown and stream fallback, through the real SDKs."""

import socket
import time
from typing import Any

import pytest

from natsfleet.agents.llm import (
    AuthFailed,
    BadRequest,
    ContextLengthExceeded,
    Done,
    LLMRequest,
    LLMTimeout,
    NoDeploymentAvailable,
    StreamInterrupted,
    TextDelta,
    Tier,
    ToolSpec,
    user,
)
from natsfleet.agents.llm.complexity import choose_tier, complexity
from natsfleet.agents.llm.config import RoutingConfig


def m(name: str, provider: str = "openai", tier: str = "small", **extra: Any) -> dict[str, Any]:
    return {"name": name, "provider": provider, "model": name, "tier": tier, **extra}


HARD = user(
    "Analyze the trade-offs and design a plan; explain why, step by step, and debug this:\n"
    "```python\ndef f(x):\n    return x;\n```\n" + "context " * 2000
)


def test_complexity_scores_and_tiers() -> None:
    easy = user("What is the capital of France?")
    routing = RoutingConfig()
    assert complexity(easy) < routing.medium_threshold
    assert complexity(HARD) >= routing.large_threshold
    assert choose_tier(easy, routing) is Tier.SMALL
    assert choose_tier(HARD, routing) is Tier.LARGE
    tools = tuple(ToolSpec(name=f"t{i}") for i in range(4))
    medium = LLMRequest(
        messages=HARD.messages[:0] + user("Compare and explain why.").messages, tools=tools
    )
    assert choose_tier(medium, routing) is Tier.MEDIUM
    assert choose_tier(user("hi", tier=Tier.LARGE), routing) is Tier.LARGE


async def test_routing_by_tier(make_router: Any, wire: Any) -> None:
    router = make_router(
        [m("cheap", tier="small"), m("mid", "anthropic", "medium"), m("strong", tier="large")]
    )
    assert (await router.complete(user("What is 2+2?"))).deployment == "cheap"
    assert (await router.complete(HARD)).deployment == "strong"
    pinned = await router.complete(user("hi", tier=Tier.MEDIUM))
    assert (pinned.deployment, pinned.provider) == ("mid", "anthropic")
    assert (await router.complete(user("hi", model="strong"))).deployment == "strong"


async def test_weighted_choice_within_a_tier(make_router: Any) -> None:
    models = [
        m("pricey", input_usd_per_mtok=10, output_usd_per_mtok=30, quality=0.9),
        m("thrifty", input_usd_per_mtok=0.2, output_usd_per_mtok=1, quality=0.6),
    ]
    assert make_router(models).plan(user("hi"))[1][0].name == "thrifty"
    quality_first = make_router(
        models, routing={"weights": {"cost": 0.1, "latency": 0, "quality": 5}}
    )
    assert quality_first.plan(user("hi"))[1][0].name == "pricey"


def refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


RETRYABLE = ["429", "500", "529", "503", "quota", "timeout", "early_error"]


def failing(case: str, wire: Any) -> Any:
    if case == "timeout":
        # Four times the deployment's timeout: generous on a loaded machine.
        return wire.slow(2.0)
    if case == "quota":
        return wire.fail(429, etype="insufficient_quota", code="insufficient_quota")
    if case == "early_error":
        return wire.early_error()
    return wire.fail(int(case))


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
@pytest.mark.parametrize("case", RETRYABLE)
async def test_fallback_on_each_retryable_error(
    case: str, provider: str, make_router: Any, wire: Any
) -> None:
    router = make_router(
        [m("a", provider, timeout_s=0.5), m("b", "openai")], routing={"fallbacks": {"a": ["b"]}}
    )
    wire.script("a", failing(case, wire))
    stream = case == "early_error"
    if stream:
        events = [e async for e in router.stream(user("hi"))]
        done = events[-1]
        assert isinstance(done, Done)
        response = done.response
    else:
        response = await router.complete(user("hi"))
    assert response.deployment == "b"
    assert response.text == "reply from b"
    assert (wire.count("a"), wire.count("b")) == (1, 1)


async def test_fallback_on_connection_error(make_router: Any, make_config: Any, wire: Any) -> None:
    from natsfleet.agents.llm import Router, config_from_mapping

    port = refused_port()
    data = {
        "providers": {
            "dead": {
                "kind": "openai",
                "base_url": f"http://127.0.0.1:{port}/v1",
                "api_key_env": "T",
            },
            "live": {"kind": "openai", "base_url": wire.url + "/v1", "api_key_env": "T"},
        },
        "models": [m("a", "dead"), m("b", "live", quality=0.1)],
    }
    async with Router.from_config(config_from_mapping(data), env={"T": "k"}) as router:
        response = await router.complete(user("hi"))
    assert response.deployment == "b"


@pytest.mark.parametrize(("status", "error"), [(401, AuthFailed), (400, BadRequest)])
async def test_no_fallback_on_auth_or_bad_request(
    status: int, error: type[Exception], make_router: Any, wire: Any
) -> None:
    router = make_router([m("a", "anthropic"), m("b")], routing={"fallbacks": {"a": ["b"]}})
    wire.script("a", wire.fail(status))
    with pytest.raises(error) as caught:
        await router.complete(user("hi"))
    assert not caught.value.retryable
    assert wire.count("b") == 0


async def test_context_length_moves_to_a_larger_window(make_router: Any, wire: Any) -> None:
    router = make_router(
        [
            m("small-ctx", "anthropic", context_window_tokens=8000),
            m("same-ctx", context_window_tokens=8000),
            m("big-ctx", context_window_tokens=200_000, tier="large"),
        ],
        routing={"fallbacks": {"small-ctx": ["same-ctx", "big-ctx"]}},
    )
    wire.script("small-ctx", wire.context_length())
    response = await router.complete(user("long document", model="small-ctx"))
    assert response.deployment == "big-ctx"
    assert wire.count("same-ctx") == 0
    # With nothing larger, the context error itself surfaces.
    wire.script("big-ctx", wire.context_length())
    with pytest.raises(ContextLengthExceeded):
        await router.complete(user("long document", model="big-ctx"))


async def test_retry_after_is_honoured(make_router: Any, wire: Any) -> None:
    solo = make_router([m("a")])
    wire.script("a", wire.fail(429, retry_after_ms=40))
    started = time.monotonic()
    response = await solo.complete(user("hi"))
    assert response.deployment == "a"
    assert time.monotonic() - started >= 0.04
    assert wire.count("a") == 2

    pair = make_router([m("p", "anthropic"), m("q")], routing={"fallbacks": {"p": ["q"]}})
    wire.script("p", wire.fail(429, retry_after="30"))
    assert (await pair.complete(user("hi"))).deployment == "q"
    assert 29 < pair.cooldowns.snapshot()["p"] <= 30
    assert (await pair.complete(user("again"))).deployment == "q"
    assert wire.count("p") == 1


async def test_cooldown_after_repeated_failures(make_router: Any, wire: Any) -> None:
    router = make_router([m("a"), m("b")], routing={"fallbacks": {"a": ["b"]}})
    wire.script("a", wire.fail(500), wire.fail(500))
    # Pinned to `a` so observed latency (b answers fast) does not reorder the chain.
    for _ in range(2):
        assert (await router.complete(user("hi", model="a"))).deployment == "b"
    assert "a" in router.cooldowns.snapshot()
    assert (await router.complete(user("hi", model="a"))).deployment == "b"
    assert wire.count("a") == 2  # the third call skipped the resting deployment


async def test_quota_errors_cool_down_at_once(make_router: Any, wire: Any) -> None:
    router = make_router([m("a", "anthropic"), m("b")], routing={"fallbacks": {"a": ["b"]}})
    wire.script("a", wire.fail(402))
    assert (await router.complete(user("hi", model="a"))).deployment == "b"
    assert router.cooldowns.snapshot()["a"] > 4
    await router.complete(user("hi", model="a"))
    assert wire.count("a") == 1


async def test_everything_cooling_is_typed(make_router: Any, wire: Any) -> None:
    router = make_router([m("a")], routing={"max_rounds": 1})
    wire.script("a", wire.fail(503), wire.fail(503))
    for _ in range(2):
        with pytest.raises(NoDeploymentAvailable):
            await router.complete(user("hi"))
    with pytest.raises(NoDeploymentAvailable) as caught:
        await router.complete(user("hi"))
    assert caught.value.retryable and "cooling" in str(caught.value)


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
async def test_stream_falls_back_before_the_first_chunk(
    provider: str, make_router: Any, wire: Any
) -> None:
    router = make_router(
        [m("a", provider), m("b", "anthropic")], routing={"fallbacks": {"a": ["b"]}}
    )
    wire.script("a", wire.early_error())
    events = [e async for e in router.stream(user("hi"))]
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == "reply from b"
    done = events[-1]
    assert isinstance(done, Done) and done.response.deployment == "b"
    assert done.response.first_chunk_ms is not None


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
async def test_stream_does_not_fall_back_after_the_first_chunk(
    provider: str, make_router: Any, wire: Any
) -> None:
    router = make_router([m("a", provider), m("b")], routing={"fallbacks": {"a": ["b"]}})
    wire.script("a", wire.midstream(chunks=2))
    received: list[str] = []
    with pytest.raises(StreamInterrupted) as caught:
        async for event in router.stream(user("hi")):
            if isinstance(event, TextDelta):
                received.append(event.text)
    assert received and caught.value.partial_text == "".join(received)
    assert caught.value.cause.kind.value in ("overloaded", "server")
    assert caught.value.retryable
    assert wire.count("b") == 0


async def test_task_deadline_bounds_each_call(make_router: Any, wire: Any) -> None:
    router = make_router([m("a"), m("b")], routing={"fallbacks": {"a": ["b"]}})
    wire.script("a", wire.slow(1.0))
    llm = router.bind(task_id="t1", remaining_s=0.05)
    started = time.monotonic()
    with pytest.raises(LLMTimeout):
        await llm.complete(user("hi"))
    assert time.monotonic() - started < 0.5
    assert wire.count("b") == 0  # no time left to fall back


async def test_deadline_mid_stream_is_a_typed_interruption(make_router: Any, wire: Any) -> None:
    router = make_router([m("a", "anthropic"), m("b")], routing={"fallbacks": {"a": ["b"]}})
    wire.script("a", wire.trickle(0.02, words=40))
    llm = router.bind(task_id="t1", remaining_s=0.15)
    received: list[str] = []
    with pytest.raises(StreamInterrupted) as caught:
        async for event in llm.stream(user("hi", model="a")):
            if isinstance(event, TextDelta):
                received.append(event.text)
    assert isinstance(caught.value.cause, LLMTimeout)
    assert received and caught.value.partial_text == "".join(received)
    assert wire.count("b") == 0
    assert router.cooldowns.snapshot() == {}  # the task's deadline is not the deployment's fault


async def test_mid_stream_failures_count_towards_cooldown(make_router: Any, wire: Any) -> None:
    router = make_router([m("a", "anthropic"), m("b")], routing={"fallbacks": {"a": ["b"]}})
    wire.script("a", wire.midstream(), wire.midstream())
    for _ in range(2):
        with pytest.raises(StreamInterrupted):
            _ = [e async for e in router.stream(user("hi", model="a"))]
    assert "a" in router.cooldowns.snapshot()
    events = [e async for e in router.stream(user("hi", model="a"))]
    done = events[-1]
    assert isinstance(done, Done) and done.response.deployment == "b"


async def test_offline_fallback_is_always_last(make_router: Any, wire: Any) -> None:
    router = make_router([m("a", tier="large")], routing={"offline_fallback": True})
    _, chain = router.plan(user("hi", tier=Tier.LARGE))
    assert [c.name for c in chain] == ["a", "offline-extractive"]
    wire.script("a", wire.fail(500), wire.fail(500))
    response = await router.complete(user("hi", tier=Tier.LARGE))
    assert response.offline and response.text.startswith("[offline]")
