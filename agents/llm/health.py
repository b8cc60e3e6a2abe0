"""Fleet-wide deployment health: cooldowns and circuit state in KV, mirrored by a watch.

The router asks `is_available` before every attempt; answering from a local
mirror of the GOVERNOR bucket's `health.*` keys (kept current by a KV watch)
costs no KV operation. A failure updates the mirror at once and the fleet's
key by compare-and-set in the background, so one process's discovery (a 429
with Retry-After, a quota error, repeated 5xx) rests the deployment in every
process within a watch delivery. The rules are those of cooldown.py.

Circuit: closed (usable) -> open (resting until `cooling_until`) ->
half-open (rested, not yet proven): one probe call is let through, claimed
in KV for `probe_s`; its success closes the circuit for the fleet, its
failure opens it again at once.
"""

import time
from collections.abc import Callable
from typing import Protocol

import msgspec

from natsfleet.agents.llm.config import CooldownConfig
from natsfleet.agents.llm.errors import IMMEDIATE_COOLDOWN_KINDS, ErrorKind, LLMError
from natsfleet.agents.llm.kvcell import Op

_NOT_ABOUT_THE_DEPLOYMENT = frozenset({ErrorKind.BAD_REQUEST, ErrorKind.CONTEXT_LENGTH})


class DeploymentHealth(Protocol):
    """What the router needs of health: `Cooldowns` (per process) or `FleetHealth`."""

    def available_at(self, name: str) -> float: ...
    def is_available(self, name: str) -> bool: ...
    def success(self, name: str) -> None: ...
    def failure(self, name: str, error: LLMError) -> None: ...
    def snapshot(self) -> dict[str, float]: ...


class HealthState(msgspec.Struct, frozen=True, kw_only=True):
    """One deployment's fleet-wide health; times are wall-clock seconds."""

    name: str = ""
    cooling_until: float = 0.0
    failures: tuple[float, ...] = ()
    tripped: bool = False  # rested since its last success: half-open once the rest ends
    probe_until: float = 0.0
    reason: str = ""
    updated_by: str = ""

    def circuit(self, now: float) -> str:
        if self.cooling_until > now:
            return "open"
        return "half_open" if self.tripped else "closed"


def failure_op(
    name: str, config: CooldownConfig, error: LLMError, by: str
) -> Op[HealthState, None]:
    def op(state: HealthState) -> tuple[HealthState, None]:
        now = time.time()
        failures = tuple(t for t in state.failures if t >= now - config.window_s)
        rest = 0.0
        if error.kind in IMMEDIATE_COOLDOWN_KINDS:
            rest = config.quota_cooldown_s
        elif state.tripped and state.cooling_until <= now:
            rest = config.cooldown_s  # the half-open probe failed: open again at once
        else:
            failures += (now,)
            if len(failures) >= config.failures:
                rest = config.cooldown_s
        if error.retry_after_s is not None:
            rest = max(rest, error.retry_after_s)
        if rest <= 0:
            return msgspec.structs.replace(state, name=name, failures=failures), None
        return msgspec.structs.replace(
            state,
            name=name,
            failures=(),
            cooling_until=max(state.cooling_until, now + rest),
            tripped=True,
            probe_until=0.0,
            reason=error.kind.value,
            updated_by=by,
        ), None

    return op


def success_op(by: str) -> Op[HealthState, None]:
    def op(state: HealthState) -> tuple[HealthState, None]:
        if state.cooling_until > time.time():
            return state, None  # another process's newer discovery stands
        if not (state.failures or state.tripped or state.probe_until):
            return state, None
        return msgspec.structs.replace(
            state, failures=(), tripped=False, probe_until=0.0, reason="", updated_by=by
        ), None

    return op


def probe_op(until: float, by: str) -> Op[HealthState, None]:
    def op(state: HealthState) -> tuple[HealthState, None]:
        if not state.tripped or state.probe_until > time.time():
            return state, None
        return msgspec.structs.replace(state, probe_until=until, updated_by=by), None

    return op


class FleetHealth:
    """`DeploymentHealth` over the fleet's health keys, answered from a local mirror."""

    def __init__(
        self,
        config: CooldownConfig,
        *,
        probe_s: float,
        instance: str,
        enqueue: Callable[[str, Op[HealthState, None]], None],
    ) -> None:
        self._config = config
        self._probe_s = probe_s
        self._by = instance
        self._enqueue = enqueue
        self.mirror: dict[str, HealthState] = {}

    def seen(self, name: str, state: HealthState | None) -> None:
        """The fleet's state of `name` as the watch delivered it (None: deleted)."""
        if state is None:
            self.mirror.pop(name, None)
        else:
            self.mirror[name] = state

    def _apply(self, name: str, op: Op[HealthState, None]) -> None:
        # Locally at once, so this process stops (or resumes) before the write lands.
        self.mirror[name] = op(self.mirror.get(name, HealthState(name=name)))[0]
        self._enqueue(name, op)

    def available_at(self, name: str) -> float:
        state = self.mirror.get(name)
        if state is None:
            return 0.0
        now = time.time()
        blocked = max(state.cooling_until, state.probe_until if state.tripped else 0.0)
        return 0.0 if blocked <= now else time.monotonic() + (blocked - now)

    def is_available(self, name: str) -> bool:
        state = self.mirror.get(name)
        if state is None:
            return True
        now = time.time()
        if state.cooling_until > now:
            return False
        if state.tripped:
            if state.probe_until > now:
                return False  # another call is probing it
            self._apply(name, probe_op(now + self._probe_s, self._by))
        return True

    def success(self, name: str) -> None:
        state = self.mirror.get(name)
        if state is not None and (state.failures or state.tripped or state.probe_until):
            self._apply(name, success_op(self._by))

    def failure(self, name: str, error: LLMError) -> None:
        if error.kind in _NOT_ABOUT_THE_DEPLOYMENT:
            return
        self._apply(name, failure_op(name, self._config, error, self._by))

    def snapshot(self) -> dict[str, float]:
        now = time.time()
        return {
            k: round(s.cooling_until - now, 3)
            for k, s in self.mirror.items()
            if s.cooling_until > now
        }
