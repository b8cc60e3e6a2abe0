"""The fleet governor's rules, one process with several governors (each one a
stand-in for a process) on a real nats-server and the local wire server."""

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from opentelemetry.metrics import CallbackOptions

from natsfleet.agents.llm import (
    ConfigError,
    LLMConfig,
    NoDeploymentAvailable,
    Router,
    governor_metrics,
    user,
)
from natsfleet.agents.llm.budgets import BudgetState, Hold, reserve
from natsfleet.agents.llm.errors import ErrorKind
from natsfleet.agents.llm.governor import Governor, api_key_id
from natsfleet.agents.llm.governor_config import RateLimit
from natsfleet.agents.llm.kvcell import KVCell, KVStats
from natsfleet.agents.llm.ratelimit import RateState, Throttled, book
from natsfleet.bus import Bus
from natsfleet.bus.kvread import latest_entries
from natsfleet.protocols import Bucket

NATSFLEET = str(Path(sys.executable).parent / "natsfleet")
GovernedRouter = Callable[..., tuple[Router, Governor]]


def m(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "provider": "openai", "model": name, "tier": "small", **extra}


@pytest.fixture
async def governed(
    bus: Bus, make_config: Callable[..., LLMConfig]
) -> AsyncIterator[GovernedRouter]:
    made: list[tuple[Router, Governor]] = []
    kv = await bus.kv(Bucket.GOVERNOR)

    def make(models: list[dict[str, Any]], **governor: Any) -> tuple[Router, Governor]:
        config = make_config(
            models,
            governor={"enabled": True, "window_s": 1.0, **governor},
            routing={"max_rounds": 1},  # one pass: a failure is seen, not waited out
        )
        gov = Governor(config, kv, env={"T_KEY": "k-secret"})
        router = Router.from_config(config, governor=gov, env={"T_KEY": "k-secret"})
        made.append((router, gov))
        return router, gov

    yield make
    for router, gov in made:
        await router.aclose()
        await gov.aclose()


async def test_a_call_without_a_slot_before_its_deadline_is_throttled(
    governed: GovernedRouter, wire: Any
) -> None:
    # One request per 2 s window for the whole fleet.
    router, gov = governed([m("slow-lane")], deployments={"slow-lane": {"rpm": 1}}, window_s=2.0)
    await gov.start()
    await router.bind(task_id="t0", remaining_s=5).complete(user("q"))
    with pytest.raises(Throttled) as caught:
        await router.bind(task_id="t1", remaining_s=0.3).complete(user("q"))
    exc = caught.value
    assert exc.retryable and exc.kind is ErrorKind.THROTTLED
    assert exc.scope == "rate.dep.slow-lane" and 0.3 < exc.wait_s <= 2.0
    assert wire.count("slow-lane") == 1  # nothing was sent for the throttled call
    # With time left it waits for its slot instead: 2 s after the first call.
    await router.bind(task_id="t2", remaining_s=5).complete(user("q"))
    first, second = (r.at for r in wire.requests)
    assert second - first > 1.5  # 2 s apart as sent; arrival stamps carry some jitter
    assert gov.throttled >= 1


