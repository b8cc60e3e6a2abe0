"""A plain Python process running the router with the fleet governor.

`python tests/llm/governor_worker.py '<json spec>'` connects to NATS, opens
the governor, prints `{"ready": true}`, waits for a line on stdin, makes
`calls` concurrent calls, prints one JSON line per call, then `{"done": ...}`.
Used by tests/llm/test_governor_fleet.py; the provider is the test's wire server.
"""

import asyncio
import json
import sys
import time
from typing import Any

from natsfleet.agents.llm import LLMError, Router, config_from_mapping, user
from natsfleet.agents.llm.governor import Governor, Permit, open_governor
from natsfleet.bus import Bus, BusConfig


def record_slots(governor: Governor) -> tuple[list[float], list[float]]:
    """Every slot this governor books (the instant its call may be sent), and
    the instant it let each call go."""
    slots: list[float] = []
    released: list[float] = []
    admit = governor.admit

    async def recording(*args: Any, **kwargs: Any) -> Permit:
        permit = await admit(*args, **kwargs)
        now = time.time()
        slot = max((slot for _, _, slot in permit.bookings), default=0.0)
        assert now >= slot, "a call went before its slot"
        released.append(now)
        slots.append(slot)
        return permit

    governor.admit = recording  # type: ignore[method-assign]
    return slots, released


async def call(router: Router, spec: dict[str, Any], i: int) -> dict[str, Any]:
    llm = router.bind(
        task_id=f"{spec['name']}-{i}",
        remaining_s=spec.get("remaining_s"),
        budget_usd=spec.get("budget_usd"),
        workflow_id=spec.get("run_id"),
        tenant=spec.get("tenant"),
    )
    sent = time.time()
    try:
        request = user(f"question {i}", model=spec.get("model"), max_tokens=spec["max_tokens"])
        response = await llm.complete(request)
    except LLMError as exc:
        return {"ok": False, "error": type(exc).__name__, "detail": str(exc), "at": sent}
    return {"ok": True, "deployment": response.deployment, "at": sent, "end": time.time()}


async def main(spec: dict[str, Any]) -> None:
    config = config_from_mapping(spec["config"])
    async with Bus(BusConfig(url=spec["url"], prefix=spec["prefix"]), role="test") as bus:
        governor = await open_governor(bus, config)
        router = Router.from_config(config, governor=governor)
        slots, released = record_slots(governor)
        if spec.get("warmup"):
            # A long-lived agent has made calls before: the SDK's first request
            # builds its HTTP client, a pause that would bunch the first slots.
            await router.complete(user("warm up", model=spec["warmup"], max_tokens=1))
        slots.clear()
        released.clear()
        print(json.dumps({"ready": True}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        results = await asyncio.gather(*(call(router, spec, i) for i in range(spec["calls"])))
        for result in results:
            print(json.dumps(result), flush=True)
        await router.aclose()
        await governor.aclose()  # writes the settlements still queued
        stats = governor.stats
        done = {
            "done": True, "kv_ops": stats.ops, "conflicts": stats.conflicts,
            "slots": slots, "released": released, "late": governor.late,
        }  # fmt: skip
        print(json.dumps(done), flush=True)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
