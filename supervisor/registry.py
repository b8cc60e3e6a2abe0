"""Live agent instances, from their Hello, Heartbeat and Bye.

The registry runs in every supervisor, standbys included, so a standby that
takes over already knows the fleet. It only records what instances say; what
to do about a dead instance or a lost token is the engine's business, told
through the `RegistryListener` it installs while it is active. A listener
that fails is logged, never the message's fault: a healthy Hello or
Heartbeat is not rejected (or dead-lettered) because of it.

The least-loaded pick is `pick` (supervisor/placement.py: O(log n) per task,
fed by every change below and by the term's loads through `placement`);
`candidates` and `least_loaded` rank every instance, the reference it is
tested against. Nothing here is O(instances) per heartbeat or per pick: a
heartbeat that changes no flag is a few field writes.

Last-heard times survive a failover: the new leader takes them from what it
heard itself as a standby (strangers included) and, for instances it never
heard, from the records the previous leader kept in KV AGENTS (`carry`).
"""

import logging
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

from natsfleet.protocols import AgentInfo, Bye, Heartbeat, Hello
from natsfleet.supervisor.instance import Instance
from natsfleet.supervisor.placement import Placement

__all__ = ["Instance", "ListenerRelay", "Registry", "RegistryListener", "persist_every_s"]

log = logging.getLogger(__name__)


class RegistryListener(Protocol):
    def instance_gone(self, instance_id: str, reason: str) -> None: ...

    def heartbeat(self, instance: "Instance", heartbeat: Heartbeat) -> None: ...

    def capacity_changed(self) -> None: ...

    def unknown_instance(self, instance_id: str) -> None: ...


#: The active supervisor rewrites an instance's KV AGENTS record at most this
#: often while it heartbeats (and at once on Hello and Bye). A record's
#: `last_seen_ms` is then at most this much older than the instance's last
#: heartbeat, which bounds how much later than heartbeat_timeout_s a
#: successor declares it lost (`carry`).
PERSIST_EVERY_MAX_S = 0.5


def persist_every_s(heartbeat_timeout_s: float) -> float:
    """How often an instance's KV AGENTS record is rewritten while it heartbeats."""
    return min(heartbeat_timeout_s / 2, PERSIST_EVERY_MAX_S)


