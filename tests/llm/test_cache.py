"""The response cache over a real JetStream KV bucket, in-process and across processes."""

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest

from natsfleet.agents.llm import (
    LLMRequest,
    StreamInterrupted,
    TextDelta,
    cache_key,
    open_kv_cache,
    user,
)
from natsfleet.agents.llm.cache import wants_cache
from natsfleet.agents.llm.config import CacheConfig
from natsfleet.protocols import Bucket, Subjects


def m(name: str, provider: str = "openai", **extra: Any) -> dict[str, Any]:
    return {"name": name, "provider": provider, "model": name, "tier": "small", **extra}


PRICED = {"input_usd_per_mtok": 3.0, "output_usd_per_mtok": 15.0}


@pytest.fixture
async def kv_cache(nats_server: Any, prefix: str) -> AsyncIterator[Any]:
    nc = await nats.connect(nats_server.url)
    try:
        yield await open_kv_cache(nc.jetstream(), Subjects(prefix).bucket(Bucket.CACHE), ttl_s=60)
    finally:
        await nc.close()


def test_key_is_canonical_and_hex() -> None:
    a = user("hello", system="s")
    assert cache_key(a, "tier:small") == cache_key(user("hello", system="s"), "tier:small")
    assert cache_key(a, "tier:small") != cache_key(a, "tier:large")
    assert cache_key(a, "tier:small") != cache_key(user("hello!", system="s"), "tier:small")
    # Policy fields are not content.
    forced = LLMRequest(messages=a.messages, system="s", cache=True)
    assert cache_key(forced, "tier:small") == cache_key(a, "tier:small")
    key = cache_key(a, "tier:small")
    assert len(key) == 64 and all(c in "0123456789abcdef" for c in key)


def test_sampled_requests_bypass_unless_asked() -> None:
    cfg = CacheConfig()
    assert wants_cache(user("x"), cfg)
    assert wants_cache(user("x", temperature=0.0), cfg)
    assert not wants_cache(user("x", temperature=0.7), cfg)
    hot = user("x", temperature=0.7)
    assert wants_cache(LLMRequest(messages=hot.messages, temperature=0.7, cache=True), cfg)
    assert wants_cache(hot, CacheConfig(sampled=True))
    assert not wants_cache(user("x"), CacheConfig(enabled=False))


async def test_hit_costs_nothing_and_is_marked(make_router: Any, wire: Any, kv_cache: Any) -> None:
    router = make_router([m("a", **PRICED)], cache=kv_cache)
    llm = router.bind(task_id="t1")
    first = await llm.complete(user("What is NATS?"))
    second = await llm.complete(user("What is NATS?"))
    assert not first.cached and first.cost_usd > 0
    assert second.cached and second.cost_usd == 0.0 and second.text == first.text
    assert second.deployment == "a"
    assert wire.count("a") == 1
    assert llm.usage.calls == 2
    assert llm.usage.cost_usd == pytest.approx(first.cost_usd)
    assert [c.cached for c in llm.ledger.calls] == [False, True]


async def test_temperature_bypasses_the_cache(make_router: Any, wire: Any, kv_cache: Any) -> None:
    router = make_router([m("a")], cache=kv_cache)
    for _ in range(2):
        assert not (await router.complete(user("poem", temperature=0.9))).cached
    assert wire.count("a") == 2
    forced = LLMRequest(messages=user("poem").messages, temperature=0.9, cache=True)
    await router.complete(forced)
    assert (await router.complete(forced)).cached
    assert wire.count("a") == 3


async def test_only_complete_streams_are_stored(make_router: Any, wire: Any, kv_cache: Any) -> None:
    router = make_router([m("a", "anthropic")], cache=kv_cache)
    wire.script("a", wire.midstream(chunks=2))
    with pytest.raises(StreamInterrupted):
        _ = [e async for e in router.stream(user("story"))]
    events = [e async for e in router.stream(user("story"))]
    assert wire.count("a") == 2  # the broken stream was not cached
    hit = await router.complete(user("story"))
    assert hit.cached and hit.text == "".join(e.text for e in events if isinstance(e, TextDelta))
    streamed_hit = [e async for e in router.stream(user("story"))]
    assert [type(e).__name__ for e in streamed_hit] == ["TextDelta", "Done"]
    assert wire.count("a") == 2


async def test_cache_hit_across_two_agent_processes(
    nats_server: Any, prefix: str, wire: Any
) -> None:
    bucket = Subjects(prefix).bucket(Bucket.CACHE)
    script = Path(__file__).with_name("cache_agent.py")

    async def agent() -> dict[str, Any]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(script),
            nats_server.url,
            wire.url,
            bucket,
            "Summarise the fleet design.",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        return dict(json.loads(out.decode().strip().splitlines()[-1]))

    first = await agent()
    second = await agent()
    assert not first["cached"] and first["cost_usd"] > 0
    assert second["cached"] and second["cost_usd"] == 0.0
    assert second["text"] == first["text"]
    assert wire.count("m") == 1


async def test_an_agent_started_before_the_bucket_caches_once_it_exists(
    nats_server: Any, prefix: str, make_config: Any, wire: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CACHE bucket is made by the supervisor; an agent that opened its LLM
    first must not run without the cache for its whole life."""
    from natsfleet.agents.llm_binding import LLMBinding
    from natsfleet.bus import Bus, BusConfig

    monkeypatch.setenv("T_KEY", "k")
    async with Bus(BusConfig(url=nats_server.url, prefix=prefix)) as bus:
        binding = LLMBinding(make_config([m("a", **PRICED)]), cache_retry_s=0.0)
        await binding.open(bus)  # no bucket yet
        assert binding.router is not None
        llm = binding.router.bind(task_id="t1")
        assert not (await llm.complete(user("before"))).cached
        assert not (await llm.complete(user("before"))).cached  # nothing to cache into
        await bus.provision()  # the supervisor starts and makes the bucket
        first = await llm.complete(user("after"))
        second = await llm.complete(user("after"))
        assert not first.cached and second.cached
        assert wire.count("a") == 3
        await binding.aclose()


async def test_a_missing_bucket_is_looked_up_again_with_a_backoff(
    nats_server: Any, prefix: str
) -> None:
    from natsfleet.agents.llm.cache import KVCacheStore, LazyCacheStore
    from natsfleet.bus import Bus, BusConfig

    lookups: list[float] = []
    now = [0.0]
    async with Bus(BusConfig(url=nats_server.url, prefix=prefix)) as bus:

        async def lookup() -> KVCacheStore:
            lookups.append(now[0])
            return KVCacheStore(await bus.kv(Bucket.CACHE))

        lazy = LazyCacheStore(lookup, retry_initial_s=1.0, retry_max_s=4.0, clock=lambda: now[0])
        for t in (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 7.0, 9.0, 10.0, 11.0, 30.0):
            now[0] = t
            if t == 10.0:
                await bus.provision()  # the bucket appears
            await lazy.put("k", b"v")
        # 1 s, then 2, then 4 (the cap) between lookups; none once found.
        assert lookups == [0.0, 1.0, 3.0, 7.0, 11.0]
        assert await lazy.get("k") == b"v"