async def test_concurrent_bookings_get_fifo_slots_in_few_kv_writes(bus: Bus) -> None:
    kv = await bus.kv(Bucket.GOVERNOR)
    stats = KVStats()
    # Two cells on one key: two processes' views of the same schedule.
    cells = [KVCell(kv, "rate.dep.fifo", RateState, stats, RateState) for _ in range(2)]
    limit = RateLimit(rpm=100)
    at = time.time()

    async def booked(i: int) -> float:
        ok, slot = await cells[i // 10].apply(book(limit, 1.0, 10, at, None))
        assert ok
        return slot

    slots = await asyncio.gather(*(booked(i) for i in range(20)))
    # One slot each, 10 ms apart (1 s / 100); within each process in the order asked.
    assert sorted(slots) == pytest.approx([min(slots) + 0.01 * i for i in range(20)], abs=1e-6)
    for process in (slots[:10], slots[10:]):
        assert process == sorted(process)
    # Coalesced: a write per batch and process (plus a conflict between the two), not per call.
    assert stats.writes <= 5, stats


async def test_token_limits_book_the_estimate_and_settle_the_real_usage(
    governed: GovernedRouter, wire: Any, bus: Bus
) -> None:
    router, gov = governed([m("tok")], deployments={"tok": {"tpm": 10_000}})
    await gov.start()
    await router.bind(task_id="t").complete(user("q", max_tokens=500))
    await gov.aclose()  # the settlement is written
    entry = await (await bus.kv(Bucket.GOVERNOR)).get("rate.dep.tok")
    state = msgspec.json.decode(entry.value or b"", type=RateState)
    # The wire reports 12 + 7 tokens: the window counts those, not the 500+ estimated.
    assert state.window_tokens == 19
    assert state.tpm == 10_000 and state.rpm is None


async def test_api_key_and_tenant_limits_are_shared_and_the_key_is_never_stored(
    governed: GovernedRouter, wire: Any, bus: Bus
) -> None:
    router, gov = governed([m("a"), m("b")], api_keys={"openai": {"rpm": 50}}, tenant_rpm=60)
    await gov.start()
    await router.bind(task_id="t1", tenant="acme").complete(user("q", model="a"))
    await router.bind(task_id="t2", tenant="acme").complete(user("q", model="b"))
    kv = await bus.kv(Bucket.GOVERNOR)
    keys = await live_keys(kv)
    assert {f"rate.key.{api_key_id('k-secret')}", "rate.tenant.acme"} <= keys
    for key in keys:
        value = (await kv.get(key)).value or b""
        assert b"k-secret" not in value and "k-secret" not in key
    tenant = msgspec.json.decode((await kv.get("rate.tenant.acme")).value or b"", type=RateState)
    assert tenant.window_requests + tenant.last_requests == 2  # both deployments counted


async def test_after_a_cooldown_one_probe_goes_first_for_the_fleet(
    governed: GovernedRouter, wire: Any
) -> None:
    models = [m("flaky")]
    router_a, gov_a = governed(models)
    _, gov_b = governed(models)
    await gov_a.start()
    await gov_b.start()
    wire.script("flaky", wire.fail(429, retry_after_ms=200))
    with pytest.raises(NoDeploymentAvailable, match="rate_limit"):
        await router_a.bind(task_id="t").complete(user("q"))
    async with asyncio.timeout(2):
        while gov_b.health.is_available("flaky"):
            await asyncio.sleep(0.005)
    assert gov_b.health.mirror["flaky"].circuit(time.time()) == "open"
    await asyncio.sleep(0.25)  # the Retry-After is over: half-open
    assert gov_b.health.mirror["flaky"].circuit(time.time()) == "half_open"
    wire.script("flaky", wire.slow(1.0))
    probe = asyncio.create_task(router_a.bind(task_id="t2").complete(user("q")))
    async with asyncio.timeout(2):  # a claims the probe ...
        while gov_b.health.mirror["flaky"].probe_until == 0.0:
            await asyncio.sleep(0.005)
    assert not gov_b.health.is_available("flaky")  # ... and b waits for its answer
    assert (await probe).deployment == "flaky"
    async with asyncio.timeout(2):
        while not gov_b.health.is_available("flaky"):
            await asyncio.sleep(0.005)
    assert gov_b.health.mirror["flaky"].circuit(time.time()) == "closed"


def test_a_reservation_past_its_expiry_is_dropped_by_the_next_writer() -> None:
    now = time.time()
    state = BudgetState(
        limit_usd=1.0,
        holds={
            "dead-1": Hold(usd=0.9, expires_at=now - 1),
            "live-1": Hold(usd=0.05, expires_at=now + 60),
        },
    )
    new, refused = reserve("task t", 1.0, "me-1", 0.5, now + 10, fixed=True)(state)
    assert refused is None
    assert set(new.holds) == {"live-1", "me-1"}
    _, refused = reserve("task t", 1.0, "me-2", 0.5, now + 10, fixed=True)(new)
    assert refused is not None and refused.reserved_usd == pytest.approx(0.55)
    assert not refused.retryable and "reserved $0.550000" in str(refused)


def test_governor_config_is_checked(make_config: Callable[..., LLMConfig]) -> None:
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        make_config([m("a")], governor={"deployments": {"nope": {"rpm": 1}}})
    with pytest.raises(ConfigError, match="unknown provider"):
        make_config([m("a")], governor={"api_keys": {"nope": {"rpm": 1}}})
    with pytest.raises(ConfigError, match="> 0"):
        make_config([m("a")], governor={"deployments": {"a": {"rpm": 0}}})


async def test_natsfleet_llm_shows_rates_health_and_budgets(
    governed: GovernedRouter, wire: Any, nats_server: Any, prefix: str
) -> None:
    priced = m("shown", output_usd_per_mtok=1000.0)
    router, gov = governed(
        [priced], deployments={"shown": {"rpm": 600}}, daily_budget_usd=5.0, window_s=60.0
    )
    await gov.start()
    for i in range(2):
        await router.bind(task_id=f"t{i}").complete(user("q", max_tokens=7))
    wire.script("shown", wire.fail(429, retry_after_ms=30_000))
    with pytest.raises(NoDeploymentAvailable):
        await router.bind(task_id="t9").complete(user("q", max_tokens=7))
    async with asyncio.timeout(2):  # the settlements are written in the background
        while gov.cells()[next(k for k in gov.cells() if k.startswith("budget.fleet"))].holds:
            await asyncio.sleep(0.005)
    # The metrics export the same figures, from this process's view.
    options = CallbackOptions()
    rates = {(o.attributes or {}).get("unit"): o.value for o in governor_metrics._rates(options)}
    assert rates["requests"] == 3
    limits = [(o.value, o.attributes) for o in governor_metrics._limits(options)]
    assert limits == [(600, {"scope": "deployment", "name": "shown", "unit": "requests"})]
    (cooling,) = governor_metrics._cooldowns(options)
    assert cooling.value > 25 and (cooling.attributes or {})["circuit"] == "open"
    (spent,) = governor_metrics._budgets("spent")(options)
    assert spent.value == pytest.approx(0.014)
    assert next(iter(governor_metrics._kv_ops(options))).value >= 3
    await gov.aclose()  # settlements and health written
    assert list(governor_metrics._rates(options)) == []  # a closed governor is not exported

    args = [NATSFLEET, "llm", "--nats", nats_server.url, "--prefix", prefix]
    proc = await asyncio.create_subprocess_exec(*args, "--json", stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    view = json.loads(out)
    (rate,) = view["rates"]
    assert (rate["kind"], rate["name"], rate["rpm"], rate["requests"]) == (
        "deployment",
        "shown",
        600,
        3,
    )
    (health,) = view["health"]
    assert (health["deployment"], health["circuit"], health["reason"]) == (
        "shown",
        "open",
        "rate_limit",
    )
    assert 15 < health["cooling_s"] <= 30
    (budget,) = view["budgets"]
    assert budget["scope"].startswith("fleet ") and budget["limit_usd"] == 5.0
    assert budget["spent_usd"] == pytest.approx(0.014) and budget["reserved_usd"] == 0
    assert budget["calls"] == 2
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    assert proc.returncode == 0 and b"shown" in out and b"open" in out


async def test_the_agent_binding_opens_the_governor_and_creates_its_bucket(
    nats_server: Any,
    prefix: str,
    make_config: Callable[..., LLMConfig],
    wire: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from natsfleet.agents.llm_binding import LLMBinding
    from natsfleet.bus import BusConfig

    monkeypatch.setenv("T_KEY", "k")
    config = make_config([m("a", output_usd_per_mtok=1000.0)], governor={"enabled": True})
    async with Bus(BusConfig(url=nats_server.url, prefix=prefix), role="test") as bus:
        binding = LLMBinding(config, use_cache=False)
        await binding.open(bus)  # nothing provisioned: the binding makes the bucket
        assert binding.router is not None and binding.router.governor is binding.governor
        llm = binding.router.bind(task_id="t1", budget_usd=0.01, workflow_id="run-9")
        await llm.complete(user("q", max_tokens=7))
        await binding.aclose()
        kv = await bus.kv(Bucket.GOVERNOR)
        assert {"budget.task.t1", "budget.run.run-9"} <= await live_keys(kv)
    assert wire.count("a") == 1


async def test_a_caller_that_wakes_late_books_again_instead_of_bunching(
    governed: GovernedRouter, wire: Any
) -> None:
    router, gov = governed([m("lane")], deployments={"lane": {"rpm": 10}})  # 100 ms apart
    await gov.start()
    model = router.models[0]
    for _ in range(2):  # the schedule is booked ahead: the next caller queues
        (await gov.admit(user("q"), model, deadline=None, hold_s=1.0)).settle(None)
    third = asyncio.create_task(gov.admit(user("q"), model, deadline=None, hold_s=1.0))
    await asyncio.sleep(0.02)  # it has booked its slot and sleeps towards it
    time.sleep(0.4)  # the process stalls (blocks its loop) past that slot
    permit = await third
    permit.settle(None)
    assert gov.late == 1
    # It went at a slot booked after the stall, not at the one it overslept.
    assert permit.bookings[0][2] >= time.time() - 0.1


async def live_keys(kv: Any) -> set[str]:
    """The bucket's keys, read to its last sequence (kv.keys() can end early:
    nats-io/nats.py#842)."""
    return {e.key for e in await latest_entries(kv) if e.operation is None and e.value}
