"""What an instance says about itself: Hello, Heartbeat, Bye, and the tokens it
finished recently (`Heartbeat.recent`)."""

import os
import socket
import time
from collections import OrderedDict
from collections.abc import Iterable

from natsfleet.agents.agent import AgentConfig
from natsfleet.agents.attempt import Attempt
from natsfleet.protocols import Bye, Heartbeat, Hello, InFlight, SkillSpec

# A heartbeat must stay small however busy the instance was.
_MAX_RECENT = 256


class RecentTokens:
    """Tokens whose outcome the stream acknowledged, for `recent_window_s`."""

    def __init__(self, window_s: float) -> None:
        self._window_s = window_s
        self._at: OrderedDict[str, float] = OrderedDict()

    def add(self, token: str) -> None:
        self._at[token] = time.monotonic()
        self._at.move_to_end(token)

    def __contains__(self, token: object) -> bool:
        return token in self._at

    def prune(self) -> list[str]:
        """Forget expired tokens (returned) and cap the list."""
        horizon = time.monotonic() - self._window_s
        gone: list[str] = []
        while self._at:
            token, at = next(iter(self._at.items()))
            if at >= horizon and len(self._at) <= _MAX_RECENT:
                break
            self._at.popitem(last=False)
            gone.append(token)
        return gone

    def tokens(self) -> tuple[str, ...]:
        return tuple(self._at)


class Presence:
    """Builds this instance's announcements."""

    def __init__(
        self,
        *,
        agent: str,
        agent_version: str,
        instance_id: str,
        incarnation: str,
        skills: tuple[SkillSpec, ...],
        config: AgentConfig,
    ) -> None:
        self.agent = agent
        self.agent_version = agent_version
        self.instance_id = instance_id
        self.incarnation = incarnation
        self.skills = skills
        self.config = config
        self.recent = RecentTokens(config.recent_window_s)
        self._seq = 0
        self._host = socket.gethostname()
        self._started_ms = int(time.time() * 1000)

    def hello(self) -> Hello:
        return Hello(
            instance_id=self.instance_id,
            agent=self.agent,
            agent_version=self.agent_version,
            incarnation=self.incarnation,
            skills=self.skills,
            capacity=self.config.capacity,
            host=self._host,
            pid=os.getpid(),
            heartbeat_interval_s=self.config.heartbeat_interval_s,
            started_ms=self._started_ms,
            assign_batch=True,
        )

    def heartbeat(self, attempts: Iterable[Attempt], *, load: int, draining: bool) -> Heartbeat:
        self._seq += 1
        return Heartbeat(
            instance_id=self.instance_id,
            agent=self.agent,
            incarnation=self.incarnation,
            seq=self._seq,
            load=load,
            capacity=self.config.capacity,
            in_flight=tuple(
                InFlight(task_id=a.task_id, token=a.token, progress=a.progress, note=a.note)
                for a in attempts
            ),
            recent=self.recent.tokens(),
            draining=draining,
        )

    def bye(self, reason: str) -> Bye:
        return Bye(
            instance_id=self.instance_id,
            agent=self.agent,
            incarnation=self.incarnation,
            reason=reason,
        )
