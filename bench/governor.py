"""What the fleet governor adds to an LLM call: latency (p50, p99) and KV operations.

One run, one nats-server and the local wire server from tests/llm/wire.py
(127.0.0.1, no network), three routers on the same deployment, interleaved:

  * `plain`    - no governor (the baseline);
  * `health`   - the governor on, no limit configured: health only (a local
                 mirror read per call, no KV operation on success);
  * `governed` - a fleet rate limit on the deployment (rpm and tpm, high enough
                 never to wait), the task's budget and the fleet's daily budget:
                 one booking, two reservations, and their settlement.

Sequential calls give the added latency; then 20 concurrent callers show KV
operations per call when bookings coalesce. Settlements are written off the
call's path and are counted (the governor is drained before counting).

Run: `.venv/bin/python bench/governor.py [--calls N]`.
"""

import argparse
import asyncio
import importlib.util
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from natsfleet.agents.llm import Router, config_from_mapping, user
from natsfleet.agents.llm.governor import CallScope, Governor
from natsfleet.bus import Bus, BusConfig
from natsfleet.process.server import NatsServer
from natsfleet.protocols import Bucket

ROOT = Path(__file__).resolve().parent.parent


def load_wire() -> Any:
    spec = importlib.util.spec_from_file_location("wire", ROOT / "tests" / "llm" / "wire.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def config(url: str, governor: dict[str, Any]) -> Any:
    model = {
        "name": "m", "provider": "local", "model": "m", "tier": "small",
        "input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0,
    }  # fmt: skip
    return config_from_mapping(
        {
            "providers": {"local": {"kind": "openai", "base_url": url + "/v1", "api_key_env": "K"}},
            "models": [model],
            "governor": governor,
        }
    )


LIMITS = {
    "enabled": True,
    "deployments": {"m": {"rpm": 10_000_000, "tpm": 10_000_000_000}},
    "daily_budget_usd": 1e9,
}
#: name -> (governor table or None, the task's budget)
SETUPS: dict[str, tuple[dict[str, Any] | None, float | None]] = {
    "plain (no governor)": (None, 1.0),
    "governor, health only": ({"enabled": True}, None),
    "governor, task budget": ({"enabled": True}, 1.0),
    "governor, rate + task + day": (LIMITS, 1.0),
    # A second baseline: the spread between the two is the noise floor of the run.
    "plain again": (None, 1.0),
}
REQUEST = user("What is the capital of France?", max_tokens=16)


class Setup:
    def __init__(
        self, name: str, router: Router, governor: Governor | None, budget: float | None
    ) -> None:
        self.name, self.router, self.governor, self.budget = name, router, governor, budget
        self.latencies_us: list[float] = []
        self.calls = 0

    async def call(self) -> None:
        self.calls += 1
        # Task ids unique across setups: a task's budget key is the task's own.
        llm = self.router.bind(task_id=f"{self.name}-{self.calls}", budget_usd=self.budget)
        await llm.complete(REQUEST)

    async def admit_us(self, calls: int) -> list[float]:
        """The governor's own part of a call: `admit` (booking, reservations, no wait)."""
        if self.governor is None:
            return [0.0]
        model = self.router.models[0]
        took = []
        for _ in range(calls):
            self.calls += 1
            scope = CallScope(task_id=f"{self.name}-{self.calls}", task_budget_usd=self.budget)
            started = time.perf_counter()
            permit = await self.governor.admit(
                REQUEST, model, deadline=None, hold_s=60, scope=scope
            )
            took.append((time.perf_counter() - started) * 1e6)
            permit.settle(None)
        return took

    async def kv_ops_per_call(self, calls: int, concurrent: int) -> float:
        """KV operations per call, settlements included (drained before counting)."""
        if self.governor is None:
            return 0.0
        before = self.governor.stats.ops
        rounds = calls // concurrent
        for _ in range(rounds):
            await asyncio.gather(*(self.call() for _ in range(concurrent)))
        await self.governor.aclose()
        await self.governor.start()
        return (self.governor.stats.ops - before) / (rounds * concurrent)


async def build(url: str, kv: Any) -> dict[str, Setup]:
    env = {"K": "k"}
    setups = {}
    for i, (name, (table, budget)) in enumerate(SETUPS.items()):
        cfg = config(url, table or {})
        governor = Governor(cfg, kv, env=env) if table else None
        if governor is not None:
            await governor.start()
        router = Router.from_config(cfg, governor=governor, env=env)
        setups[name] = Setup(f"s{i}", router, governor, budget)
    return setups


async def measure(setups: dict[str, Setup], calls: int) -> None:
    order = list(setups.values())
    for i in range(calls + 20):  # 20 warm-up rounds, not counted
        order = order[1:] + order[:1]  # each setup takes every place in turn
        for setup in order:
            started = time.perf_counter()
            await setup.call()
            if i >= 20:
                setup.latencies_us.append((time.perf_counter() - started) * 1e6)
    base = statistics.median(next(iter(setups.values())).latencies_us)
    print(f"{calls} calls per router, interleaved; wire server and nats-server on 127.0.0.1\n")
    print("| router | call p50 µs | call p99 µs | added p50 µs | p50 ratio | admit p50 µs "
          "| admit p99 µs | KV ops/call, 1 caller | KV ops/call, 20 at once |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for name, setup in setups.items():
        p50, p99 = statistics.median(setup.latencies_us), pct(setup.latencies_us, 0.99)
        admit = await setup.admit_us(calls)
        one = await setup.kv_ops_per_call(calls, 1)
        twenty = await setup.kv_ops_per_call(calls, 20)
        print(
            f"| {name} | {p50:.0f} | {p99:.0f} | {p50 - base:+.0f} | {p50 / base:.2f} "
            f"| {statistics.median(admit):.0f} | {pct(admit, 0.99):.0f} "
            f"| {one:.2f} | {twenty:.2f} |"
        )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(calls: int) -> None:
    wire = await load_wire().WireServer().start()
    store = tempfile.TemporaryDirectory()
    server = NatsServer(store_dir=Path(store.name) / "js")
    await server.start()
    bus = await Bus(BusConfig(url=server.url, prefix="bench"), role="bench").connect()
    await bus.provision()
    setups = await build(wire.url, await bus.kv(Bucket.GOVERNOR))
    try:
        await measure(setups, calls)
    finally:
        for setup in setups.values():
            await setup.router.aclose()
            if setup.governor is not None:
                await setup.governor.aclose()
        await bus.close()
        await server.stop()
        await wire.stop()
        store.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=400)
    asyncio.run(main(parser.parse_args().calls))
