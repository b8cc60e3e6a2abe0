"""One live agent instance as the supervisor knows it (supervisor/registry.py)."""

from dataclasses import dataclass, field

from natsfleet.protocols import Hello


@dataclass(slots=True)
class Instance:
    hello: Hello
    last_seen: float  # monotonic
    last_seen_ms: int
    seq: int = -1
    reported_load: int = 0
    draining: bool = False
    departed: bool = False
    # Set after Reject(at_capacity) or an unanswered Assign: skip the instance
    # until its next heartbeat says how things stand.
    paused: bool = False
    skills: frozenset[str] = field(default_factory=frozenset)

    @property
    def instance_id(self) -> str:
        return self.hello.instance_id

    @property
    def agent(self) -> str:
        return self.hello.agent

    @property
    def capacity(self) -> int:
        return self.hello.capacity

    def routable(self, now: float, timeout_s: float) -> bool:
        return (
            not self.draining
            and not self.departed
            and not self.paused
            and now - self.last_seen < timeout_s
        )
