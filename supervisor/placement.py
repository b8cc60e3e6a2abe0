"""The least-loaded pick in O(log n): per skill, a heap of the instances that
could take a task, keyed by (share of capacity in use, arrival order).

`Registry.candidates` ranks every instance for each task; with thousands of
instances that scan was most of the supervisor's work (docs/performance.md,
"Many instances"). This index gives the same answer: the routable instance
with the skill and a free slot whose `used / max(capacity, 1)` is lowest, the
first to have said Hello among equals (the registry's dict order).

Invalidation is lazy. Every change to an instance (its Hello, load, pause,
draining, dropped skill, Bye, expiry) bumps its generation and pushes fresh
entries; an entry of an older generation is dropped when it reaches the top,
and a heap holding more than twice its live entries is rebuilt (amortised
O(1) per push). Silence is the one change no message announces: the pick
checks the top entry's last heartbeat, takes a silent instance out, and its
next heartbeat (`heard`) puts it back. A heartbeat that changes nothing costs
a dict lookup and two comparisons.
"""

import heapq
import time
from collections.abc import Collection
from dataclasses import dataclass, field

from natsfleet.supervisor.instance import Instance

# A heap is rebuilt once it holds more than twice its live entries plus this.
_SLACK = 64


@dataclass(slots=True, eq=False)
class _Node:
    inst: Instance
    order: int  # arrival: the tie-break, as the registry's dict order
    gen: int = 0
    # The skills it has a current entry under (empty: not in any heap).
    indexed: frozenset[str] = field(default_factory=frozenset)
    # The skills it is listed under in `Placement._offering`.
    offered: frozenset[str] = field(default_factory=frozenset)


# (share in use, arrival order, generation, node): order is unique per
# instance, so comparisons never reach the node.
_Entry = tuple[float, int, int, _Node]


class Placement:
    """Instances by skill and load, for `pick`; fed by the registry and the
    term's attempts table (`set_used`)."""

    def __init__(self, heartbeat_timeout_s: float) -> None:
        self._timeout_s = heartbeat_timeout_s
        self._nodes: dict[str, _Node] = {}
        self._used: dict[str, int] = {}  # slots taken, also of instances not (yet) known
        self._heaps: dict[str, list[_Entry]] = {}
        self._live: dict[str, int] = {}  # per skill: instances with a current entry
        # Per skill, every known instance offering it (busy, paused or not):
        # `offers` stops at the first live one.
        self._offering: dict[str, dict[str, _Node]] = {}
        self._arrivals = 0

    # -- what the registry tells it --------------------------------------------

    def put(self, inst: Instance) -> None:
        """An instance said Hello (new, again, or a new incarnation)."""
        node = self._nodes.get(inst.instance_id)
        if node is None:
            node = _Node(inst=inst, order=self._arrivals)
            self._arrivals += 1
            self._nodes[inst.instance_id] = node
        else:
            self._unindex(node)
            node.inst = inst
        self._offer(node)
        self._index(node)

    def changed(self, instance_id: str) -> None:
        """Its pause, draining, departure or skills changed."""
        node = self._nodes.get(instance_id)
        if node is None:
            return
        self._unindex(node)
        self._offer(node)
        self._index(node)

    def heard(self, instance_id: str) -> bool:
        """A heartbeat that changed no flag: back in the heaps if silence took
        it out. True if it now takes tasks it did not before."""
        node = self._nodes.get(instance_id)
        if node is None or node.indexed:
            return False
        return self._index(node)

    def remove(self, instance_id: str) -> None:
        """Forgotten (expired)."""
        node = self._nodes.pop(instance_id, None)
        if node is not None:
            self._unindex(node)
            self._unoffer(node)

    # -- what the attempts table tells it --------------------------------------

    def set_used(self, instance_id: str, used: int) -> None:
        if used > 0:
            self._used[instance_id] = used
        else:
            self._used.pop(instance_id, None)
        node = self._nodes.get(instance_id)
        if node is not None:
            self._unindex(node)
            self._index(node)

    def reset_used(self) -> None:
        """A new term: no slot is taken (its attempts table starts empty)."""
        self._used.clear()
        for node in self._nodes.values():
            self._unindex(node)
            self._index(node)

    # -- questions ---------------------------------------------------------------

    def pick(self, skill: str, avoid: Collection[str] = ()) -> Instance | None:
        """The least-loaded instance that can take a task of `skill` now;
        the first not in `avoid` if there is one."""
        heap = self._heaps.get(skill)
        if not heap:
            return None
        now = time.monotonic()
        passed: list[_Entry] = []
        chosen: Instance | None = None
        while heap:
            entry = heap[0]
            node = entry[3]
            if entry[2] != node.gen:
                heapq.heappop(heap)  # superseded
                continue
            inst = node.inst
            if now - inst.last_seen >= self._timeout_s:
                self._unindex(node)  # silent: back on its next heartbeat
                heapq.heappop(heap)
                continue
            if inst.instance_id not in avoid:
                chosen = inst
                break
            passed.append(heapq.heappop(heap))
        for entry in passed:  # at most one per instance avoided
            heapq.heappush(heap, entry)
        if chosen is None and passed:
            return passed[0][3].inst  # every candidate was avoided: the least loaded
        return chosen

    def offers(self, skill: str) -> bool:
        """Whether any live instance (busy or not) offers `skill`."""
        now = time.monotonic()
        return any(
            not node.inst.departed and now - node.inst.last_seen < self._timeout_s
            for node in self._offering.get(skill, {}).values()
        )

    # -- the heaps ---------------------------------------------------------------

    def _takes_tasks(self, node: _Node) -> bool:
        inst = node.inst
        return (
            not inst.draining
            and not inst.departed
            and not inst.paused
            and self._used.get(inst.instance_id, 0) < inst.capacity
            and time.monotonic() - inst.last_seen < self._timeout_s
        )

    def _index(self, node: _Node) -> bool:
        """Entries under each of its skills if it can take a task; True if so."""
        if not node.inst.skills or not self._takes_tasks(node):
            return False
        inst = node.inst
        entry = (
            self._used.get(inst.instance_id, 0) / max(inst.capacity, 1),
            node.order,
            node.gen,
            node,
        )
        node.indexed = inst.skills
        for skill in inst.skills:
            heap = self._heaps.setdefault(skill, [])
            heapq.heappush(heap, entry)
            live = self._live[skill] = self._live.get(skill, 0) + 1
            if len(heap) > 2 * live + _SLACK:
                self._compact(heap)
        return True

    def _unindex(self, node: _Node) -> None:
        if not node.indexed:
            return
        node.gen += 1  # its entries are superseded
        for skill in node.indexed:
            self._live[skill] -= 1
        node.indexed = frozenset()

    def _compact(self, heap: list[_Entry]) -> None:
        heap[:] = [e for e in heap if e[2] == e[3].gen]
        heapq.heapify(heap)

    def _offer(self, node: _Node) -> None:
        """List it under the skills it offers now (and no others)."""
        skills, instance_id = node.inst.skills, node.inst.instance_id
        if skills == node.offered:
            return
        self._unoffer(node)
        for skill in skills:
            self._offering.setdefault(skill, {})[instance_id] = node
        node.offered = skills

    def _unoffer(self, node: _Node) -> None:
        for skill in node.offered:
            offering = self._offering[skill]
            del offering[node.inst.instance_id]
            if not offering:
                del self._offering[skill]
        node.offered = frozenset()
