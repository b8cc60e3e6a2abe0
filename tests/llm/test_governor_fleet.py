"""The fleet governor across real OS processes: one nats-server, one wire server,
several plain Python processes each running a router with the governor."""

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from natsfleet.agents.llm import Router, config_from_mapping, user
from natsfleet.agents.llm.budgets import BudgetState, FleetBudgetExceeded
from natsfleet.agents.llm.governor import open_governor
from natsfleet.bus import Bus
from natsfleet.process.server import NatsServer
from tests.procs import agent_env

WORKER = Path(__file__).with_name("governor_worker.py")
WINDOW_S = 1.0


def llm_config(wire: Any, models: list[dict[str, Any]], **governor: Any) -> dict[str, Any]:
    return {
        "providers": {
            "openai": {"kind": "openai", "base_url": wire.url + "/v1", "api_key_env": "T_KEY"}
        },
        "models": [
            {"provider": "openai", "tier": "small", "model": m["name"], **m} for m in models
        ],
        "routing": {"retry_backoff_s": 0.01, "max_wait_s": 1.0, "max_rounds": 1},
        "cooldown": {"failures": 3, "window_s": 10.0, "cooldown_s": 5.0},
        "governor": {"enabled": True, "window_s": WINDOW_S, **governor},
    }


class Worker:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def line(self, timeout_s: float = 20.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout_s)
        assert raw, "worker ended early"
        parsed: dict[str, Any] = json.loads(raw)
        return parsed

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")

    async def results(self, calls: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        out = [await self.line() for _ in range(calls)]
        return out, await self.line()


@contextlib.asynccontextmanager
async def workers(
    nats_server: NatsServer, prefix: str, specs: list[dict[str, Any]]
) -> AsyncIterator[list[Worker]]:
    started: list[Worker] = []
    try:
        for spec in specs:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, str(WORKER),
                json.dumps({"url": nats_server.url, "prefix": prefix, **spec}),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                env=agent_env({"T_KEY": "k-secret"}),
            )  # fmt: skip
            started.append(Worker(proc))
        for worker in started:
            assert (await worker.line()) == {"ready": True}
        yield started
    finally:
        for worker in started:
            with contextlib.suppress(ProcessLookupError):
                worker.proc.kill()
            await worker.proc.wait()


def max_in_window(times: list[float], window_s: float) -> int:
    times = sorted(times)
    return max(sum(1 for u in times[i:] if u < t + window_s) for i, t in enumerate(times))


async def test_four_processes_never_exceed_the_fleet_rate(
    nats_server: NatsServer, prefix: str, bus: Bus, wire: Any
) -> None:
    rpm = 20  # per WINDOW_S: one call every 50 ms for the whole fleet
    models = [{"name": "paced"}, {"name": "warm", "tier": "large"}]
    config = llm_config(wire, models, deployments={"paced": {"rpm": rpm}})
    spec = {
        "config": config, "calls": 20, "max_tokens": 7, "remaining_s": 20,
        "model": "paced", "warmup": "warm",
    }  # fmt: skip
    specs = [{**spec, "name": f"w{i}"} for i in range(4)]
    async with workers(nats_server, prefix, specs) as procs:
        for worker in procs:
            worker.go()
        done = [await worker.results(20) for worker in procs]
    assert all(r["ok"] for results, _ in done for r in results)
    arrivals = [r.at for r in wire.requests if r.model == "paced"]
    assert len(arrivals) == 80
    # The fleet's slots (when each call may be sent): never more than `rpm`
    # in any window of WINDOW_S, wherever it starts.
    slots = [s for _, summary in done for s in summary["slots"]]
    assert len(slots) == 80
    # (1 µs: slots are sums of float spacings, the 21st lands at 0.99999998 s)
    assert max_in_window(slots, WINDOW_S - 1e-6) <= rpm, _debug(slots)
    # Every call went at its slot or later (never early), and most within a
    # few ms: a caller that wakes more than half a spacing late books again.
    released = [s for _, summary in done for s in summary["released"]]
    assert len(released) == 80
    # At the provider (this test process records arrivals, and on a loaded
    # 2-core machine it, like the workers, can stall for tens of ms and read
    # several requests at once, so no per-window check of arrivals or
    # releases here): 80 calls at the fleet's rate, not 4 times it.
    arrivals = sorted(arrivals)
    rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    late = [summary["late"] for _, summary in done]
    kv_ops = [summary["kv_ops"] for _, summary in done]
    # Never above the limit; near it, less what callers that woke late after a
    # stall left unused (a loaded machine makes some).
    assert 0.7 * rpm / WINDOW_S <= rate <= 1.05 * rpm / WINDOW_S, (rate, late)
    # Coalesced bookings: about two KV operations per call (booking and token-free
    # settlement batches), a few more for late callers' second bookings.
    assert all(ops <= 2 * 20 + 2 * n for ops, n in zip(kv_ops, late, strict=True)), (kv_ops, late)


