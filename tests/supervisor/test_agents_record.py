"""KV AGENTS is written one instance at a time: an announcement writes its own
instance's record and nothing else, and building that record does not grow
with the fleet (it once rebuilt every instance's info per write)."""

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from conftest import FAST

from natsfleet.bus import Bus, BusConfig
from natsfleet.process import NatsServer
from natsfleet.protocols import AgentInfo, Bucket, Heartbeat, Hello, SkillSpec
from natsfleet.supervisor import Supervisor, SupervisorConfig
from natsfleet.supervisor.registry import Registry

FLEET = 200


def _hello(instance_id: str) -> Hello:
    return Hello(
        instance_id=instance_id,
        agent="x",
        incarnation="inc-1",
        skills=(SkillSpec(name="idle"),),
        capacity=4,
        heartbeat_interval_s=10.0,
    )


@pytest.fixture
async def supervisor(nats_server: NatsServer, prefix: str) -> AsyncIterator[Supervisor]:
    raw = {**FAST, "supervisor_id": "sup-agents"}
    sup = Supervisor(
        msgspec.convert(raw, SupervisorConfig), BusConfig(url=nats_server.url, prefix=prefix)
    )
    running = asyncio.create_task(sup.run())
    try:
        await asyncio.wait_for(sup.active.wait(), 15)
        yield sup
    finally:
        sup.shutdown()
        await asyncio.wait_for(running, 15)


async def test_an_announcement_writes_its_own_record_only(bus: Bus, supervisor: Supervisor) -> None:
    written: list[str] = []
    arrived = asyncio.Event()
    base = f"$KV.{bus.subjects.bucket(Bucket.AGENTS)}."

    async def on_write(msg: object) -> None:
        written.append(msg.subject.removeprefix(base))  # type: ignore[attr-defined]
        arrived.set()

    await bus.nc.subscribe(base + ">", cb=on_write)
    subjects = bus.subjects
    for n in range(FLEET):
        await bus.publish(subjects.hello("x", f"i{n}"), _hello(f"i{n}"))
    async with asyncio.timeout(10):
        while len(written) < FLEET:
            arrived.clear()
            await arrived.wait()
    assert sorted(written) == sorted(f"i{n}" for n in range(FLEET))

    # A heartbeat past the persist interval (0.2 s here) rewrites its record,
    # as a plain publish the bucket stores, and only that one.
    await asyncio.sleep(0.25)
    written.clear()
    before_ms = int(time.time() * 1000)
    beat = Heartbeat(instance_id="i7", agent="x", incarnation="inc-1", seq=1, load=0, capacity=4)
    await bus.publish(subjects.heartbeat("x", "i7"), beat)
    await bus.publish(subjects.hello("x", "last"), _hello("last"))  # marks the end
    async with asyncio.timeout(10):
        while "last" not in written:
            arrived.clear()
            await arrived.wait()
    assert written == ["i7", "last"]
    kv = await bus.kv(Bucket.AGENTS)
    entry = await kv.get("i7")
    assert entry.value is not None
    assert msgspec.json.decode(entry.value, type=AgentInfo).last_seen_ms >= before_ms


def _build_s(registry: Registry, instance_id: str) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(200):
            assert registry.info_of(instance_id, {}) is not None
        best = min(best, time.perf_counter() - started)
    return best


def test_one_record_is_built_alone() -> None:
    small, large = Registry(10.0), Registry(10.0)
    for n in range(20):
        small.on_hello(_hello(f"i{n}"))
    for n in range(5_000):
        large.on_hello(_hello(f"i{n}"))
    assert large.info_of("i7", {"i7": 2}) == next(
        i for i in large.info({"i7": 2}) if i.instance_id == "i7"
    )
    assert large.info_of("nobody", {}) is None
    # Building all 5,000 would be ~250x; one record is within noise.
    assert _build_s(large, "i7") < 5 * _build_s(small, "i7") + 0.002
