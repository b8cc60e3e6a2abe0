"""What the agent runtime gives the loop: the journal's bucket and fleet sub-tasks."""

import logging
import os
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from natsfleet.agents.loop.journal import Journal
from natsfleet.agents.loop.session import SessionLog
from natsfleet.agents.session_config import SessionConfig
from natsfleet.bus import Bus
from natsfleet.protocols import AgentInfo, Bucket

if TYPE_CHECKING:
    from natsfleet.agents.attempt import Attempt

# Room for headers (trace context, the journal's own) under the max payload.
_HEADER_ROOM_BYTES = 4096
#: `NATSFLEET_LOOP_JOURNAL=off`: loops keep their journal in memory only. A
#: bench and debugging switch (bench/agent_loop.py), never for a fleet: a
#: reassigned attempt then calls the model and runs the tools again.
JOURNAL_SWITCH = "NATSFLEET_LOOP_JOURNAL"
log = logging.getLogger(__name__)


class KeyedCaller(Protocol):
    """The runtime's sub-task caller (agents/_subtasks.py)."""

    async def call_keyed(
        self, attempt: "Attempt", skill: str, input: Any, key: str, timeout_s: float | None
    ) -> msgspec.Raw: ...

    async def agents(self, timeout_s: float | None = None) -> tuple[AgentInfo, ...]: ...

    def without_slot(self, attempt: "Attempt") -> AbstractAsyncContextManager[None]: ...


class LoopHost:
    """Per process: builds each attempt's journal and skill caller."""

    def __init__(
        self, bus: Bus, caller: KeyedCaller, sessions: SessionConfig | None = None
    ) -> None:
        self._bus = bus
        self._caller = caller
        self._sessions = sessions or SessionConfig()
        self._durable = os.environ.get(JOURNAL_SWITCH, "on") != "off"
        if not self._durable:
            log.warning("%s=off: loop journals are in memory only (no replay)", JOURNAL_SWITCH)

    def journal(self, attempt: "Attempt") -> Journal:
        return Journal(
            self._bus.js if self._durable else None,
            bucket=self._bus.subjects.bucket(Bucket.JOURNAL),
            task_id=attempt.task_id,
            token=attempt.token,
            attempt=attempt.number,
            instance_id=attempt.instance_id,
            max_bytes=self._bus.nc.max_payload - _HEADER_ROOM_BYTES,
            timeout_s=self._bus.config.js_timeout_s,
        )

    def session(self, attempt: "Attempt", session_id: str) -> SessionLog:
        return SessionLog(
            self._bus.js,
            bucket=self._bus.subjects.bucket(Bucket.SESSIONS),
            session_id=session_id,
            task_id=attempt.task_id,
            token=attempt.token,
            attempt=attempt.number,
            instance_id=attempt.instance_id,
            config=self._sessions,
            max_bytes=self._bus.nc.max_payload - _HEADER_ROOM_BYTES,
            timeout_s=self._bus.config.js_timeout_s,
            # Waiting for another task's session holds no slot (as a ctx.call).
            idle=lambda: self._caller.without_slot(attempt),
        )

    def caller(self, attempt: "Attempt") -> "AttemptCaller":
        return AttemptCaller(self._caller, attempt)


class AttemptCaller:
    """`SkillCaller` (fleet.py) bound to one attempt."""

    def __init__(self, caller: KeyedCaller, attempt: "Attempt") -> None:
        self._caller = caller
        self._attempt = attempt

    async def call_skill(
        self, skill: str, input: Any, *, key: str, timeout_s: float | None
    ) -> msgspec.Raw:
        return await self._caller.call_keyed(self._attempt, skill, input, key, timeout_s)

    async def agents(self, timeout_s: float | None = None) -> tuple[AgentInfo, ...]:
        return await self._caller.agents(timeout_s)
