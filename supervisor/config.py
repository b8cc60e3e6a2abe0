"""Supervisor settings: fleet defaults for timeouts and retries, lease and timing knobs."""

import secrets
from typing import Annotated

import msgspec

from natsfleet.bus import StorageConfig
from natsfleet.bus.redelivery import DEFAULT_MAX_FAILURES
from natsfleet.protocols import RetryPolicy, Timeouts

DAY_S = 86_400.0

#: Fleet defaults; a task's own `Submit.timeouts` override them field by field.
DEFAULT_TIMEOUTS = Timeouts(
    schedule_to_start_s=300.0,
    start_to_close_s=600.0,
    heartbeat_timeout_s=10.0,
    schedule_to_close_s=3_600.0,
)


def default_supervisor_id() -> str:
    """`sup-<8 hex digits>`, for a supervisor started without an id."""
    return f"sup-{secrets.token_hex(4)}"


class SupervisorConfig(msgspec.Struct, frozen=True, kw_only=True):
    """How one supervisor process behaves.

    `partition` of `partitions` names the lease this process competes for
    (key `p<partition>` in KV LEASES); one partition runs today.
    """

    supervisor_id: str = ""  # empty: a random id per process start
    partition: int = 0
    partitions: int = 1
    timeouts: Timeouts = DEFAULT_TIMEOUTS
    retry: RetryPolicy = RetryPolicy()
    # How long an instance has to answer an Assign before we Cancel and move on.
    assign_timeout_s: float = 2.0
    # Lease: renewed every ttl/3, acting stops at 2/3 ttl without a renewal.
    lease_ttl_s: float = 6.0
    # While at least `working_event_busy_attempts` attempts run, an accepted
    # attempt's `working` event is published once it has run
    # `working_event_delay_s`, and one that ends sooner publishes none (its
    # end's event follows at once). Recovery never reads events, and under
    # `sync_interval: always` each stored event is an fsync that the terminal
    # events clients wait on queue behind (docs/performance.md). A quieter
    # fleet publishes it at the Accept, as does a delay of 0.
    working_event_delay_s: Annotated[float, msgspec.Meta(ge=0)] = 0.2
    working_event_busy_attempts: Annotated[int, msgspec.Meta(ge=0)] = 64
    # Unacked TASKS/RESULTS messages come back after this (e.g. after a crash).
    ack_wait_s: float = 5.0
    fetch_batch: int = 256
    # A TASKS or RESULTS message whose handling fails this often, with an error
    # that is not transient, is dead-lettered (`handler_error`) instead of being
    # redelivered forever; NATS being unavailable never counts (bus/redelivery.py).
    max_handler_failures: Annotated[int, msgspec.Meta(ge=1)] = DEFAULT_MAX_FAILURES
    # Admission stops while this many tasks wait for an instance: submissions
    # then stay in TASKS until it is full and clients get `backpressure`, so a
    # flood of submits never grows the supervisor's memory without bound.
    max_waiting: int = 50_000
    # After taking over: time for instances to answer the rollcall before
    # submissions are judged against the registry (unknown skill).
    registry_warmup_s: float = 0.5
    # How often instance silence and retention are checked (None: from timeouts).
    sweep_interval_s: float | None = None
    retention_s: float = 7 * DAY_S
    storage: StorageConfig = StorageConfig()
    # Workflow sources: folders of *.toml, .toml files, or module:attribute.
    workflows: tuple[str, ...] = ()

    @property
    def heartbeat_timeout_s(self) -> float:
        return self.timeouts.heartbeat_timeout_s or DEFAULT_TIMEOUTS.heartbeat_timeout_s or 10.0

    @property
    def sweep_s(self) -> float:
        if self.sweep_interval_s is not None:
            return self.sweep_interval_s
        return max(0.01, min(self.heartbeat_timeout_s / 4, 1.0))

    @property
    def lease_key(self) -> str:
        return f"p{self.partition}"
