"""Router overhead per call against a direct SDK call, and cache-hit latency.

Everything talks to the local wire server from tests/llm/wire.py on 127.0.0.1
(no network). Run: `.venv/bin/python bench/llm_router.py [--calls N]`.

Three figures:
  1. direct SDK vs router, end to end, same server, interleaved (median per call);
  2. the router's own cost with an in-process provider that answers at once
     (routing, chain, cooldown, ledger, response bookkeeping: no I/O);
  3. a cache hit served from a JetStream KV bucket on a real nats-server.
"""

import argparse
import asyncio
import importlib.util
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncGenerator
from pathlib import Path

import nats

from natsfleet.agents.llm import (
    Done,
    LLMConfig,
    LLMRequest,
    LLMResponse,
    ModelConfig,
    Router,
    StreamEvent,
    Tier,
    TokenUsage,
    config_from_mapping,
    open_kv_cache,
    user,
)
from natsfleet.process.server import NatsServer

ROOT = Path(__file__).resolve().parent.parent


def load_wire() -> object:
    spec = importlib.util.spec_from_file_location("wire", ROOT / "tests" / "llm" / "wire.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class InstantProvider:
    """Answers at once: isolates the router's own work from any I/O."""

    name = "instant"
    offline = False
    _answer = LLMResponse(text="ok", usage=TokenUsage(input_tokens=12, output_tokens=7))

    async def complete(
        self, request: LLMRequest, model: ModelConfig, *, timeout_s: float
    ) -> LLMResponse:
        return self._answer

    async def stream(
        self, request: LLMRequest, model: ModelConfig, *, timeout_s: float
    ) -> AsyncGenerator[StreamEvent, None]:
        yield Done(response=self._answer)

    async def aclose(self) -> None:
        return None


def config(url: str) -> LLMConfig:
    return config_from_mapping(
        {
            "providers": {"local": {"kind": "openai", "base_url": url + "/v1", "api_key_env": "K"}},
            "models": [
                {
                    "name": "m",
                    "provider": "local",
                    "model": "m",
                    "tier": "small",
                    "input_usd_per_mtok": 1.0,
                    "output_usd_per_mtok": 4.0,
                }
            ],
        }
    )


def us(samples: list[float]) -> str:
    return f"median {statistics.median(samples) * 1e6:8.1f} us   p90 {_p90(samples) * 1e6:8.1f} us"


def _p90(samples: list[float]) -> float:
    return sorted(samples)[int(len(samples) * 0.9)]


async def end_to_end(calls: int) -> tuple[list[float], list[float]]:
    import openai

    wire = await load_wire().WireServer().start()  # type: ignore[attr-defined]
    direct_client = openai.AsyncOpenAI(api_key="k", base_url=wire.url + "/v1", max_retries=0)
    router = Router.from_config(config(wire.url), env={"K": "k"})
    request = LLMRequest(messages=user("What is NATS?").messages, cache=False)
    params = {"model": "m", "messages": [{"role": "user", "content": "What is NATS?"}]}
    direct: list[float] = []
    routed: list[float] = []
    try:
        for _ in range(50):  # warm both paths and the connection pools
            await direct_client.chat.completions.create(max_tokens=1024, **params)  # type: ignore[call-overload]
            await router.complete(request)
        for _ in range(calls):
            t0 = time.perf_counter()
            await direct_client.chat.completions.create(max_tokens=1024, **params)  # type: ignore[call-overload]
            t1 = time.perf_counter()
            await router.complete(request)
            t2 = time.perf_counter()
            direct.append(t1 - t0)
            routed.append(t2 - t1)
    finally:
        await direct_client.close()
        await router.aclose()
        await wire.stop()
    return direct, routed


async def router_only(calls: int) -> list[float]:
    model = ModelConfig(name="m", provider="instant", model="m", tier=Tier.SMALL)
    router = Router(LLMConfig(), providers={"instant": InstantProvider()}, models=[model])
    llm = router.bind(task_id="bench", remaining_s=3600, budget_usd=1000.0)
    request = LLMRequest(messages=user("What is NATS?").messages, cache=False)
    samples = []
    for _ in range(calls):
        t0 = time.perf_counter()
        await llm.complete(request)
        samples.append(time.perf_counter() - t0)
    return samples


async def cache_hits(calls: int) -> list[float]:
    wire = await load_wire().WireServer().start()  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory() as tmp:
        server = await NatsServer(store_dir=Path(tmp) / "js").start()
        nc = await nats.connect(server.url)
        try:
            cache = await open_kv_cache(nc.jetstream(), "BENCH_CACHE", ttl_s=600)
            async with Router.from_config(config(wire.url), cache=cache, env={"K": "k"}) as router:
                request = user("What is NATS?")
                await router.complete(request)  # miss: fills the cache
                samples = []
                for _ in range(calls):
                    t0 = time.perf_counter()
                    response = await router.complete(request)
                    samples.append(time.perf_counter() - t0)
                    assert response.cached
        finally:
            await nc.close()
            await server.stop()
            await wire.stop()
    return samples


async def main(calls: int) -> None:
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    print(f"python {sys.version.split()[0]}, event loop: {loop}, {calls} calls each")
    direct, routed = await end_to_end(calls)
    overhead = statistics.median(routed) - statistics.median(direct)
    print(f"direct SDK call       {us(direct)}")
    print(f"router call           {us(routed)}")
    print(f"router overhead       {overhead * 1e6:8.1f} us per call (median difference)")
    own = await router_only(calls * 5)
    print(f"router alone (no I/O) {us(own)}")
    hits = await cache_hits(calls)
    print(f"cache hit (KV)        {us(hits)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--asyncio", action="store_true", help="plain asyncio instead of uvloop")
    args = parser.parse_args()
    if args.asyncio:
        asyncio.run(main(args.calls))
    else:
        import uvloop

        uvloop.run(main(args.calls))