async def test_a_budget_that_fits_k_calls_lets_exactly_k_through(
    nats_server: NatsServer, prefix: str, bus: Bus, wire: Any
) -> None:
    # Each call costs exactly its estimate: 7 output tokens at $1000/Mtok = $0.007.
    model = {"name": "priced", "output_usd_per_mtok": 1000.0}
    wire.defaults["priced"] = wire.slow(0.3)  # every call is in flight at once
    config = llm_config(wire, [model])
    k = 7
    spec = {
        "config": config, "calls": 5, "max_tokens": 7, "remaining_s": 20,
        "run_id": "run-1", "budget_usd": (k + 0.5) * 0.007,
    }  # fmt: skip
    async with workers(nats_server, prefix, [{**spec, "name": f"b{i}"} for i in range(4)]) as procs:
        for worker in procs:
            worker.go()
        done = [await worker.results(5) for worker in procs]
    results = [r for rs, _ in done for r in rs]
    assert wire.count("priced") == k
    assert sum(r["ok"] for r in results) == k
    refused = [r for r in results if not r["ok"]]
    assert {r["error"] for r in refused} == {"FleetBudgetExceeded"}
    assert "workflow run run-1" in refused[0]["detail"]
    state = await read_budget(bus, "budget.run.run-1")
    assert state.calls == k and state.spent_usd == pytest.approx(k * 0.007)
    assert state.holds == {}


async def read_budget(bus: Bus, key: str) -> BudgetState:
    import msgspec

    from natsfleet.protocols import Bucket

    entry = await (await bus.kv(Bucket.GOVERNOR)).get(key)
    assert entry.value is not None
    return msgspec.json.decode(entry.value, type=BudgetState)


async def test_a_reservation_of_a_killed_process_is_released_by_expiry(
    nats_server: NatsServer, prefix: str, bus: Bus, wire: Any
) -> None:
    model = {"name": "priced", "output_usd_per_mtok": 1000.0, "timeout_s": 2.0}
    wire.defaults["priced"] = wire.slow(30.0)  # the holder never gets an answer
    config = llm_config(wire, [model], daily_budget_usd=0.01, reservation_grace_s=0.5)
    # This test's process is the other one; ready before the holder goes, so its
    # first call comes well within the hold's life (2 s + 0.5 s).
    parsed = config_from_mapping(config)
    governor = await open_governor(bus, parsed)
    router = Router.from_config(parsed, governor=governor, env={"T_KEY": "k-secret"})
    try:
        spec = {"config": config, "calls": 1, "max_tokens": 7, "name": "holder"}
        async with workers(nats_server, prefix, [spec]) as (holder,):
            holder.go()
            while wire.count("priced") < 1:  # the request arrived: its reservation is held
                await asyncio.sleep(0.01)
            os.kill(holder.proc.pid, signal.SIGKILL)
            await holder.proc.wait()
        wire.defaults["priced"] = wire.ok("answer")
        with pytest.raises(FleetBudgetExceeded) as refused:
            await router.bind(task_id="t-after").complete(user("q", max_tokens=7))
        assert refused.value.reserved_usd == pytest.approx(0.007)
        day = next(k for k in governor.cells() if k.startswith("budget.fleet."))
        (hold,) = (await read_budget(bus, day)).holds.values()
        await asyncio.sleep(max(0.0, hold.expires_at - time.time()) + 0.05)
        answer = await router.bind(task_id="t-later").complete(user("q", max_tokens=7))
        assert answer.text == "answer"
    finally:
        await router.aclose()
        await governor.aclose()
    assert wire.count("priced") == 2  # the killed call and the one after expiry


async def test_a_429_in_one_process_cools_the_deployment_in_the_others(
    nats_server: NatsServer, prefix: str, bus: Bus, wire: Any
) -> None:
    wire.script("hot", wire.fail(429, retry_after_ms=10_000))
    config = llm_config(wire, [{"name": "hot"}, {"name": "spare", "quality": 0.1}])
    parsed = config_from_mapping(config)
    governor = await open_governor(bus, parsed)  # this test's process: the other one
    router = Router.from_config(parsed, governor=governor, env={"T_KEY": "k-secret"})
    try:
        alone = llm_config(wire, [{"name": "hot"}])  # the other process: no fallback
        spec = {"config": alone, "calls": 1, "max_tokens": 7, "name": "p"}
        async with workers(nats_server, prefix, [spec]) as (other,):
            other.go()
            (result,), _ = await other.results(1)
        assert result["error"] == "NoDeploymentAvailable"
        assert "rate_limit [hot]" in result["detail"]
        async with asyncio.timeout(5.0):  # the watch delivers the other's discovery
            while governor.health.is_available("hot"):
                await asyncio.sleep(0.005)
        assert 5.0 < governor.health.snapshot()["hot"] <= 10.0
        answer = await router.bind(task_id="t").complete(user("q", max_tokens=7))
        assert answer.deployment == "spare"
        assert wire.count("hot") == 1  # spared the same failure
    finally:
        await router.aclose()
        await governor.aclose()


def _debug(times: list[float]) -> str:
    t0 = min(times)
    return " ".join(f"{t - t0:.3f}" for t in sorted(times))
