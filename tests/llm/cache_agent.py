"""One "agent process" for the cross-process cache test: one LLM call, result as JSON.

Usage: python cache_agent.py NATS_URL WIRE_URL BUCKET PROMPT
"""

import asyncio
import json
import sys

import nats

from natsfleet.agents.llm import Router, config_from_mapping, open_kv_cache, user


async def main(nats_url: str, wire_url: str, bucket: str, prompt: str) -> None:
    config = config_from_mapping(
        {
            "providers": {
                "local": {"kind": "openai", "base_url": wire_url + "/v1", "api_key_env": "T_KEY"}
            },
            "models": [
                {
                    "name": "m",
                    "provider": "local",
                    "model": "m",
                    "tier": "small",
                    "input_usd_per_mtok": 1.0,
                }
            ],
        }
    )
    nc = await nats.connect(nats_url)
    try:
        cache = await open_kv_cache(nc.jetstream(), bucket, ttl_s=60)
        async with Router.from_config(config, cache=cache, env={"T_KEY": "k"}) as router:
            llm = router.bind(task_id="t")
            response = await llm.complete(user(prompt))
        out = {"text": response.text, "cached": response.cached, "cost_usd": llm.usage.cost_usd}
        print(json.dumps(out))
    finally:
        await nc.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
