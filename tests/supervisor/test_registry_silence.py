"""Registry: last-heard times across a failover, and listeners that fail."""

import time

from natsfleet.protocols import Heartbeat, Hello
from natsfleet.supervisor.registry import Instance, Registry, persist_every_s


def _hello(instance_id: str, incarnation: str = "inc-1") -> Hello:
    return Hello(
        instance_id=instance_id,
        agent="x",
        incarnation=incarnation,
        skills=(),
        capacity=1,
        heartbeat_interval_s=1.0,
    )


def _heartbeat(instance_id: str, incarnation: str = "inc-1", seq: int = 1) -> Heartbeat:
    return Heartbeat(
        instance_id=instance_id, agent="x", incarnation=incarnation, seq=seq, load=0, capacity=1
    )


def test_an_instance_nobody_heard_has_no_last_seen() -> None:
    assert Registry(10.0).last_seen("i1") is None


def test_the_previous_leaders_time_counts_for_an_instance_never_heard() -> None:
    registry = Registry(10.0)
    registry.carry("i1", "inc-1", heard_s_ago=7.0)
    last = registry.last_seen("i1")
    assert last is not None
    assert 6.9 < time.monotonic() - last < 7.1


def test_a_heartbeat_heard_as_a_stranger_counts() -> None:
    registry = Registry(10.0)
    registry.carry("i1", "inc-1", heard_s_ago=7.0)
    registry.on_heartbeat(_heartbeat("i1"))  # its Hello came before we listened
    last = registry.last_seen("i1")
    assert last is not None and time.monotonic() - last < 0.5


def test_a_known_instance_takes_the_newer_time_of_its_own_incarnation_only() -> None:
    registry = Registry(10.0)
    registry.on_hello(_hello("i1", "inc-1"))
    inst = registry.instances["i1"]
    inst.last_seen = time.monotonic() - 9.0
    registry.carry("i1", "inc-1", heard_s_ago=2.0)
    last = registry.last_seen("i1")
    assert last is not None and 1.9 < time.monotonic() - last < 2.1
    registry.carry("i1", "inc-0", heard_s_ago=1.0)  # another process under the same id
    assert registry.last_seen("i1") == inst.last_seen


def test_expire_forgets_strangers_and_carried_times() -> None:
    registry = Registry(1.0)
    registry.carry("i1", "inc-1", heard_s_ago=5.0)
    registry.on_heartbeat(_heartbeat("i2"))
    registry.expire(keep_s=3.0)
    assert registry.last_seen("i1") is None
    assert registry.last_seen("i2") is not None


def test_persist_interval_is_bounded() -> None:
    assert persist_every_s(10.0) == 0.5
    assert persist_every_s(0.4) == 0.2


class _Failing:
    """A listener whose every call fails, as a term's engine can while it ends."""

    def __init__(self) -> None:
        self.calls = 0

    def _fail(self) -> None:
        self.calls += 1
        raise RuntimeError("TaskGroup is shutting down")

    def instance_gone(self, instance_id: str, reason: str) -> None:
        self._fail()

    def heartbeat(self, instance: Instance, heartbeat: Heartbeat) -> None:
        self._fail()

    def capacity_changed(self) -> None:
        self._fail()

    def unknown_instance(self, instance_id: str) -> None:
        self._fail()


def test_a_failing_listener_does_not_fail_the_message() -> None:
    """The registry still records what the instance said, and raises nothing
    (the bus would dead-letter a healthy Hello or Heartbeat as handler_error)."""
    registry = Registry(10.0)
    listener = _Failing()
    registry.listener = listener
    registry.on_hello(_hello("i1", "inc-1"))
    registry.on_heartbeat(_heartbeat("i1", seq=3))
    registry.on_heartbeat(_heartbeat("i2"))  # a stranger
    registry.on_hello(_hello("i1", "inc-2"))  # restarted
    assert listener.calls == 6  # each call made, each failure contained
    assert registry.instances["i1"].hello.incarnation == "inc-2"