class _Telling:
    """Around a listener call: its failure is logged, never raised (a plain
    class: it runs twice per heartbeat of every instance)."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> bool:
        if kind is None or not issubclass(kind, Exception):
            return False
        log.error("registry listener failed on %s", self.what, exc_info=exc)
        return True


_TELLING = {what: _Telling(what) for what in ("hello", "heartbeat")}


@dataclass(slots=True, frozen=True)
class _Carried:
    incarnation: str
    heard: float  # monotonic, in this process


class ListenerRelay:
    """A registry's listener for the life of the process: it passes the fleet's
    news to the listener of the active term (its engine) while that term
    listens, and drops them on a standby. A process has one registry and many
    terms: the registry is built with the relay, each term `listen`s and `stop`s."""

    def __init__(self) -> None:
        self._to: RegistryListener | None = None

    def listen(self, listener: RegistryListener) -> None:
        self._to = listener

    def stop(self) -> None:
        self._to = None

    def instance_gone(self, instance_id: str, reason: str) -> None:
        if self._to is not None:
            self._to.instance_gone(instance_id, reason)

    def heartbeat(self, instance: Instance, heartbeat: Heartbeat) -> None:
        if self._to is not None:
            self._to.heartbeat(instance, heartbeat)

    def capacity_changed(self) -> None:
        if self._to is not None:
            self._to.capacity_changed()

    def unknown_instance(self, instance_id: str) -> None:
        if self._to is not None:
            self._to.unknown_instance(instance_id)


class Registry:
    """Instances by id; `listener` hears of them (the process's `ListenerRelay`)."""

    def __init__(
        self, heartbeat_timeout_s: float, listener: RegistryListener | None = None
    ) -> None:
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.instances: dict[str, Instance] = {}
        self.listener = listener
        # Instances heard only by heartbeat (their Hello came before we
        # listened): monotonic time last heard. A standby learns them only
        # from the rollcall of its term.
        self._strangers: dict[str, float] = {}
        # Last-heard times of instances the previous leader knew (`carry`).
        self._carried: dict[str, _Carried] = {}
        # The pick's index; the active term's attempts table reports loads to it.
        self.placement = Placement(heartbeat_timeout_s)

    def _telling(self, what: str) -> "_Telling":
        return _TELLING[what]

    def carry(self, instance_id: str, incarnation: str, heard_s_ago: float) -> None:
        """Remember that the previous leader last heard `instance_id` `heard_s_ago`.

        `last_seen` weighs it against what this process heard itself (the
        newer counts), for the same incarnation of a known instance.
        """
        heard = time.monotonic() - max(heard_s_ago, 0.0)
        self._carried[instance_id] = _Carried(incarnation=incarnation, heard=heard)

    def knows_everyone(self) -> bool:
        """No unknown instance has heartbeated within the heartbeat timeout."""
        since = time.monotonic() - self.heartbeat_timeout_s
        return all(heard < since for heard in self._strangers.values())

    def on_hello(self, hello: Hello) -> bool:
        """Record the Hello; False if it repeats what the registry knew (a
        rollcall's answer from a known instance: only `last_seen` moved)."""
        now = time.monotonic()
        self._strangers.pop(hello.instance_id, None)
        old = self.instances.get(hello.instance_id)
        if old is not None and old.hello.incarnation != hello.incarnation:
            # A new process under the same id: the old one is gone, with its attempts.
            log.info("instance %s restarted (new incarnation)", hello.instance_id)
            if self.listener is not None:
                with self._telling("hello"):
                    self.listener.instance_gone(hello.instance_id, "restarted")
            old = None
        changed = old is None or old.hello != hello or old.departed or old.draining
        inst = self.instances[hello.instance_id] = Instance(
            hello=hello,
            last_seen=now,
            last_seen_ms=int(time.time() * 1000),
            seq=old.seq if old else -1,
            reported_load=old.reported_load if old else 0,
            skills=frozenset(s.name for s in hello.skills),
        )
        self.placement.put(inst)
        if old is None:
            log.info("instance %s (%s) joined", hello.instance_id, hello.agent)
            if hello.heartbeat_interval_s >= self.heartbeat_timeout_s:
                # It would look dead between two heartbeats: refused at admission,
                # its attempts lost. A configuration error, not a fault.
                log.warning(
                    "instance %s heartbeats every %.3g s, not within heartbeat_timeout_s=%.3g s",
                    hello.instance_id, hello.heartbeat_interval_s, self.heartbeat_timeout_s,
                )  # fmt: skip
        if self.listener is not None:
            with self._telling("hello"):
                self.listener.capacity_changed()
        return changed

    def on_heartbeat(self, hb: Heartbeat) -> None:
        inst = self.instances.get(hb.instance_id)
        if inst is None or inst.hello.incarnation != hb.incarnation:
            self._strangers[hb.instance_id] = time.monotonic()
            if self.listener is not None:
                with self._telling("heartbeat"):
                    self.listener.unknown_instance(hb.instance_id)
            if inst is None:
                return
            if inst.hello.incarnation != hb.incarnation:
                return
        inst.last_seen = time.monotonic()
        inst.last_seen_ms = int(time.time() * 1000)
        inst.seq = hb.seq
        inst.reported_load = hb.load
        was_paused, inst.paused = inst.paused, False
        if was_paused or inst.draining != hb.draining:
            inst.draining = hb.draining
            self.placement.changed(hb.instance_id)
        else:
            self.placement.heard(hb.instance_id)
        if self.listener is not None:
            with self._telling("heartbeat"):
                self.listener.heartbeat(inst, hb)
            if was_paused or hb.load < inst.capacity:
                with self._telling("heartbeat"):
                    self.listener.capacity_changed()

    def on_bye(self, bye: Bye) -> None:
        inst = self.instances.get(bye.instance_id)
        if inst is None or inst.hello.incarnation != bye.incarnation:
            return
        # Not gone yet as far as its attempts go: its hand-backs are still on
        # their way through RESULTS; silence ends whatever is left.
        inst.departed = True
        self.placement.changed(bye.instance_id)
        log.info("instance %s said bye (%s)", bye.instance_id, bye.reason)

    def pause(self, instance_id: str) -> None:
        inst = self.instances.get(instance_id)
        if inst is not None:
            inst.paused = True
            self.placement.changed(instance_id)

    def drop_skill(self, instance_id: str, skill: str) -> None:
        inst = self.instances.get(instance_id)
        if inst is not None:
            inst.skills = inst.skills - {skill}
            self.placement.changed(instance_id)

    def offers(self, skill: str) -> bool:
        """Whether any live instance (busy or not) offers `skill`."""
        return self.placement.offers(skill)

    def pick(self, skill: str, avoid: Collection[str] = ()) -> Instance | None:
        """The least-loaded routable instance with `skill` and a free slot, by
        the loads the active term reports (`placement.set_used`); the first
        not in `avoid` if any. Exactly `candidates(...)`'s ranking, in O(log n)."""
        return self.placement.pick(skill, avoid)

    def candidates(self, skill: str, load: dict[str, int]) -> list[Instance]:
        """Routable instances with the skill and a free slot, least loaded first
        (every instance ranked: the reference `pick` is tested against)."""
        now = time.monotonic()
        found = [
            inst
            for inst in self.instances.values()
            if self._takes(inst, skill, load.get(inst.instance_id, 0), now)
        ]
        found.sort(key=lambda i: load.get(i.instance_id, 0) / max(i.capacity, 1))
        return found

    def least_loaded(self, skill: str, load: dict[str, int]) -> Instance | None:
        """`candidates(...)[0]` without the list and the sort (once per new task)."""
        now = time.monotonic()
        best: Instance | None = None
        best_share = 0.0
        for inst in self.instances.values():
            used = load.get(inst.instance_id, 0)
            if self._takes(inst, skill, used, now):
                share = used / max(inst.capacity, 1)
                if best is None or share < best_share:  # the first of equals, as sort keeps
                    best, best_share = inst, share
        return best

    def _takes(self, inst: Instance, skill: str, used: int, now: float) -> bool:
        """Routable, offers `skill`, and has a free slot with `used` of them taken."""
        return (
            used < inst.capacity
            and skill in inst.skills
            and inst.routable(now, self.heartbeat_timeout_s)
        )

    def last_seen(self, instance_id: str) -> float | None:
        """Monotonic time the instance was last heard, None if nobody knows.

        A known instance: its last Hello or Heartbeat (or, if newer, what
        the previous leader heard from the same incarnation). Else the last
        heartbeat heard from it as a stranger, or what the previous leader
        heard, whichever is newer.
        """
        carried = self._carried.get(instance_id)
        inst = self.instances.get(instance_id)
        if inst is not None:
            if carried is not None and carried.incarnation == inst.hello.incarnation:
                return max(inst.last_seen, carried.heard)
            return inst.last_seen
        stranger = self._strangers.get(instance_id)
        heard = [t for t in (stranger, carried.heard if carried else None) if t is not None]
        return max(heard, default=None)

    def expire(self, keep_s: float) -> list[str]:
        """Forget instances silent for longer than `keep_s`; return their ids."""
        now = time.monotonic()
        gone = [i for i, inst in self.instances.items() if now - inst.last_seen > keep_s]
        for instance_id in gone:
            del self.instances[instance_id]
            self.placement.remove(instance_id)
        for instance_id in [i for i, t in self._strangers.items() if now - t > keep_s]:
            del self._strangers[instance_id]
        for instance_id in [i for i, c in self._carried.items() if now - c.heard > keep_s]:
            del self._carried[instance_id]
        return gone

    def info(self, load: dict[str, int], agent: str | None = None) -> list[AgentInfo]:
        now = time.monotonic()
        return [
            self._info(inst, load, now)
            for inst in self.instances.values()
            if agent is None or inst.agent == agent
        ]

    def info_of(self, instance_id: str, load: dict[str, int]) -> AgentInfo | None:
        """One instance's `info` (what KV AGENTS keeps), without building the rest."""
        inst = self.instances.get(instance_id)
        return None if inst is None else self._info(inst, load, time.monotonic())

    def _info(self, inst: Instance, load: dict[str, int], now: float) -> AgentInfo:
        return AgentInfo(
            instance_id=inst.instance_id,
            agent=inst.agent,
            incarnation=inst.hello.incarnation,
            skills=inst.hello.skills,
            capacity=inst.capacity,
            load=max(load.get(inst.instance_id, 0), inst.reported_load),
            last_seen_ms=inst.last_seen_ms,
            alive=now - inst.last_seen < self.heartbeat_timeout_s and not inst.departed,
            draining=inst.draining,
            host=inst.hello.host,
            pid=inst.hello.pid,
        )
