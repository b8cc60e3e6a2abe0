"""Registry.least_loaded picks exactly what candidates() ranks first."""

import random
import time

import pytest

from natsfleet.protocols import Hello
from natsfleet.supervisor.registry import Instance, Registry


def _instance(rng: random.Random, n: int, now: float) -> Instance:
    skills = frozenset(rng.sample(["a", "b", "c"], rng.randint(0, 3)))
    hello = Hello(
        instance_id=f"i{n}",
        agent="x",
        incarnation="1",
        skills=(),
        capacity=rng.choice([0, 1, 2, 4, 100]),
        heartbeat_interval_s=1.0,
    )
    return Instance(
        hello=hello,
        last_seen=now - rng.choice([0.0, 0.5, 10.0]),  # 10 s: past the heartbeat timeout
        last_seen_ms=0,
        draining=rng.random() < 0.1,
        departed=rng.random() < 0.1,
        paused=rng.random() < 0.1,
        skills=skills,
    )


@pytest.mark.parametrize("seed", range(200))
def test_least_loaded_is_the_first_candidate(seed: int) -> None:
    rng = random.Random(seed)
    registry = Registry(heartbeat_timeout_s=3.0)
    now = time.monotonic()
    for n in range(rng.randint(0, 8)):
        inst = _instance(rng, n, now)
        registry.instances[inst.instance_id] = inst
    load = {i: rng.randint(0, 5) for i in registry.instances if rng.random() < 0.7}
    for skill in ("a", "b", "c", "d"):
        ranked = registry.candidates(skill, load)
        assert registry.least_loaded(skill, load) is (ranked[0] if ranked else None)
