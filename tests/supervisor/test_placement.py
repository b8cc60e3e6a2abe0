"""Registry.pick (the O(log n) index, supervisor/placement.py) against the
brute-force ranking `candidates` under random joins, leaves, loads,
capacities, pauses, drains, dropped skills and silence; and it stays cheap
with thousands of instances."""

import random
import time

import pytest

from natsfleet.protocols import Bye, Heartbeat, Hello, SkillSpec
from natsfleet.supervisor.attempts import AttemptTable
from natsfleet.supervisor.registry import Instance, Registry

SKILLS = ("a", "b", "c")
TIMEOUT_S = 3.0


def _hello(n: int, incarnation: str, skills: list[str], capacity: int) -> Hello:
    return Hello(
        instance_id=f"i{n}",
        agent="x",
        incarnation=incarnation,
        skills=tuple(SkillSpec(name=s) for s in skills),
        capacity=capacity,
        heartbeat_interval_s=1.0,
    )


def _heartbeat(inst: Instance, seq: int, *, draining: bool) -> Heartbeat:
    return Heartbeat(
        instance_id=inst.instance_id,
        agent="x",
        incarnation=inst.hello.incarnation,
        seq=seq,
        load=0,
        capacity=inst.capacity,
        draining=draining,
    )


def _reference(
    registry: Registry, skill: str, load: dict[str, int], avoid: set[str]
) -> Instance | None:
    """What the dispatcher picked before the index: rank all, prefer untried."""
    found = registry.candidates(skill, load)
    fresh = [inst for inst in found if inst.instance_id not in avoid]
    return (fresh or found)[0] if found else None


def _offers(registry: Registry, skill: str) -> bool:
    now = time.monotonic()
    return any(
        skill in inst.skills and not inst.departed and now - inst.last_seen < TIMEOUT_S
        for inst in registry.instances.values()
    )


def _step(rng: random.Random, registry: Registry, attempts: AttemptTable, seq: int) -> None:
    insts = list(registry.instances.values())
    op = rng.random()
    if op < 0.15 or not insts:  # a join, or a restart under an id seen before
        n = rng.randint(0, 40)
        skills = rng.sample(SKILLS, rng.randint(0, 3))
        incarnation = rng.choice(["1", "2"])
        registry.on_hello(_hello(n, incarnation, skills, rng.choice([0, 1, 2, 3, 4, 100])))
        return
    inst = rng.choice(insts)
    iid = inst.instance_id
    if op < 0.45:
        attempts.reserve(iid)
    elif op < 0.65:
        if attempts.load.get(iid, 0) > 0:
            attempts.unreserve(iid)
    elif op < 0.75:
        registry.on_heartbeat(_heartbeat(inst, seq, draining=rng.random() < 0.2))
    elif op < 0.80:
        registry.pause(iid)
    elif op < 0.83:
        registry.drop_skill(iid, rng.choice(SKILLS))
    elif op < 0.86:
        registry.on_bye(Bye(instance_id=iid, agent="x", incarnation=inst.hello.incarnation))
    elif op < 0.92:
        inst.last_seen -= 10 * TIMEOUT_S  # it went silent (time passed without heartbeats)
    else:
        registry.expire(keep_s=5 * TIMEOUT_S)  # forgets the long-silent ones


@pytest.mark.parametrize("seed", range(40))
def test_pick_is_the_brute_force_choice(seed: int) -> None:
    rng = random.Random(seed)
    registry = Registry(heartbeat_timeout_s=TIMEOUT_S)
    attempts = AttemptTable(on_load=registry.placement.set_used)
    for seq in range(400):
        _step(rng, registry, attempts, seq)
        if seq == 200:  # a new term: its attempts table starts empty
            registry.placement.reset_used()
            attempts = AttemptTable(on_load=registry.placement.set_used)
        ids = list(registry.instances)
        avoid = set(rng.sample(ids, min(len(ids), rng.randint(0, 3))))
        for skill in (*SKILLS, "unknown"):
            assert registry.pick(skill) is _reference(registry, skill, attempts.load, set())
            assert registry.pick(skill, avoid) is _reference(registry, skill, attempts.load, avoid)
            assert registry.offers(skill) == _offers(registry, skill)


def test_loads_of_an_instance_not_yet_known_count_when_it_says_hello() -> None:
    """A new term registers running attempts before their holder's Hello is heard."""
    registry = Registry(heartbeat_timeout_s=TIMEOUT_S)
    attempts = AttemptTable(on_load=registry.placement.set_used)
    attempts.reserve("i1")
    attempts.reserve("i1")
    registry.on_hello(_hello(1, "1", ["a"], 2))
    registry.on_hello(_hello(2, "1", ["a"], 4))
    assert registry.pick("a") is registry.instances["i2"]
    for _ in range(3):
        attempts.reserve("i2")
    assert registry.pick("a") is registry.instances["i2"]  # i1 is full, i2 has a slot
    attempts.reserve("i2")
    assert registry.pick("a") is None
    attempts.unreserve("i1")
    assert registry.pick("a") is registry.instances["i1"]


def _fleet(n: int) -> tuple[Registry, AttemptTable]:
    registry = Registry(heartbeat_timeout_s=60.0)
    attempts = AttemptTable(on_load=registry.placement.set_used)
    for i in range(n):  # idle instances of other skills, as bench/fleet_scale.py
        registry.on_hello(_hello(i, "1", ["idle"], 10))
    registry.on_hello(_hello(n, "1", ["work"], 100))
    registry.on_hello(_hello(n + 1, "1", ["work"], 100))
    return registry, attempts


def _pick_s(registry: Registry, attempts: AttemptTable) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(100):
            inst = registry.pick("work")
            assert inst is not None
            attempts.reserve(inst.instance_id)
            attempts.unreserve(inst.instance_id)
        best = min(best, time.perf_counter() - started)
    return best


def test_a_pick_does_not_grow_with_the_fleet() -> None:
    small = _pick_s(*_fleet(20))
    large = _pick_s(*_fleet(20_000))
    # A scan of every instance would be ~1000x; a heap is within noise.
    assert large < 5 * small + 0.002, (small, large)
